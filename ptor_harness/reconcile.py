"""Reconciliation: what the primary holds, judged against what the ledger says happened (pure).

Per worker, two streams sorted by key are merge-joined: the ledger's ops (each key's ops in
seq order) and the primary's rows `(id, last_seq[, payload_ok])`. Each key's final row
must be the effect of its last applied op:

- row present with last_seq s: op s explains it (and, in the full check, the payload is the
  one op s wrote: the server compares it and sends `payload_ok`); every `ok` op after s on
  that key is a lost acknowledged update or delete; an in-doubt op s is *applied*, one
  after s *not applied*;
- row absent: fine after an applied delete; otherwise every `ok` insert / update of the key
  is lost, and in-doubt ops are *not applied*;
- a row no ledger op explains is a phantom (or, when its op was `failed`, an applied failure).

Workers never touch a key again after an op on it ended in doubt (workload.py), so an
in-doubt op is always the last op on its key and is always resolved; `superseded` counts
any that were not, and is 0 by construction.

A hole is a lost `ok` op of a worker followed by a surviving later op of the same worker
on the same server (same identity): WAL is linear, so that means corruption or split brain.
Losing a suffix before a failover is not a hole. A resurrected row is a lost acknowledged
delete (the row is back). An acknowledged update or delete whose rowcount was 0 matched no
row, so it has no effect to find: it is counted (`noop_writes`, a sign its row was already
lost) but never as a loss or a hole. A split-brain write is an `ok` op acknowledged by a
server after a newer primary of the same cluster (a higher timeline) had already served a
client.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional

from .ops import DELETE, FAILED, INSERT, KIND_NAMES, OK, Op

EXAMPLES = 10
# The anomaly classes, each with the Findings field that holds its examples.
ANOMALY_CLASSES = ("phantom_rows", "holes", "failed_but_applied", "split_brain_writes",
                   "resurrected_rows")
EXAMPLES_OF = {"phantom_rows": "phantom_examples", "holes": "hole_examples",
               "failed_but_applied": "failed_applied_examples",
               "split_brain_writes": "split_brain_examples",
               "resurrected_rows": "resurrected_examples"}


@dataclass
class Findings:
    """Everything reconciliation found, summed over workers."""

    rows_checked: int = 0
    keys_checked: int = 0
    mismatched_rows: int = 0
    lost: dict = field(default_factory=lambda: {k: 0 for k in KIND_NAMES.values()})
    lost_examples: list = field(default_factory=list)
    earliest_lost_commit: Optional[float] = None
    applied: int = 0
    not_applied: int = 0
    superseded: int = 0
    phantom_rows: int = 0
    phantom_examples: list = field(default_factory=list)
    failed_but_applied: int = 0
    checksum_mismatches: int = 0
    holes: int = 0
    hole_examples: list = field(default_factory=list)
    noop_writes: int = 0  # acknowledged updates/deletes that matched no row (rowcount 0)
    resurrected_rows: int = 0  # acknowledged deletes undone (also counted as lost deletes)
    resurrected_examples: list = field(default_factory=list)
    split_brain_writes: int = 0  # acknowledged by a server no longer the newest primary
    split_brain_examples: list = field(default_factory=list)
    failed_applied_examples: list = field(default_factory=list)
    checksum_examples: list = field(default_factory=list)
    # per worker, server -> highest surviving seq; lost (seq, server) pairs for hole finding
    _surviving: dict = field(default_factory=dict)
    _lost: list = field(default_factory=list)

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    def _example(self, bucket: list, item: dict) -> None:
        if len(bucket) < EXAMPLES:
            bucket.append(item)

    def as_dict(self) -> dict:
        return {
            "rows_checked": self.rows_checked,
            "keys_checked": self.keys_checked,
            "mismatched_rows": self.mismatched_rows,
            "lost": dict(self.lost),
            "lost_examples": self.lost_examples,
            "applied": self.applied,
            "not_applied": self.not_applied,
            "superseded": self.superseded,
            "phantom_rows": self.phantom_rows,
            "phantom_examples": self.phantom_examples,
            "failed_but_applied": self.failed_but_applied,
            "checksum_mismatches": self.checksum_mismatches,
            "holes": self.holes,
            "hole_examples": self.hole_examples,
            "noop_writes": self.noop_writes,
            "resurrected_rows": self.resurrected_rows,
            "resurrected_examples": self.resurrected_examples,
            "split_brain_writes": self.split_brain_writes,
            "split_brain_examples": self.split_brain_examples,
            "failed_applied_examples": self.failed_applied_examples,
            "checksum_examples": self.checksum_examples,
        }


class Reconciler:
    """Feed it one worker at a time; read `findings` at the end (after `finish`)."""

    def __init__(self, server_of: Callable[[int, Optional[int]], object],
                 stale: Optional[Callable[[int, Optional[int], float],
                                          Optional[float]]] = None) -> None:
        """`server_of(worker, session)` names the server an op ran on (for holes);
        `stale(worker, session, acked_at)` says since when a newer primary was serving, if
        the op's server was no longer the newest."""
        self.server_of = server_of
        self.stale = stale
        self.findings = Findings()

    def add_worker(self, worker: int, ops_by_key: Iterable[Op],
                   rows_by_key: Iterable[tuple]) -> None:
        ops_groups = itertools.groupby(ops_by_key, key=lambda op: op.key)
        rows: Iterator[tuple] = iter(rows_by_key)
        row = next(rows, None)
        for key, group in ops_groups:
            while row is not None and row[0] < key:
                self._phantom(worker, row)
                row = next(rows, None)
            if row is not None and row[0] == key:
                self._judge(worker, key, list(group), row)
                row = next(rows, None)
            else:
                self._judge(worker, key, list(group), None)
        while row is not None:
            self._phantom(worker, row)
            row = next(rows, None)

    def _phantom(self, worker: int, row: tuple) -> None:
        f = self.findings
        f.rows_checked += 1
        f.phantom_rows += 1
        f.mismatched_rows += 1
        f._example(f.phantom_examples, {"worker": worker, "key": row[0], "last_seq": row[1]})

    def _survived(self, worker: int, op: Op) -> None:
        server = (worker, self.server_of(worker, op.session))
        if op.seq > self.findings._surviving.get(server, 0):
            self.findings._surviving[server] = op.seq

    def _lose(self, worker: int, op: Op) -> None:
        f = self.findings
        f.lost[KIND_NAMES[op.kind]] += 1
        f._example(f.lost_examples, {"worker": worker, "key": op.key, "seq": op.seq,
                                     "kind": KIND_NAMES[op.kind], "committed_at": op.t_end})
        if op.t_end is not None and (f.earliest_lost_commit is None
                                     or op.t_end < f.earliest_lost_commit):
            f.earliest_lost_commit = op.t_end
        f._lost.append((worker, op.seq, op.key, self.server_of(worker, op.session)))

    def _split_brain(self, worker: int, ops: list[Op]) -> None:
        f = self.findings
        for op in ops:
            if op.outcome != OK or op.t_end is None:
                continue
            since = self.stale(worker, op.session, op.t_end)
            if since is not None:
                f.split_brain_writes += 1
                f._example(f.split_brain_examples, {
                    "worker": worker, "key": op.key, "seq": op.seq,
                    "kind": KIND_NAMES[op.kind], "acknowledged_at": op.t_end,
                    "newer_primary_since": since})

    def _judge(self, worker: int, key: int, ops: list[Op], row: Optional[tuple]) -> None:
        f = self.findings
        f.keys_checked += 1
        if self.stale is not None:
            self._split_brain(worker, ops)
        # An acknowledged update or delete that matched no row changed nothing (its row
        # was already gone: that loss is its insert's); there is no effect to look for.
        noops = [op for op in ops if op.outcome == OK and op.kind != INSERT and op.rows == 0]
        if noops:
            f.noop_writes += len(noops)
            ops = [op for op in ops if op not in noops]
        if row is not None:
            f.rows_checked += 1
        live = [op for op in ops if op.outcome != FAILED]
        bad = False
        if row is None:
            applied_delete = None
            for op in live:
                if op.kind == DELETE and op.outcome == OK:
                    applied_delete = op
            if applied_delete is None:
                doubt_deletes = [op for op in live if op.kind == DELETE and op.in_doubt]
                applied_delete = doubt_deletes[-1] if doubt_deletes else None
            for op in live:
                if applied_delete is not None and op.seq <= applied_delete.seq:
                    if op is applied_delete and op.in_doubt:
                        f.applied += 1
                    elif op.in_doubt:
                        f.superseded += 1
                    # An absent row is no proof that the delete survived: the insert may
                    # have been lost with it. Only present rows mark survival for holes.
                    continue
                if op.in_doubt:
                    f.not_applied += 1
                else:
                    self._lose(worker, op)
                    bad = True
        else:
            last_seq, payload_ok = row[1], row[2] if len(row) > 2 else True
            writer = next((op for op in ops if op.seq == last_seq), None)
            if writer is None or writer.kind == DELETE:
                f.phantom_rows += 1
                f._example(f.phantom_examples, {"worker": worker, "key": key,
                                                "last_seq": last_seq})
                bad = True
            elif writer.outcome == FAILED:
                f.failed_but_applied += 1
                f._example(f.failed_applied_examples, {"worker": worker, "key": key,
                                                       "seq": last_seq, "error": writer.error})
                bad = True
            else:
                if not payload_ok:
                    f.checksum_mismatches += 1
                    f._example(f.checksum_examples, {"worker": worker, "key": key,
                                                     "last_seq": last_seq})
                    bad = True
                if writer.in_doubt:
                    f.applied += 1
                else:
                    self._survived(worker, writer)
            for op in live:
                if op.seq == last_seq:
                    continue
                if op.seq < last_seq:
                    if op.in_doubt:
                        f.superseded += 1
                elif op.in_doubt:
                    f.not_applied += 1
                else:
                    self._lose(worker, op)
                    if op.kind == DELETE:  # the row it deleted is back
                        f.resurrected_rows += 1
                        f._example(f.resurrected_examples, {
                            "worker": worker, "key": key, "deleted_by_seq": op.seq,
                            "row_last_seq": last_seq})
                    bad = True
        if bad:
            f.mismatched_rows += 1

    def finish(self) -> Findings:
        """Find holes: lost ops below a surviving op of the same worker and server."""
        f = self.findings
        for worker, seq, key, server in f._lost:
            top = f._surviving.get((worker, server), 0)
            if top > seq:
                f.holes += 1
                f._example(f.hole_examples, {"worker": worker, "key": key, "seq": seq,
                                             "surviving_seq": top})
        return f


def rpo_window(earliest_lost_commit: Optional[float], outage_start: Optional[float]) -> float:
    """Seconds from the earliest lost acknowledged commit to the outage start (0 if none)."""
    if earliest_lost_commit is None:
        return 0.0
    if outage_start is None:
        return 0.0
    return max(0.0, outage_start - earliest_lost_commit)
