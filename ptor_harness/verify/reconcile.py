"""Reconciliation: what the primary holds, judged against what the ledger says happened (pure).

Per worker, two streams sorted by key are merge-joined: the ledger's ops (each key's ops in
seq order) and the primary's rows `(id, last_seq[, payload_ok])`. The question for every
acknowledged op is whether its write is in the new primary's history of its key ("kept") or
not ("lost"), whether or not a later write overwrote it. Four kinds of evidence answer it:

- **final state**: the row's `last_seq` names the op whose version the primary holds; an
  acknowledged write after it is lost (a delete after it: the row is back, "resurrected");
  no row and no acknowledged delete: every acknowledged write of the key is lost.
- **version chain**: every acknowledged UPDATE and DELETE returned the `last_seq` of the
  version it replaced (`Op.prev_seq`). If op X is in the history, so is the version X
  replaced, and nothing written between that version and X is: walking the chain down from
  the row (or from the delete that removed it) names every kept version, and every
  acknowledged write of the key that is not on the chain is lost. This finds a write lost
  in a failover and then overwritten on the new primary, which the final state cannot show.
- **worker order**: one worker's ops are sequential, and one server's history is linear
  (its WAL), so of the ops one worker ran on one server (identity: address, port, system,
  timeline, postmaster start) the new primary keeps a prefix in seq order. An op the other
  evidence leaves open (a deleted key's history: no row either way) is kept when an op
  after it on the same server was kept, lost when an op before it on the same server was
  lost, and kept when it ran on the very server being checked (same identity: never lost).
- **commit order** (commit_order.py): what worker order leaves open, the other workers on
  the same server may place by time: an op acknowledged before a kept op started is kept,
  one started after a lost op was acknowledged is lost.
  What none of this decides is counted `unverifiable` and assumed kept: ptor never reports
  a loss it cannot show.

A deleted key's chain (the delete and the versions under it) is kept or lost as a whole (if
the delete is not in the history, no version of the key can be: the row would be there).
In-doubt ops are resolved the same way; a worker never touches a key again after an op on
it ended in doubt, so `superseded` (in-doubt ops not last on their key) is 0 by design.
Anomalies are defined in findings.py, transactions' figures in transactions.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Callable, Optional

from ..ops import DELETE, FAILED, INSERT, KIND_NAMES, OK, UPDATE, Op, op_key
from .commit_order import Unplaced
from .findings import COMMIT_ORDER, FINAL_STATE, VERSION_CHAIN, WORKER_ORDER, Findings, cause_of
from .transactions import APPLIED, KEPT, LOST, NOT_APPLIED, TransactionTally
from .worker_order import Unit, WorkerOrder


class Reconciler:
    """Feed it one worker at a time; read `findings` at the end (after `finish`)."""

    def __init__(self, server_of: Callable[[int, Optional[int]], object],
                 stale: Optional[Callable[[int, Optional[int], float],
                                          Optional[float]]] = None,
                 final_server: object = None, ops_per_transaction: int = 1) -> None:
        """`server_of(worker, session)` names the server an op ran on (None: unknown);
        `stale(worker, session, acked_at)` says since when a newer primary was serving, if
        the op's server was no longer the newest; `final_server` names the server being
        checked (what it acknowledged itself it cannot have lost); `ops_per_transaction`
        groups each worker's ops into its transactions (transactions.py)."""
        self.server_of = server_of
        self.stale = stale
        self.final_server = final_server
        self.findings = Findings()
        self.order: Optional[WorkerOrder] = None
        self.recorded_up_to: Optional[int] = None
        self.tally = TransactionTally(ops_per_transaction) if ops_per_transaction > 1 else None

    def add_worker(self, worker: int, ops_by_key: Iterable[Op],
                   rows_by_key: Iterable[tuple], recorded_up_to: Optional[int] = None) -> None:
        """`recorded_up_to` (async repo mode): the highest seq the ledger holds of this
        worker. Its outcomes reach the ledger in order, so a row written by a later op is
        one whose record a killed worker never handed over: in doubt and applied
        (`unrecorded_applied`), not a phantom."""
        self.recorded_up_to = recorded_up_to
        self.order = WorkerOrder(self.server_of, worker, self.final_server)
        ops_groups = itertools.groupby(ops_by_key, key=op_key)
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
        self._settle_order(worker)
        for server, top in self.order.top.items():
            self.findings.surviving(worker, server, top)
        self.findings.note_bounds(self.order.bounds())
        if self.tally is not None:
            self.tally.end_worker(worker)
        self.order = None

    # --- findings ------------------------------------------------------------------------

    def _unrecorded(self, last_seq: int) -> bool:
        """A version written by an op whose record never reached the ledger (see
        add_worker): counted as applied in doubt."""
        if self.recorded_up_to is None or last_seq <= self.recorded_up_to:
            return False
        self.findings.unrecorded_applied += 1
        return True

    def _phantom(self, worker: int, row: tuple) -> None:
        f = self.findings
        f.rows_checked += 1
        if self._unrecorded(row[1]):
            return
        f.mismatched_rows += 1
        f.anomaly("phantom_rows", {"worker": worker, "key": row[0], "last_seq": row[1]})

    def _lose(self, worker: int, op: Op, evidence: str) -> None:
        self._record_loss(worker, op, evidence)
        self.order.lost(op)
        self._mark(op, LOST)

    def _record_loss(self, worker: int, op: Op, evidence: str) -> None:
        stale = self.stale is not None and op.t_end is not None and \
            self.stale(worker, op.session, op.t_end) is not None
        self.findings.lose(worker, op, evidence, cause_of(op.error, stale),
                           self.server_of(worker, op.session))

    def _kept(self, op: Op) -> None:
        self.order.kept(op)
        self._mark(op, APPLIED if op.in_doubt else KEPT)

    def _mark(self, op: Op, found: int) -> None:
        if self.tally is not None:
            self.tally.mark(op.seq, found)

    def _split_brain(self, worker: int, ops: list[Op]) -> None:
        f = self.findings
        for op in ops:
            if op.outcome != OK or op.t_end is None:
                continue
            since = self.stale(worker, op.session, op.t_end)
            if since is not None:
                f.anomaly("split_brain_writes", {
                    "worker": worker, "key": op.key, "seq": op.seq,
                    "kind": KIND_NAMES[op.kind], "acknowledged_at": op.t_end,
                    "newer_primary_since": since})

    # --- one key -------------------------------------------------------------------------

    def _judge(self, worker: int, key: int, ops: list[Op], row: Optional[tuple]) -> None:
        f = self.findings
        f.keys_checked += 1
        if self.stale is not None:
            self._split_brain(worker, ops)
        if row is not None:
            f.rows_checked += 1
            if self._intact(ops, row):
                self.order.kept(ops[-1])
                if self.tally is not None:
                    for op in ops:
                        self.tally.mark(op.seq, KEPT)
                return
        # An acknowledged update or delete that matched no row changed nothing (its row
        # was already gone: that loss is its insert's); there is no effect to look for.
        live = []
        for op in ops:
            if op.outcome == FAILED:
                continue
            if op.outcome == OK and op.kind != INSERT and op.rows == 0:
                f.noop_writes += 1
                continue
            live.append(op)
        bad = self._judge_row(worker, key, ops, live, row) if row is not None \
            else self._judge_absent(worker, key, ops, live)
        if bad:
            f.mismatched_rows += 1

    @staticmethod
    def _intact(ops: list[Op], row: tuple) -> bool:
        """The common key, decided in one pass: every op acknowledged, an insert and then
        updates each of which replaced the one before, and the row as the last wrote it.
        Nothing of it can be lost; the general path would say the same, slower."""
        if ops[-1].seq != row[1] or (len(row) > 2 and not row[2]):
            return False
        prev = 0
        for op in ops:
            if op.outcome != OK:
                return False
            if prev == 0:
                if op.kind != INSERT:
                    return False
            elif op.kind != UPDATE or op.prev_seq != prev or not op.rows:
                return False
            prev = op.seq
        return True

    def _judge_row(self, worker: int, key: int, ops: list[Op], live: list[Op],
                   row: tuple) -> bool:
        """The key has a row: its writer is kept, and so is the chain under it."""
        f = self.findings
        last_seq, payload_ok = row[1], row[2] if len(row) > 2 else True
        writer = next((op for op in ops if op.seq == last_seq), None)
        bad = False
        top = None  # the kept op whose chain is walked
        if writer is None and self._unrecorded(last_seq):
            pass
        elif writer is None or writer.kind == DELETE:
            f.anomaly("phantom_rows", {"worker": worker, "key": key, "last_seq": last_seq})
            bad = True
        elif writer.outcome == FAILED:
            f.anomaly("failed_but_applied", {"worker": worker, "key": key, "seq": last_seq,
                                             "error": writer.error})
            bad = True
        else:
            if not payload_ok:
                f.anomaly("checksum_mismatches", {"worker": worker, "key": key,
                                                  "last_seq": last_seq})
                bad = True
            if writer.in_doubt:
                f.settle_doubt(worker, writer, True)
            self._kept(writer)
            top = writer
        below = []
        for op in live:
            if op.seq < last_seq:
                below.append(op)
            elif op.seq > last_seq:  # after the version the primary holds
                if op.in_doubt:
                    f.settle_doubt(worker, op, False)
                    self._mark(op, NOT_APPLIED)
                    continue
                self._lose(worker, op, FINAL_STATE)
                if op.kind == DELETE:  # the row it deleted is back
                    f.anomaly("resurrected_rows", {"worker": worker, "key": key,
                                                   "deleted_by_seq": op.seq,
                                                   "row_last_seq": last_seq})
                bad = True
        chain, unknown = self._walk(worker, key, top, below, ops)
        for op in chain:
            self._kept(op)
        bad = self._chain_losses(worker, below, chain, unknown) or bad
        for op in unknown:
            self._defer(Unit(key, [op]))
        return bad

    def _judge_absent(self, worker: int, key: int, ops: list[Op], live: list[Op]) -> bool:
        """No row: the key's history is empty, or ends with its delete."""
        f = self.findings
        acked = [op for op in live if not op.in_doubt]
        delete = next((op for op in reversed(acked) if op.kind == DELETE), None)
        doubt_delete = None
        for op in live:
            if op.in_doubt:
                if op.kind == DELETE and delete is None and doubt_delete is None:
                    doubt_delete = op
                elif delete is not None and op.seq < delete.seq:
                    f.superseded += 1
                else:  # nothing it wrote is there, and nothing after it removed it
                    f.settle_doubt(worker, op, False)
                    if op.kind == INSERT:  # an update or delete may have matched nothing
                        self._mark(op, NOT_APPLIED)
        if delete is not None:
            below = [op for op in acked if op.seq < delete.seq]
            chain, unknown = self._walk(worker, key, delete, below, ops)
            bad = self._chain_losses(worker, below, chain, unknown)
            self._defer(Unit(key, [delete, *chain]))  # kept or lost as a whole
            for op in unknown:
                self._defer(Unit(key, [op]))
            return bad
        if doubt_delete is not None:  # applied exactly when something under it was kept
            units = [Unit(key, [op]) for op in acked]
            self.order.doubt_deletes.append((doubt_delete, units))
            for unit in units:
                self._defer(unit)
            return False
        for op in acked:  # no delete could have removed the row: nothing of it was kept
            self._lose(worker, op, FINAL_STATE)
        return bool(acked)

    def _walk(self, worker: int, key: int, top: Optional[Op], below: list[Op],
              ops: list[Op]) -> tuple[list[Op], list[Op]]:
        """Follow the version chain down from `top` through `below` (the key's live ops
        under it, in seq order). Returns the ops on the chain and those the chain cannot
        place (under an op whose predecessor is unknown: in doubt, or a format-1 ledger).
        Every other op of `below` is off the chain."""
        chain: list[Op] = []
        index = len(below) - 1
        current = top
        while current is not None and index >= 0:
            if current.kind == INSERT:
                prev = 0  # an insert begins the key's history
            elif current.in_doubt or current.prev_seq is None:
                # The version it replaced is unknown, but it replaced one: the key's
                # insert, which began the history, is on the chain.
                first = below[0]
                if first.kind == INSERT and not first.in_doubt:
                    chain.append(first)
                    return chain, below[1:index + 1]
                break
            else:
                prev = current.prev_seq
            while index >= 0 and below[index].seq > prev:
                index -= 1
            if index >= 0 and below[index].seq == prev:
                current = below[index]
                chain.append(current)
                index -= 1
                continue
            if prev:  # a version that no live op of this key wrote
                self._unexplained_version(worker, key, prev, current, ops)
            index = -1
            break
        return chain, below[:index + 1]

    def _unexplained_version(self, worker: int, key: int, prev: int, by: Op,
                             ops: list[Op]) -> None:
        f = self.findings
        writer = next((op for op in ops if op.seq == prev), None)
        if writer is not None and writer.outcome == FAILED:
            f.anomaly("failed_but_applied", {"worker": worker, "key": key, "seq": prev,
                                             "error": writer.error})
        else:
            f.anomaly("phantom_rows", {"worker": worker, "key": key, "last_seq": prev,
                                       "seen_by_seq": by.seq})

    def _chain_losses(self, worker: int, below: list[Op], chain: list[Op],
                      unknown: list[Op]) -> bool:
        """Ops of `below` that are neither on the chain nor unplaced are not in the
        history: lost if acknowledged."""
        if len(chain) + len(unknown) == len(below):
            return False
        placed = {op.seq for op in chain}
        placed.update(op.seq for op in unknown)
        bad = False
        for op in below:
            if op.seq in placed:
                continue
            if op.in_doubt:
                self.findings.superseded += 1
            else:
                self._lose(worker, op, VERSION_CHAIN)
                bad = True
        return bad

    # --- worker order --------------------------------------------------------------------

    def _defer(self, unit: Unit) -> None:
        self.order.defer(unit, self._resolve)

    def _resolve(self, unit: Unit, kept: bool) -> None:
        unit.kept = kept
        for op in unit.ops:
            if kept:
                self._kept(op)
            else:
                self._lose(self.order.worker, op, WORKER_ORDER)
        if not kept:
            self.findings.mismatched_rows += 1

    def _settle_order(self, worker: int) -> None:
        """The worker order's last decisions (WorkerOrder.finish), recorded."""
        f = self.findings
        # units under an in-doubt delete settle it at once (applied if one was kept)
        settling = {id(unit) for _, units in self.order.doubt_deletes for unit in units}
        unplaced, deletes = self.order.finish(self._resolve)
        for unit in unplaced:
            if self.tally is None and id(unit) not in settling:
                f.leave_open(Unplaced(worker, unit.ops, [self.server_of(worker, op.session)
                                                         for op in unit.ops]))
                continue
            for op in unit.ops:  # a transaction's tally is per worker: it cannot wait
                f.add_unverifiable(worker, op)
        for delete, applied, by_evidence in deletes:
            f.settle_doubt(worker, delete, applied)
            if by_evidence:  # not an assumption; and not applied, it may have matched nothing
                self._mark(delete, APPLIED)

    def finish(self) -> Findings:
        """Holes, and the transactions' figures, once every worker is in."""
        f = self.findings
        # (a unit placed kept cannot show a hole: a lost op of its worker below it on its
        # server would have placed it lost by worker order)
        for unit, kept in f.place_by_commit_order():
            if not kept:
                for op in unit.ops:
                    self._record_loss(unit.worker, op, COMMIT_ORDER)
                f.mismatched_rows += 1
        f.find_holes()
        if self.tally is None:  # every op its own transaction
            f.lost_transactions = f.lost_total
        else:
            f.lost_transactions, f.partial_transactions = self.tally.lost, self.tally.partial
            f.partial_transaction_examples = self.tally.examples
        return f
