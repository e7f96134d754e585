"""Harness saturation guard: was it the cluster, or ptor itself, that set the pace?

`judge` (pure) calls a second saturated when the machine's CPUs were nearly all busy and
ptor's processes used a large share of them (samples from drill/cpu_sampler.py):
throughput and latency figures from such seconds describe the harness as much as the
cluster.
"""

from __future__ import annotations

import statistics
from typing import Optional

MACHINE_BUSY = 90.0  # percent of all CPUs
# ptor's processes using this share of the machine's CPUs (cores / cpu_count) on a saturated
# machine: on a 2-core lab with synchronous_commit=off they were measured at ~0.85 of 2 cores.
HARNESS_SHARE = 0.3
WARN_FRACTION = 0.2  # of the load's seconds



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
