"""Harness saturation guard: was it the cluster, or ptor itself, that set the pace?

Once a second during the load `CpuSampler` reads the CPU time of ptor's own processes (the
coordinator, the workers, the recorder) and how busy the whole machine was. `judge` (pure)
calls a second saturated when the machine's CPUs were nearly all busy and ptor's processes
used a large share of them: throughput and latency figures from such seconds describe the
harness as much as the cluster.
"""

from __future__ import annotations

import statistics
from typing import Optional

import psutil

MACHINE_BUSY = 90.0  # percent of all CPUs
# ptor's processes using this share of the machine's CPUs (cores / cpu_count) on a saturated
# machine: on a 2-core lab with synchronous_commit=off they were measured at ~0.85 of 2 cores.
HARNESS_SHARE = 0.3
WARN_FRACTION = 0.2  # of the load's seconds


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


def judge(samples: list[tuple[float, float, float]], cores: int,
          load_from: Optional[float] = None, load_to: Optional[float] = None) -> dict:
    """Summary of the load's samples, and whether the harness was a limit."""
    picked = [s for s in samples if (load_from is None or s[0] >= load_from)
              and (load_to is None or s[0] <= load_to)]
    if not picked:
        return {"samples": 0, "cores": cores, "harness_cores_median": None,
                "harness_cores_max": None, "machine_busy_median": None,
                "saturated_seconds": 0, "harness_limited": False}
    saturated = sum(1 for _, used, busy in picked
                    if busy >= MACHINE_BUSY and used >= HARNESS_SHARE * cores)
    return {
        "samples": len(picked), "cores": cores,
        "harness_cores_median": round(statistics.median(s[1] for s in picked), 3),
        "harness_cores_max": round(max(s[1] for s in picked), 3),
        "machine_busy_median": round(statistics.median(s[2] for s in picked), 1),
        "saturated_seconds": saturated,
        "harness_limited": saturated >= max(2, WARN_FRACTION * len(picked)),
    }
