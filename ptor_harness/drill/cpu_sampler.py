"""The CPU sampler: how hard ptor itself works while the load runs.

Once a second during the load `CpuSampler` reads the CPU time of ptor's own processes (the
coordinator, the workers, the recorder) and how busy the whole machine was; the verdict's
saturation guard (verify/saturation.py) judges the samples.
"""

from __future__ import annotations

from typing import Optional

import psutil


class CpuSampler:
    """Samples (time, harness cores used, machine busy percent) about once a second, and
    at every call the depth of the queue to the recorder: a full queue means the recorder,
    not the cluster, held the workers back."""

    def __init__(self, pids: list[int]) -> None:
        self.processes = []
        for pid in pids:
            try:
                self.processes.append(psutil.Process(pid))
            except psutil.Error:
                continue
        self.cores = psutil.cpu_count() or 1
        self.samples: list[tuple[float, float, float]] = []
        self.last: Optional[tuple[float, float]] = None
        self.queue_peak = 0

    def _harness_seconds(self) -> float:
        total = 0.0
        for proc in self.processes:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue  # an exited worker's time is no longer counted
        return total

    def sample(self, now: float, queue_depth: int = 0) -> None:
        self.queue_peak = max(self.queue_peak, queue_depth)
        if self.last is not None and now - self.last[0] < 1.0:
            return
        used = self._harness_seconds()
        if self.last is not None:
            cores = max(0.0, (used - self.last[1]) / (now - self.last[0]))
            self.samples.append((now, cores, psutil.cpu_percent(None)))
        else:
            psutil.cpu_percent(None)  # start the machine-wide interval with ptor's own
        self.last = (now, used)
