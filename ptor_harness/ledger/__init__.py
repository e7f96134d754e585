"""The ledger: ptor's durable journal of a run, kept apart from the cluster under test.

Two backends behind one interface: PostgreSQL (`--repo-pgdsn`) and an embedded SQLite file
in the run's output folder (the default, so a drill needs only the primary DSN). Only the
recorder writes ops; the coordinator writes the run record and phase events; reconciliation
streams ops back in seq or key order.

Tables (names prefixed `ledger_` so a repo may share a database with the primary's tables):
  ledger_run(run_id, started_at, finished_at, scenario, verdict, report, format)
  ledger_intent(run_id, worker, seq, kind, key)            -- sync mode: before the op is sent
  ledger_op(run_id, worker, seq, kind, key, t_start, t_end, outcome, error, session, rows,
            prev_seq)
  ledger_session(run_id, worker, session, at, addr, port, in_recovery, system_id, timeline,
                 started_at)
  ledger_event(run_id, at, name, detail)
"""

from __future__ import annotations

from typing import Optional

from .base import ADDED_COLUMNS, RECORD_TABLES, Ledger, copy_rows, record_table_ddl

__all__ = ["ADDED_COLUMNS", "RECORD_TABLES", "Ledger", "LedgerSpec", "copy_rows",
           "record_table_ddl"]


class LedgerSpec:
    """Where a run's ledger lives; small and picklable, so the recorder can open its own."""

    def __init__(self, run_id: str, repo_pgdsn: Optional[str], schema: str,
                 sqlite_path: Optional[str], durable: bool, outage_limit: float = 0.0,
                 spill_path: Optional[str] = None) -> None:
        self.run_id = run_id
        self.repo_pgdsn = repo_pgdsn
        self.schema = schema
        self.sqlite_path = sqlite_path
        self.durable = durable
        self.outage_limit = outage_limit  # how long the recorder waits for a lost repo
        self.spill_path = spill_path  # async repo mode: where batches wait for a lost repo

    @property
    def kind(self) -> str:
        return "postgresql" if self.repo_pgdsn else "sqlite"

    def open(self) -> Ledger:
        if self.repo_pgdsn:
            from .postgres import PostgresLedger

            return PostgresLedger(self.repo_pgdsn, self.schema, self.run_id)
        from .sqlite import SqliteLedger

        assert self.sqlite_path
        return SqliteLedger(self.sqlite_path, self.run_id, self.durable)
