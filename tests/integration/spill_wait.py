"""A failover-command step for tests: wait until the async recorder's spill file under a
runs folder holds at least N batches (one JSON line each), or a deadline passes, and say
what it saw. The test then asserts on the run's own count: a slow machine waits longer,
rather than spilling less than the test needs.

Run as `python -m tests.integration.spill_wait RUNS_DIR BATCHES SECONDS` from the
repository root.
"""

import glob
import os
import sys
import time

from ptor_harness.ledger.spill import SPILL_FILE


def batches(runs_dir: str) -> int:
    total = 0
    for path in glob.glob(os.path.join(runs_dir, "*", SPILL_FILE)):
        try:
            with open(path, "rb") as spill:
                total += sum(1 for _ in spill)
        except FileNotFoundError:  # replayed and removed meanwhile
            pass
    return total


def main(runs_dir: str, wanted: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    seen = batches(runs_dir)
    while seen < wanted and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = batches(runs_dir)
    print(f"the spill file holds {seen} batches")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
