"""The PostgreSQL ledger (`--repo-pgdsn`): batches go in with COPY, reads stream through a
server-side cursor so a ledger of millions of ops never sits in ptor's memory."""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Iterator
from typing import Optional

import psycopg2
from psycopg2 import extensions
from psycopg2.extras import execute_values

from .. import bounds, db, servers
from ..errors import ClusterError
from ..schema import MARK
from .base import (
    ADDED_COLUMNS,
    OPTIONAL_TABLES,
    RECORD_TABLES,
    Ledger,
    copy_rows,
    record_table_ddl,
)

TABLES = {
    "ledger_run": "run_id text PRIMARY KEY, started_at double precision, "
                  "finished_at double precision, scenario text, verdict text, report text, "
                  "format int",
    **{table: record_table_ddl(table, postgres=True) for table in RECORD_TABLES},
    "ledger_event": "run_id text NOT NULL, at double precision, name text, detail text",
}
_cursor_names = itertools.count()
APPLICATION = "ptor-ledger"  # the ledger's sessions name themselves so on the repo


def init_repo(conn, schema: str) -> None:
    """Create the ledger tables in the repo (idempotent), each marked as ptor's."""
    q = db.quote_ident
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE SCHEMA {q(schema)}")
            cur.execute(f"COMMENT ON SCHEMA {q(schema)} IS %s", (MARK,))
        for table, columns in TABLES.items():
            cur.execute(f"CREATE TABLE IF NOT EXISTS {q(schema)}.{q(table)} ({columns})")
            cur.execute(f"COMMENT ON TABLE {q(schema)}.{q(table)} IS %s", (MARK,))
        for table, column, pg_type, _sqlite_type in ADDED_COLUMNS:  # an older ptor's repo
            cur.execute(f"ALTER TABLE {q(schema)}.{q(table)} "
                        f"ADD COLUMN IF NOT EXISTS {q(column)} {pg_type}")
    conn.commit()


def missing_repo_tables(conn, schema: str, cdc: bool = False) -> list[str]:
    """Ledger tables, or columns a newer ledger format added, that the repo lacks (the
    CDC consumer's table only for a drill with one: OPTIONAL_TABLES)."""
    with conn.cursor() as cur:
        cur.execute("SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace LEFT JOIN pg_attribute a ON a.attrelid = c.oid "
                    "AND a.attnum > 0 AND NOT a.attisdropped "
                    "WHERE n.nspname = %s AND c.relname = ANY(%s)", (schema, list(TABLES)))
        columns = {(table, column) for table, column in cur.fetchall()}
    conn.rollback()
    present = {table for table, _column in columns}
    missing = [f"{schema}.{t}" for t in TABLES if t not in present
               and (cdc or t not in OPTIONAL_TABLES)]
    return missing + [f"{schema}.{table}.{column}" for table, column, _t, _s in ADDED_COLUMNS
                      if table in present and (table, column) not in columns]


