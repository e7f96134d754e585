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

import contextlib
import logging
import multiprocessing
from typing import Optional

from .. import db
from ..ledger import Ledger, LedgerSpec
from ..verify.metrics import RunMetrics
from . import messages

log = logging.getLogger("ptor")

CHILD_FROM_OPS = 1_000_000  # about a second of the pass on a 2-core machine
RESULT_TIMEOUT = 3600.0  # the child's answer, at most: a ledger of 10^9 ops


def ledger_metrics(ledger: Ledger, workers: int, ops_per_transaction: int) -> RunMetrics:
    """Every worker's ops, in seq order, through RunMetrics."""
    metrics = RunMetrics(ops_per_transaction)
    for worker in range(workers):
        metrics.add_timings(worker, ledger.op_timings(worker))
    return metrics


def _metrics_child(spec: LedgerSpec, workers: int, ops_per_transaction: int, out) -> None:
    """Process entry point: its own ledger connection, the pass, the result on the pipe."""
    messages.ignore_stop_signals()  # the coordinator decides; it kills this one if need be
    try:
        ledger = spec.open()
        try:
            result: tuple = ("ok", ledger_metrics(ledger, workers, ops_per_transaction))
        finally:
            ledger.close()
    except Exception as exc:  # the parent reports it; a traceback here helps no one
        result = ("error", db.error_label(exc))
    with contextlib.suppress(OSError):  # a coordinator gone meanwhile: nobody to tell
        out.send(result)
        out.close()


class MetricsPass:
    """Started before the reconciliation, read after it (`result`): the metrics either way,
    never a second answer of another kind."""

    def __init__(self, spec: LedgerSpec, ledger: Ledger, workers: int,
                 ops_per_transaction: int, ops: int) -> None:
        self.ledger, self.workers, self.n = ledger, workers, ops_per_transaction
        self.process: Optional[multiprocessing.process.BaseProcess] = None
        if ops < CHILD_FROM_OPS:
            return
        ctx = multiprocessing.get_context("spawn")
        self.answer, out = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_metrics_child, name="ptor-metrics",
                                   args=(spec, workers, ops_per_transaction, out),
                                   daemon=True)
        self.process.start()
        out.close()

    def result(self) -> RunMetrics:
        """The metrics. In-process when no child was started, and when the child failed
        (said in the log): the pass then fails, if it must, as it always did."""
        if self.process is None:
            return self.in_process()
        status, value = "error", "it gave no answer"
        try:
            if self.answer.poll(RESULT_TIMEOUT):
                status, value = self.answer.recv()
        except EOFError:
            value = "it exited without an answer"
        finally:
            self.answer.close()
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        if status == "ok":
            return value
        log.warning("the metrics pass beside the reconciliation failed (%s, exit status "
                    "%s); reading the ledger again in-process", value, self.process.exitcode)
        return self.in_process()

    def cancel(self) -> None:
        """The drill ends another way: no answer is wanted."""
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join()

    def in_process(self) -> RunMetrics:
        return ledger_metrics(self.ledger, self.workers, self.n)
