"""The crew's go / stop / abort signals, as bytes in shared memory that no lock guards.

multiprocessing.Event keeps its flag behind a cross-process lock that `is_set` and `wait`
take (a Condition over a semaphore), and `set` waits for every sleeper to wake. A child
SIGKILLed while it holds that lock, or while it is counted asleep in `wait`, never gives it
back: the coordinator's `stop.set()` at the drain then blocks for ever, and every other
child blocks at its next look. Workers look many times a second, so a kill (the OOM killer,
an operator, `test_unattended.py`) could land there; a flag read is one load from shared
memory and a flag set one store, so no death can wedge them. Waiting is a poll, POLL apart:
what waits on these flags waits for a drill's start or stop, where 10 ms does not matter.
"""

from __future__ import annotations

import time

POLL = 0.01  # seconds between looks while waiting


class SharedFlag:
    """One boolean in a shared byte array: set once by the coordinator, read by any child.
    Picklable to a child as its array is; the same calls as an Event's."""

    def __init__(self, array, index: int) -> None:
        self.array = array
        self.index = index

    def is_set(self) -> bool:
        return bool(self.array[self.index])

    def set(self) -> None:
        self.array[self.index] = 1

    def wait(self, timeout: float) -> bool:
        """True as soon as the flag is set, False once `timeout` seconds passed without."""
        deadline = time.monotonic() + timeout
        while not self.array[self.index]:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL, left))
        return True


def crew_flags(ctx) -> tuple[SharedFlag, SharedFlag, SharedFlag, SharedFlag]:
    """(go, stop, abort, cdc_stop) in one lock-free shared array of `ctx`'s; the CDC
    consumer is stopped on its own flag, once the workers have ended."""
    array = ctx.Array("b", 4, lock=False)
    return SharedFlag(array, 0), SharedFlag(array, 1), SharedFlag(array, 2), \
        SharedFlag(array, 3)
