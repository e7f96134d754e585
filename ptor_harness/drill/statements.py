"""The one statement each kind of op runs, as the worker sends it, and what it returns."""

from __future__ import annotations

from typing import Optional

import psycopg2

from .. import servers
from ..ops import DELETE, INSERT, UPDATE


def op_statements(table: str, report_server: bool = False) -> dict[str, str]:
    """The one statement each kind of op runs (autocommit: alone, one op is one
    transaction; `OpStatements` opens a longer one).

    UPDATE and DELETE return the `last_seq` of the row version they replaced: the version
    chain (ops.Op.prev_seq), in the same round trip. The UPDATE keeps it in the row itself
    (`prev_seq = last_seq`: SET reads the version being replaced) and returns it; this
    costs no second index scan, which joining the row to itself did (measured: 17 % of
    the load with synchronous_commit off).

    With `report_server` every statement also returns when its server's postmaster
    started: behind a pooler a connection outlives its server (pgbouncer in transaction
    mode, repointed after a failover, runs the next transaction on the promoted node
    without an error), so the identity read at connect says nothing about the server of a
    later op. A different start time is a different server, or the same one restarted
    (Worker.follow_server). Only a connection through a pooler asks (servers.behind_pooler):
    measured with pgbench at synchronous_commit off, the start time (and the INSERT's
    RETURNING that carries it) cost 14 % of the load."""
    returning = {INSERT: [], UPDATE: ["prev_seq"], DELETE: ["last_seq"]}
    if report_server:
        for columns in returning.values():
            columns.append(servers.SERVER_STARTED_SQL)
    statements = {
        INSERT: f"INSERT INTO {table} (id, last_seq, payload, written_at) "
                "VALUES (%s, %s, %s, to_timestamp(%s))",
        UPDATE: f"UPDATE {table} SET prev_seq = last_seq, last_seq = %s, payload = %s, "
                "written_at = to_timestamp(%s) WHERE id = %s",
        DELETE: f"DELETE FROM {table} WHERE id = %s",
    }
    return {kind: sql + (f" RETURNING {', '.join(returning[kind])}" if returning[kind] else "")
            for kind, sql in statements.items()}


# Each kind's statement prepared on the server once per session (Worker.connect_once): an
# EXECUTE skips the parse, analysis and, after PostgreSQL's first five custom plans, the
# planning the plain statement pays every time. Only on a connection of ptor's own: behind
# a pooler the next transaction may run on a server session that never saw the PREPARE.
PREPARED_NAMES = {INSERT: "ptor_op_insert", UPDATE: "ptor_op_update", DELETE: "ptor_op_delete"}
_PARAMETER_TYPES = {INSERT: "bigint, bigint, text, double precision",
                    UPDATE: "bigint, text, double precision, bigint", DELETE: "bigint"}


def prepare_statements(plain: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(the one round trip that prepares every kind's statement, each kind's EXECUTE): the
    plain statements' `%s` become `$1..$n` in the PREPARE and stay `%s` in the EXECUTE,
    so `send_op` passes the same parameters either way."""
    prepares, executes = [], {}
    for kind, sql in plain.items():
        count = sql.count("%s")
        numbered = sql
        for n in range(1, count + 1):
            numbered = numbered.replace("%s", f"${n}", 1)
        prepares.append(f"PREPARE {PREPARED_NAMES[kind]} ({_PARAMETER_TYPES[kind]}) AS "
                        f"{numbered}")
        executes[kind] = f"EXECUTE {PREPARED_NAMES[kind]} ({', '.join(['%s'] * count)})"
    return "; ".join(prepares), executes


def prepared_on(conn, prepare: str) -> bool:
    """Prepare the op statements on a new session; False where the server refused (the
    plain statements then serve, as before there were prepared ones). A broken connection
    raises psycopg2.Error, as the identity query would have."""
    try:
        with conn.cursor() as cur:
            cur.execute(prepare)
        return True
    except psycopg2.Error:
        if conn.closed:
            raise
        if not conn.autocommit:
            conn.rollback()
        return False


class OpStatements:
    """A worker table's statements: prepared (a connection of ptor's own), plain (where
    preparing failed) and through a pooler, each alone or opening a transaction:
    `BEGIN; <op>` is one round trip (libpq returns the last statement's result), so a
    transaction of N ops costs N + 1 round trips, its COMMIT the last."""

    def __init__(self, table: str) -> None:
        self.direct = op_statements(table)
        self.pooled = op_statements(table, True)
        self.prepare, self.prepared = prepare_statements(self.direct)
        forms = {"direct": self.direct, "pooled": self.pooled, "prepared": self.prepared}
        self.forms = {(name, begin): {kind: ("BEGIN; " if begin else "") + sql
                                      for kind, sql in form.items()}
                      for name, form in forms.items() for begin in (False, True)}

    def of(self, pooled: bool, begin: bool = False, prepared: bool = False) -> dict[str, str]:
        name = "pooled" if pooled else "prepared" if prepared else "direct"
        return self.forms[(name, begin)]


def send_op(cur, sql: dict[str, str], pooled: bool, kind: str, key: int, seq: int,
            data: Optional[str], sent_at: float) -> tuple:
    """Run one op's statement; (rows it changed, the `last_seq` it replaced, its server's
    start time behind a pooler). Raises psycopg2.Error."""
    prev_seq = started = None
    if kind == INSERT:
        cur.execute(sql[INSERT], (key, seq, data, sent_at))
    elif kind == DELETE:
        cur.execute(sql[DELETE], (key,))
    else:
        cur.execute(sql[UPDATE], (seq, data, sent_at, key))
    rows = cur.rowcount
    if rows and (kind != INSERT or pooled):
        returned = cur.fetchone()
        if kind != INSERT:
            prev_seq = returned[0]
        if pooled:
            started = returned[-1]
    return rows, prev_seq, started
