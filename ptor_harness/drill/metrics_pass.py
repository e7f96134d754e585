"""The ledger's metrics pass, beside the reconciliation.

After the load the coordinator reads the ledger twice: every op in seq order for the
metrics (RunMetrics: outage windows, latency, the timeline) and in key order for the
reconciliation with the primary. Neither needs the other, and each is one core's work, so
on a large ledger the metrics pass runs in a process of its own while the coordinator
confirms the primary and reconciles: on two cores the two reads overlap instead of adding
up (docs/design.md, "Reconciliation at scale"). A ledger smaller than CHILD_FROM_OPS is
read in-process, where starting an interpreter would cost more than the overlap saves.
"""

from __future__ import annotations

import logging
from typing import Optional

from ..ledger import Ledger, LedgerSpec
from ..verify.metrics import RunMetrics
from .beside import Beside

log = logging.getLogger("ptor")

CHILD_FROM_OPS = 1_000_000  # about a second of the pass on a 2-core machine


def ledger_metrics(ledger: Ledger, workers: int, ops_per_transaction: int) -> RunMetrics:
    """Every worker's ops, in seq order, through RunMetrics."""
    metrics = RunMetrics(ops_per_transaction)
    for worker in range(workers):
        metrics.add_timings(worker, ledger.op_timings(worker))
    return metrics


def _metrics_of(spec: LedgerSpec, workers: int, ops_per_transaction: int) -> RunMetrics:
    """The child's work: the pass on a ledger connection of its own."""
    ledger = spec.open()
    try:
        return ledger_metrics(ledger, workers, ops_per_transaction)
    finally:
        ledger.close()


class MetricsPass:
    """Started before the reconciliation, read after it (`result`): the metrics either way,
    never a second answer of another kind."""

    def __init__(self, spec: LedgerSpec, ledger: Ledger, workers: int,
                 ops_per_transaction: int, ops: int) -> None:
        self.ledger, self.workers, self.n = ledger, workers, ops_per_transaction
        self.child: Optional[Beside] = None
        if ops >= CHILD_FROM_OPS:
            self.child = Beside("metrics pass", _metrics_of,
                                (spec, workers, ops_per_transaction))

    def result(self) -> RunMetrics:
        """The metrics. In-process when no child was started, and when the child failed
        (said in the log): the pass then fails, if it must, as it always did."""
        if self.child is None:
            return self.in_process()
        ok, value = self.child.result()
        if ok:
            return value
        log.warning("the metrics pass beside the reconciliation failed (%s, exit status "
                    "%s); reading the ledger again in-process", value,
                    self.child.process.exitcode)
        return self.in_process()

    def cancel(self) -> None:
        """The drill ends another way: no answer is wanted."""
        if self.child is not None:
            self.child.cancel()

    def in_process(self) -> RunMetrics:
        return ledger_metrics(self.ledger, self.workers, self.n)
