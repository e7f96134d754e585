"""The drill: the coordinator and the processes it runs.

The coordinator (coordinator.py) orchestrates the phases; the workers (worker.py, with
their op mix in workload.py), the recorder (recorder.py) and the probe (probe.py) are the
processes it starts; faults.py fires the failover; watcher.py and saturation.py follow the
load while it runs; messages.py is what the processes tell each other.
"""
