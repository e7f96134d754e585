"""Worker order: the third kind of evidence (see reconcile.py).

One worker's ops are sequential and one server's history is linear, so of the ops one
worker ran on one server the new primary keeps a prefix in seq order. `WorkerOrder` keeps,
per server, the highest kept and the lowest lost seq, and decides the units that waited
for them; and, for commit order across workers (commit_order.py), when the latest kept op
started and the earliest lost op was acknowledged.
"""

from __future__ import annotations

from typing import Callable, Optional

from ..ops import OK, Op
from .commit_order import CommitBounds

Resolve = Callable[["Unit", bool], None]  # a unit decided: kept (True) or lost


class Unit:
    """Acknowledged ops of one key whose fate only the worker's order can tell: all kept
    or all lost together (a deleted key's chain), or a single op."""

    __slots__ = ("key", "ops", "kept")

    def __init__(self, key: int, ops: list[Op]) -> None:
        self.key = key
        self.ops = ops
        self.kept: Optional[bool] = None


class WorkerOrder:
    """Per worker and server: the highest kept seq and the lowest lost seq, and the units
    waiting for them."""

    def __init__(self, server_of: Callable, worker: int, final_server: object) -> None:
        self.server_of = server_of
        self.worker = worker
        self.final_server = final_server
        self.top: dict = {}
        self.bottom: dict = {}
        # per server, the start of the top op and the acknowledgement of the bottom one (if
        # acknowledged): a worker's ops run in seq order, so its latest kept start and its
        # earliest lost acknowledgement (plain stores: kept() runs for every key)
        self.top_started: dict = {}
        self.bottom_acked: dict = {}
        self.pending: list[Unit] = []
        # in-doubt deletes of absent rows: applied exactly when some op under them was kept
        self.doubt_deletes: list[tuple[Op, list[Unit]]] = []

    def kept(self, op: Op) -> None:
        server = self.server_of(self.worker, op.session)
        if server is not None and op.seq > self.top.get(server, 0):
            self.top[server] = op.seq
            self.top_started[server] = op.t_start

    def lost(self, op: Op) -> None:
        server = self.server_of(self.worker, op.session)
        if server is not None and op.seq < self.bottom.get(server, op.seq + 1):
            self.bottom[server] = op.seq
            self.bottom_acked[server] = op.t_end if op.outcome == OK else None

    def bounds(self) -> CommitBounds:
        """What this worker tells commit order (commit_order.py) about each server (a None
        time, from an op without one, is no bound: CommitBounds skips it)."""
        return CommitBounds(self.top_started, self.bottom_acked)

    def decide(self, unit: Unit) -> Optional[bool]:
        """True (kept), False (lost) or None (not decided by what is known so far). Kept
        wins a contradiction: ptor never reports a loss it cannot show."""
        lost = False
        for op in unit.ops:
            server = self.server_of(self.worker, op.session)
            if server is None:
                continue
            if server == self.final_server or op.seq < self.top.get(server, 0):
                return True
            bottom = self.bottom.get(server)
            if bottom is not None and op.seq > bottom:
                lost = True
        return False if lost else None

    def defer(self, unit: Unit, resolve: Resolve) -> None:
        """Decide a unit now if what is known does, else once the worker's every key is."""
        decided = self.decide(unit)
        if decided is None:
            self.pending.append(unit)
        else:
            resolve(unit, decided)

    def settle(self, resolve: Resolve) -> list[Unit]:
        """Decide the waiting units (each decision may decide others); returns those that
        nothing decides."""
        pending = self.pending
        while pending:
            waiting = []
            for unit in pending:
                decided = self.decide(unit)
                if decided is None:
                    waiting.append(unit)
                else:
                    resolve(unit, decided)
            if len(waiting) == len(pending):
                break
            pending = waiting
        self.pending = []
        return pending

    def finish(self, resolve: Resolve) -> tuple[list[Unit], list[tuple[Op, bool, bool]]]:
        """Once the worker's every key is known: settle what waits (`settle`), take the
        units nothing decides for kept (returned first: the caller lists them as
        unverifiable, never lost), and say of each in-doubt delete of an absent row
        whether it was applied (exactly when some unit under it was kept) and whether
        evidence showed that, rather than the assumption: (delete, applied, shown)."""
        pending = self.settle(resolve)
        shown = [any(unit.kept for unit in units) for _, units in self.doubt_deletes]
        for unit in pending:
            unit.kept = True
        return pending, [(delete, any(unit.kept for unit in units), by_evidence)
                         for (delete, units), by_evidence in zip(self.doubt_deletes, shown)]
