"""A share of the reconciliation, in a process of its own beside the coordinator's.

Reconciling a worker is a core's work (its ledger read in key order out of the repo, the
primary's rows streamed, the merge join in Python), and workers are independent until the
holes are counted at the end. On a large ledger the coordinator hands the higher half of
the workers to a child, reconciles the lower half itself, and takes the child's findings
in after its own, so the figures are those of one pass in worker order
(validation.reconcile_run). With the metrics pass beside both (metrics_pass.py), the
three reads share the machine's cores instead of adding up (docs/design.md,
"Reconciliation at scale").

Both read one state of one server: the coordinator's transaction exports its snapshot
(`pg_export_snapshot`) and the child's imports it (`SET TRANSACTION SNAPSHOT`), which only
the same server can honour. A child that reaches another server (a multi-host DSN or a
pooler that moved), cannot import the snapshot, or fails in any other way gives no
answer, and the coordinator reconciles those workers itself: the findings never depend on
whether the share worked.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Optional

import psycopg2

from .. import db
from ..ledger import LedgerSpec
from ..ops import Identity
from ..verify.validation import new_reconciler, reconcile_workers
from .beside import Beside

log = logging.getLogger("ptor")

SHARE_FROM_OPS = 1_000_000  # a second or more of reconciliation on a 2-core machine
REPEATABLE_READ = "REPEATABLE READ"  # a snapshot is exported and imported at this level


@dataclass(frozen=True)
class ShareCheck:
    """What the child needs to reconcile its workers as the coordinator would."""

    spec: LedgerSpec
    dsn: str  # the confirmed primary's (validation.Confirmed)
    timeout: float
    statement_timeout: float
    schema: str
    workers: list[int]  # the higher ones: their findings are taken in last
    run_tag: str
    payload_bytes: int
    full: bool
    identities: list[Identity]
    primary: Optional[Identity]
    outcomes_only: bool
    ops_per_transaction: int


def export_snapshot(conn) -> str:
    """Begin the coordinator's reading transaction at REPEATABLE READ (one snapshot for
    every worker's rows) and export that snapshot for the child."""
    conn.set_session(isolation_level=REPEATABLE_READ)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_export_snapshot()")
        return cur.fetchone()[0]


def _share_of(check: ShareCheck, snapshot: str) -> tuple:
    """The child's work: its own ledger and primary connections, its workers reconciled
    at the imported snapshot; the reconciler's findings and tally before `finish`."""
    ledger = check.spec.open()
    try:
        conn = db.connect(check.dsn, "ptor-validation", check.timeout, check.statement_timeout,
                          autocommit=False)
        try:
            conn.set_session(isolation_level=REPEATABLE_READ)
            with conn.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            reconciler = new_reconciler(check.identities, check.primary,
                                        check.ops_per_transaction)
            reconcile_workers(reconciler, conn, ledger, check.schema, check.workers,
                              check.run_tag, check.payload_bytes, check.full,
                              check.outcomes_only)
            conn.rollback()
        finally:
            conn.close()
    finally:
        ledger.close()
    return reconciler.findings, reconciler.tally


class ReconcileShare:
    """Started once the primary is confirmed, read by validation.reconcile_run after the
    coordinator's own workers (`result`): the child's partial findings, or None."""

    def __init__(self, conn, check: ShareCheck) -> None:
        """Export the snapshot on `conn` (the coordinator's reading connection, in no
        transaction yet) and start the child. Raises psycopg2.Error if the snapshot cannot
        be exported (the caller reconciles everything itself)."""
        self.workers = check.workers
        self.child = Beside("reconciliation share", _share_of, (check, export_snapshot(conn)))

    def result(self) -> Optional[tuple]:
        ok, value = self.child.result()
        if ok:
            return value
        log.warning("the share of the reconciliation beside the coordinator's failed (%s, "
                    "exit status %s); reconciling workers %s-%s in-process", value,
                    self.child.process.exitcode, self.workers[0], self.workers[-1])
        return None

    def cancel(self) -> None:
        """The drill ends another way: no answer is wanted."""
        self.child.cancel()


def start_share(conn, check: ShareCheck, ops: int) -> Optional[ReconcileShare]:
    """A share for a ledger of at least SHARE_FROM_OPS ops whose workers it splits with
    the coordinator; else, or when the snapshot cannot be exported (said in the log), None.
    The share takes the higher workers: one from worker 0 on (a single-worker drill) would
    leave the coordinator idle beside it, a process for nothing."""
    if ops < SHARE_FROM_OPS or not check.workers or check.workers[0] == 0:
        return None
    try:
        return ReconcileShare(conn, check)
    except psycopg2.Error as exc:
        log.warning("reconciling every worker in-process: the primary did not export a "
                    "snapshot (%s)", db.error_label(exc))
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
        return None