class PostgresLedger(Ledger):
    """Commits are always synchronous, in async repo mode too: a repo that crashes must not
    take ledger rows it confirmed with it (the recorder forgets a batch once it is
    committed), or reconciliation would report their ops lost and their rows as phantoms.
    Async repo mode spares the workers the wait, not the ledger its durability."""

    def __init__(self, dsn: str, schema: str, run_id: str, timeout: float = 5.0) -> None:
        super().__init__(run_id)
        self.dsn, self.schema, self.timeout = dsn, schema, timeout
        self.backend: Optional[tuple] = None  # (pid, backend_start) of the session
        try:
            self.conn = self._session()
        except psycopg2.Error as exc:
            raise ClusterError(f"cannot connect to the repo: {db.error_label(exc)}") from None

    def _session(self):
        conn = db.connect(self.dsn, APPLICATION, self.timeout, autocommit=False)
        try:
            with bounds.bounded(conn, self.timeout), conn.cursor() as cur:
                cur.execute(f"SET search_path = {db.quote_ident(self.schema)}")
                cur.execute("SHOW synchronous_commit")
                if cur.fetchone()[0] == "off":  # a stronger setting of the repo's stays
                    cur.execute("SET synchronous_commit = on")
                # the server's own name for this session, unless a pooler stands between
                # (its backend then serves other clients too: see end_session)
                self.backend = None if servers.behind_pooler(conn) else self._backend(cur)
            conn.commit()
        except Exception:
            conn.close()
            raise
        return conn

    @staticmethod
    def _backend(cur) -> Optional[tuple]:
        cur.execute("SELECT pid, backend_start FROM pg_stat_activity "
                    "WHERE pid = pg_backend_pid()")
        return cur.fetchone()

    def reconnect(self) -> None:
        """A new session after the repo went away; raises psycopg2.Error while it is
        still away. The session it replaces is ended on the server (end_session)."""
        with contextlib.suppress(Exception):
            self.conn.close()
        old = self.backend
        self.conn = self._session()
        if old is not None:
            self.end_session(old)

    def end_session(self, backend: tuple) -> None:
        """End this ledger's previous session on the server, if the server still runs it.

        After a partition the client gave its session up, but the server may not know:
        a backend whose client went silent lives until its own retransmissions reach the
        client's host again (measured: 10.6 s after the link came back). Its transaction,
        cut off mid-batch, holds the batch's keys, and the batch written again waits
        behind it (ON CONFLICT waits for the conflicting transaction), and with it every
        worker in sync repo mode. Ending it rolls back what it had not committed; the
        batch written again then holds every row once either way. Only the session this
        ledger opened is ended: the same pid, start time and application name, this
        role's own (PostgreSQL lets a role end its own sessions); should the server
        refuse, the batch waits as before."""
        pid, started = backend
        try:
            with bounds.bounded(self.conn, self.timeout), self.conn.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE pid = %s AND backend_start = %s AND application_name = %s "
                            "AND usename = current_user", (pid, started, APPLICATION))
            self.conn.commit()
        except psycopg2.Error:
            with contextlib.suppress(psycopg2.Error):
                self.conn.rollback()

    def _append_again(self, table: str, columns: str, rows: list[tuple]) -> None:
        """COPY into a session's temporary table, then move what is new across; the staging
        table is emptied after every batch, so a replay of many batches in one transaction
        stays linear (each batch moves only its own rows)."""
        if not self._can_copy():
            self._insert(table, columns, rows, " ON CONFLICT DO NOTHING")
            return
        with self.conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS again_{table} (LIKE {table}) "
                        "ON COMMIT DELETE ROWS")
            cur.copy_expert(f"COPY again_{table} ({columns}) FROM STDIN",
                            io.StringIO(copy_rows(rows)))
            cur.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM again_{table} "
                        "ON CONFLICT DO NOTHING")
            cur.execute(f"TRUNCATE again_{table}")

    def _execute(self, sql: str, params: tuple = ()) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)

    def _query(self, sql: str, params: tuple = ()) -> Iterator[tuple]:
        cursor = self.conn.cursor(name=f"ptor_ledger_{next(_cursor_names)}")
        cursor.itersize = 20000
        try:
            cursor.execute(sql, params)
            yield from cursor
        finally:
            cursor.close()
            self.conn.commit()

    @staticmethod
    def _can_copy() -> bool:
        """COPY cannot run through a wait callback (psycopg2's green mode), which a process
        whose threads share PostgreSQL has (db.share_between_threads: `ptor reconcile`
        replaying a spill file); there, rows go in as multi-row INSERTs."""
        return extensions.get_wait_callback() is None

    def _insert(self, table: str, columns: str, rows: list[tuple], suffix: str = "") -> None:
        with self.conn.cursor() as cur:
            execute_values(cur, f"INSERT INTO {table} ({columns}) VALUES %s{suffix}", rows,
                           page_size=1000)

    def _append(self, table: str, columns: str, rows: list[tuple]) -> None:
        if not self._can_copy():
            self._insert(table, columns, rows)
            return
        with self.conn.cursor() as cur:
            cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.StringIO(copy_rows(rows)))

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
