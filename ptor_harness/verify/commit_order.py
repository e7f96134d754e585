"""Commit order: the fourth kind of evidence (see reconcile.py), across workers.

Worker order (worker_order.py) places an op by the same worker's ops on the same server.
What it leaves open is a deleted key's history at the cut: inserted and deleted between
the worker's last op the new primary kept and its first op it lost, no row either way.
Truth may still be known from the other workers on that server, by time:

- An op acknowledged before another op started has the lower commit LSN: its commit record
  was in the server's WAL before the other op was even sent. So an op acknowledged before
  a kept op started on the same server is kept (the new primary's history holds a prefix of
  that server's WAL).
- Likewise an op started after a lost op was acknowledged on the same server is lost: its
  commit lies past one already past the cut.

The times are the workers' wall clocks on one host (Op's docstring), read before an op is
sent and after its acknowledgement came back: the assumption the split-brain count makes
too (a clock stepped back mid-drill, rather than slewed, could misplace an op). Only
evidence feeds the bounds: an op assumed kept for want of it never does, so a guess never
places another op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from ..ops import OK, Op


class Unplaced(NamedTuple):
    """A unit worker order left open (all its ops kept or all lost), with the server each
    op ran on (None: unknown)."""

    worker: int
    ops: list
    servers: list


@dataclass
class CommitBounds:
    """Per server: the latest start of an op shown kept, the earliest acknowledgement of an
    op shown lost."""

    kept_started: dict = field(default_factory=dict)
    lost_acked: dict = field(default_factory=dict)

    def kept(self, server: object, started: Optional[float]) -> None:
        if server is not None and started is not None and \
                started > self.kept_started.get(server, float("-inf")):
            self.kept_started[server] = started

    def lost(self, server: object, acked: Optional[float]) -> None:
        if server is not None and acked is not None and \
                acked < self.lost_acked.get(server, float("inf")):
            self.lost_acked[server] = acked

    def merge(self, other: CommitBounds) -> None:
        """Take in bounds found on other workers."""
        for server, started in other.kept_started.items():
            self.kept(server, started)
        for server, acked in other.lost_acked.items():
            self.lost(server, acked)

    def decide(self, ops: list[Op], servers: list) -> Optional[bool]:
        """True (kept), False (lost) or None. Kept wins a contradiction, as in worker
        order: ptor never reports a loss it cannot show. Only acknowledged ops are placed
        by time (an op in doubt may never have committed)."""
        lost = False
        for op, server in zip(ops, servers):
            if server is None or op.outcome != OK:
                continue
            started = self.kept_started.get(server)
            if started is not None and op.t_end is not None and op.t_end < started:
                return True
            acked = self.lost_acked.get(server)
            if acked is not None and op.t_start is not None and op.t_start > acked:
                lost = True
        return False if lost else None

    def record(self, unit: Unplaced, kept: bool) -> None:
        """A unit placed: its ops are evidence from now on."""
        for op, server in zip(unit.ops, unit.servers):
            if kept:
                self.kept(server, op.t_start)
            elif op.outcome == OK:
                self.lost(server, op.t_end)


def place(units: list[Unplaced], bounds: CommitBounds
          ) -> tuple[list[tuple[Unplaced, bool]], list[Unplaced]]:
    """Decide what the bounds decide, each decision widening them, until nothing more is
    decided. Returns (unit, kept) for each decided unit, and the units still open."""
    decided: list[tuple[Unplaced, bool]] = []
    open_units = units
    while open_units:
        waiting = []
        for unit in open_units:
            kept = bounds.decide(unit.ops, unit.servers)
            if kept is None:
                waiting.append(unit)
            else:
                bounds.record(unit, kept)
                decided.append((unit, kept))
        if len(waiting) == len(open_units):
            break
        open_units = waiting
    return decided, open_units
