"""The op mix of one worker, as a pure generator: which op comes next, on which key.

Keys are checked out while an op on them is planned or running, so two ops of one block
never touch the same key. A key whose op ended in doubt is quarantined for good: no later
op touches it, so every in-doubt op stays the last op on its key and reconciliation can
always tell from the row whether it applied. Deleted keys are never reused.
"""

from __future__ import annotations

import random
from array import array

from ..ops import DELETE, FAILED, INDETERMINATE, INSERT, OK, UPDATE


class LiveKeys:
    """A set of keys with O(1) add, remove and uniform random choice, in 8 bytes a key.

    A drill's live keys grow with it (the default mix leaves 3 rows for every 10 ops:
    10.8 million over an hour at 10,000 ops/s). A list with a position dict held about 150
    bytes a key (the int objects, the dict's entries and their slack); a packed array holds
    8, and no dict is needed: a key is added only by the op that checked it out or
    inserted it, so it is never added twice (`add` trusts that; the exactness tests would
    see a key handed to two ops)."""

    def __init__(self) -> None:
        self._keys = array("q")

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: int) -> bool:
        """A scan: for tests and diagnostics, never on the op path."""
        return key in self._keys

    def add(self, key: int) -> None:
        self._keys.append(key)

    def take_random(self, rng: random.Random) -> int:
        """Remove and return a random key (uniform: `random()` is C, where `randrange` is
        a few Python calls, which showed in the worker's cost per op)."""
        keys = self._keys
        index = int(rng.random() * len(keys))
        key = keys[index]
        last = keys.pop()
        if index < len(keys):
            keys[index] = last
        return key


class Workload:
    """Plans ops (seq, kind, key) and learns their outcomes."""

    def __init__(self, seed: int, insert_percent: int, update_percent: int,
                 delete_percent: int) -> None:
        if insert_percent + update_percent + delete_percent != 100:
            raise ValueError("percentages must add up to 100")
        self.rng = random.Random(seed)
        self.insert_cut = insert_percent
        self.update_cut = insert_percent + update_percent
        self.next_seq = 1
        self.next_key = 1
        self.live = LiveKeys()
        self.quarantined = 0

    def plan(self, count: int) -> list[tuple[int, str, int]]:
        """The next `count` ops. Updates and deletes need a live key; with none, insert."""
        planned = []
        rng = self.rng
        draw_of = rng.random
        for _ in range(count):
            draw = int(draw_of() * 100)
            if draw < self.insert_cut or not self.live:
                kind, key = INSERT, self.next_key
                self.next_key += 1
            else:
                kind = UPDATE if draw < self.update_cut else DELETE
                key = self.live.take_random(rng)
            planned.append((self.next_seq, kind, key))
            self.next_seq += 1
        return planned

    def settle(self, kind: str, key: int, outcome: str) -> None:
        """Return a checked-out key to the live set, drop it, or quarantine it."""
        if outcome == INDETERMINATE:
            self.quarantined += 1
        elif outcome == OK:
            if kind != DELETE:
                self.live.add(key)
        elif outcome == FAILED:
            if kind != INSERT:
                self.live.add(key)
        else:
            raise ValueError(f"unknown outcome {outcome!r}")

    def unplan(self, ops: list[tuple[int, str, int]]) -> None:
        """Ops planned but never sent: their keys are as they were before."""
        for _seq, kind, key in ops:
            if kind != INSERT:
                self.live.add(key)
