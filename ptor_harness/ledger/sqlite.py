"""The embedded ledger: one SQLite file in the run's output folder.

WAL journal; `synchronous=FULL` in sync repo mode so a committed batch survives a crash of
the machine, `NORMAL` in async mode (survives a crash of ptor, which is what it needs).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator

from ..errors import ClusterError
from .base import (
    ADDED_COLUMNS,
    ARRIVAL_ORDER_TABLES,
    RECORD_TABLES,
    Ledger,
    record_table_ddl,
    table_key,
)

SCHEMA = "".join(
    ["CREATE TABLE IF NOT EXISTS ledger_run (run_id TEXT PRIMARY KEY, started_at REAL, "
     "finished_at REAL, scenario TEXT, verdict TEXT, report TEXT, format INTEGER);\n"]
    + [f"CREATE TABLE IF NOT EXISTS {table} ({record_table_ddl(table, postgres=False)})"
       + (" WITHOUT ROWID" if table_key(table, postgres=False) else "") + ";\n"
       for table in RECORD_TABLES]
    + ["CREATE TABLE IF NOT EXISTS ledger_event (run_id TEXT, at REAL, name TEXT, "
       "detail TEXT);\n"])


class SqliteLedger(Ledger):
    paramstyle = "?"

    def __init__(self, path: str, run_id: str, durable: bool = True) -> None:
        super().__init__(run_id)
        self.path = path
        self.indexed: set[str] = set()  # tables kept in arrival order, indexed for reading
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            self._open(path, durable)
        except sqlite3.Error as exc:  # a damaged or foreign file in a run folder
            raise ClusterError(f"the embedded ledger {path} cannot be used: {exc}") from None

    def _open(self, path: str, durable: bool) -> None:
        self.conn = sqlite3.connect(path, timeout=30, isolation_level="DEFERRED")
        os.chmod(path, 0o600)  # its WAL and shared-memory files take the same mode
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self.conn.executescript(SCHEMA)
        for table, column, _pg_type, sqlite_type in ADDED_COLUMNS:  # an older ptor's file
            present = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sqlite_type}")
        self.conn.commit()

    def _execute(self, sql: str, params: tuple = ()) -> None:
        self.conn.execute(sql, params)

    def _query(self, sql: str, params: tuple = ()) -> Iterator[tuple]:
        cursor = self.conn.cursor()
        cursor.arraysize = 10000
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany()
            if not rows:
                return
            yield from rows

    def _append(self, table: str, columns: str, rows: list[tuple]) -> None:
        marks = ", ".join("?" * (columns.count(",") + 1))
        self.conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)

    def _index_for_reading(self, table: str) -> None:
        if table in self.indexed:  # the check reads each worker's share: build it once
            return
        self.conn.execute(f"CREATE INDEX IF NOT EXISTS {ARRIVAL_ORDER_TABLES[table]}")
        self.conn.commit()
        self.indexed.add(table)

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()
