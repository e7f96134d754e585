"""Transactions in reconciliation (--ops-per-transaction): lost once, and never partial.

A worker's transactions are consecutive runs of `ops_per_transaction` seqs (a block of
intents holds whole transactions, and only --ops-per-worker cuts the last one short), so
an op's transaction is `(seq - 1) // ops_per_transaction`, from the ledger alone.

Reconciliation judges each op on its own evidence (reconcile.py); the tally collects, per
transaction, what was found of its ops: an acknowledged op kept or lost, an in-doubt op
applied or not applied. A transaction with a lost op is a lost acknowledged transaction.
One whose ops disagree (one kept and one lost, or one applied and one not) was partly
applied, which PostgreSQL never does: a partial transaction is an anomaly (corruption, or
a broken ledger). Only evidence that shows an op's effect counts here: an in-doubt update
or delete of a key with no row may have matched nothing, so it is never taken for "not
applied".

The ops of one transaction share its outcome (the worker gives them the COMMIT's), so a
transaction's outcome is its ops'; should a killed harness have recorded only some of
them, the rest are in doubt and so is the transaction (`Transactions`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

from ..ops import FAILED, INDETERMINATE, OK, OUTCOMES

KEPT, LOST, APPLIED, NOT_APPLIED = 1, 2, 4, 8
EXAMPLES = 10


class TransactionTally:
    """One byte of findings per transaction of the worker being reconciled."""

    def __init__(self, ops_per_transaction: int) -> None:
        self.n = ops_per_transaction
        self.lost = 0
        self.partial = 0
        self.examples: list[dict] = []
        self._found = bytearray()

    def mark(self, seq: int, found: int) -> None:
        index = (seq - 1) // self.n
        if index >= len(self._found):
            self._found.extend(bytes(index + 1 - len(self._found) + 1024))
        self._found[index] |= found

    def end_worker(self, worker: int) -> None:
        """Count the worker's lost and partial transactions, and start the next worker."""
        for index, found in enumerate(self._found):
            if not found:
                continue
            if found & LOST:
                self.lost += 1
            if (found & LOST and found & KEPT) or (found & APPLIED and found & NOT_APPLIED):
                self.partial += 1
                if len(self.examples) < EXAMPLES:
                    self.examples.append({
                        "worker": worker, "first_seq": index * self.n + 1,
                        "last_seq": (index + 1) * self.n,
                        "acknowledged": not found & (APPLIED | NOT_APPLIED)})
        self._found = bytearray()

    def absorb(self, other: TransactionTally) -> None:
        """Take in the counts of later workers, tallied elsewhere."""
        self.lost += other.lost
        self.partial += other.partial
        self.examples.extend(other.examples[:max(0, EXAMPLES - len(self.examples))])


_RANK = {OK: 0, FAILED: 1, INDETERMINATE: 2}


class Transactions:
    """Counts one worker's transactions by outcome, fed its ops' (seq, outcome) in seq
    order (outcome None: an intent whose outcome never reached the ledger, in doubt)."""

    def __init__(self, ops_per_transaction: int) -> None:
        self.n = ops_per_transaction
        self.counts = {o: 0 for o in OUTCOMES}
        self.current = -1
        self.outcome: Optional[str] = None

    def add(self, seq: int, outcome: Optional[str]) -> None:
        index = (seq - 1) // self.n
        outcome = outcome or INDETERMINATE
        if index != self.current:
            if self.outcome is not None:
                self.counts[self.outcome] += 1
            self.current, self.outcome = index, outcome
        elif _RANK[outcome] > _RANK[self.outcome]:
            self.outcome = outcome

    def end(self) -> dict:
        if self.outcome is not None:
            self.counts[self.outcome] += 1
            self.outcome = None
        return dict(self.counts)


def transaction_totals(workers: Iterable) -> dict:
    """Transactions by outcome over every worker's stats (metrics.WorkerStats)."""
    totals = {o: 0 for o in OUTCOMES}
    for stats in workers:
        for outcome, n in stats.transactions.items():
            totals[outcome] += n
    return totals
