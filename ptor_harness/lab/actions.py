"""The built-in fault actions: what `--fault` and `ptor-lab fault` may ask of a lab.

The lab owns these names (each stack implements the ones it can; hang-primary and
split-brain: the streaming lab only); the scenario's validation and the drill's fault
trigger read them from here, so nothing in the lab imports the drill.
"""

FAULT_ACTIONS = ("kill-primary", "stop-primary", "switchover", "kill-manager", "hang-primary",
                 "split-brain")
