"""A worker's client of the primary: one session at a time, and `invoke`, which runs an op
(or `invoke_transaction`, a transaction of ops) and returns it completed: ok, failed for
certain, or in doubt (Jepsen's client `invoke!`, which returns the completed op; its
generator plans elsewhere). Planning, the ledger, the board and stopping stay in the
worker's loop (worker.py); what an ending means is acknowledgement.py's one rule.

A completed op is an `ops.Op`'s fields as a plain tuple: built and pickled once per op on
the load's hot path, where a named tuple's construction and pickling cost measurably more.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, NamedTuple, Optional

import psycopg2

from .. import bounds, db, servers
from ..acknowledgement import acknowledgement_notice, classify, judge
from ..config import WorkerSpec
from ..ops import DELETE, FAILED, OK, Identity
from ..schema import payload
from .statements import OpStatements, prepared_on, send_op

NOT_SENT = "not sent: an earlier op of its transaction failed"


class Session(NamedTuple):
    """One connection to a writable primary, replaced whole: on reconnect, and when a
    pooler has moved the connection to another server (`Client.follow_server`)."""

    conn: Any
    cur: Any
    fd: int  # the socket, for the op bound
    number: int  # the worker's session number: the ledger's key of its server identity
    server_started: Optional[float]  # of the server the session is on
    pooled: bool  # through a pooler: each op names its server
    sql: dict  # each kind's statement, alone ...
    begin_sql: dict  # ... and opening a transaction


class Client:
    """Runs one worker's ops on whatever primary the endpoint leads to. Every server
    identity it reads goes to `identities` (the ledger's record of which server a session
    was on), including a standby's, which it then leaves."""

    def __init__(self, spec: WorkerSpec, identities: Callable[[Identity], None]) -> None:
        self.spec = spec
        self.worker = spec.worker
        self.identities = identities
        self.statements = OpStatements(spec.table)
        self.session: Optional[Session] = None
        self.numbered = 0  # session numbers handed out (a connect that failed used one too)
        self.app_name = f"ptor-worker-{spec.worker}"
        self.op_bound = bounds.OpBound(spec.statement_timeout + spec.rto_conn_timeout,
                                       spec.statement_timeout > 0)
        # the session's own statement timeout; none behind a pooler (db.connect sets it
        # only on a connection of ptor's own)
        self.own_timeout = spec.statement_timeout

    def start(self) -> None:
        """The load begins: the op bound starts watching."""
        self.op_bound.start()

    def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.conn.close()
        self.session = None

    def connect(self) -> bool:
        """One attempt to open a session on a writable primary; False if none was had (no
        server, or a standby answered)."""
        spec = self.spec
        try:
            conn = db.connect(spec.primary_pgdsn, self.app_name, spec.rto_conn_timeout)
            try:
                self.numbered += 1
                with bounds.bounded(conn, spec.rto_conn_timeout):
                    identity, pooled = servers.open_session(conn, self.worker, self.numbered,
                                                            spec.statement_timeout)
                    prepared = not (pooled or identity.in_recovery) and \
                        prepared_on(conn, self.statements.prepare)
            except Exception:
                conn.close()
                raise
        except psycopg2.Error:
            return False
        self.identities(identity)
        if identity.in_recovery:
            conn.close()  # a standby: keep looking for the primary
            return False
        statements = self.statements
        self.session = Session(conn, conn.cursor(), conn.fileno(), self.numbered,
                               identity.started_at, pooled,
                               statements.of(pooled, prepared=prepared),
                               statements.of(pooled, True, prepared))
        return True

    def judged(self, outcome: str, error: Optional[str], took: float,
               session: Session) -> tuple[str, Optional[str]]:
        """acknowledgement.judge with the session's own statement timeout."""
        return judge(outcome, error, took, 0.0 if session.pooled else self.own_timeout)

    def invoke(self, seq: int, kind: str, key: int) -> tuple:
        """Run one op in its own transaction; the op completed. An op without an
        acknowledgement ends the session: the next one connects anew."""
        s = self.session
        spec = self.spec
        data = payload(spec.run_tag, spec.worker, seq, spec.payload_bytes) if kind != DELETE \
            else None
        t_start = time.time()
        rows = prev_seq = started = None
        self.op_bound.begin(s.fd, t_start)
        try:
            rows, prev_seq, started = send_op(s.cur, s.sql, s.pooled, kind, key, seq, data,
                                              t_start)
            outcome, error = OK, acknowledgement_notice(s.conn)
        except psycopg2.Error as exc:
            outcome, error = classify(exc, sent=True), db.error_label(exc)
        self.op_bound.end()
        t_end = time.time()
        if error is not None:
            outcome, error = self.judged(outcome, error, t_end - t_start, s)
            if outcome != OK:
                rows = prev_seq = None  # as for any op without an acknowledgement
        number = s.number
        if outcome != OK:
            self.close()
        elif s.pooled and started != s.server_started:
            number = self.follow_server(started, t_end)
        return (self.worker, seq, kind, key, t_start, t_end, outcome, error, number, rows,
                prev_seq)

    def invoke_transaction(self, ops: list) -> list[tuple]:
        """Run ops (seq, kind, key) between BEGIN and COMMIT, the COMMIT their one
        acknowledgement: all ok, failed or in doubt together, completed with the COMMIT's
        end. An error before the COMMIT was sent fails them all for certain (a server
        commits nothing without it); ops after the failing one are never sent, and
        complete failed with no effect."""
        s, spec = self.session, self.spec
        cur, pooled = s.cur, s.pooled
        sent: list[tuple] = []  # (seq, kind, key, t_start, rows, prev_seq)
        error = started = None
        sql = s.begin_sql
        try:
            for seq, kind, key in ops:
                data = payload(spec.run_tag, spec.worker, seq, spec.payload_bytes) \
                    if kind != DELETE else None
                t_start = time.time()
                self.op_bound.begin(s.fd, t_start)
                sent.append((seq, kind, key, t_start, None, None))
                rows, prev_seq, server = send_op(cur, sql, pooled, kind, key, seq, data,
                                                 t_start)
                sent[-1] = (seq, kind, key, t_start, rows, prev_seq)
                started = server if server is not None else started
                sql = s.sql
            t_commit = time.time()
            self.op_bound.begin(s.fd, t_commit)
            try:
                cur.execute("COMMIT")
                outcome, error = OK, acknowledgement_notice(s.conn)
            except psycopg2.Error as exc:
                outcome, error = classify(exc, sent=True), db.error_label(exc)
        except psycopg2.Error as exc:  # before the COMMIT: rolled back, nothing applied
            outcome, error = FAILED, db.error_label(exc)
            t_commit = time.time()
        self.op_bound.end()
        t_end = time.time()
        outcome, error = self.judged(outcome, error, t_end - t_commit, s)
        number = s.number
        if outcome != OK:
            self.close()
        elif pooled and started != s.server_started:
            number = self.follow_server(started, t_end)
        w = self.worker
        done = [(w, seq, kind, key, t_start, t_end, outcome, error, number,
                 rows if outcome == OK else None, prev_seq if outcome == OK else None)
                for seq, kind, key, t_start, rows, prev_seq in sent]
        done += [(w, seq, kind, key, t_end, t_end, FAILED, NOT_SENT, number, None, None)
                 for seq, kind, key in ops[len(sent):]]
        return done

    def follow_server(self, started: Optional[float], acked_at: float) -> int:
        """The session number of an op just acknowledged whose server may not be the one
        the session's identity names (`started`: its postmaster's start, as the op returned
        it; None for an update or delete that matched no row, which returned nothing).

        A different server (a transaction pooler moved the connection) begins a new
        session, whose identity is read at once and counts from the op's acknowledgement.
        Should it come from yet another server (the pooler moved again in between), the
        op gets a session with no identity: its server unknown, never a wrong one. A
        failed read ends the session; the op stays acknowledged."""
        s = self.session
        try:
            with bounds.bounded(s.conn, self.spec.rto_conn_timeout):
                if started is None:  # rare: the op changed no row
                    s.cur.execute(f"SELECT {servers.SERVER_STARTED_SQL}")
                    started = s.cur.fetchone()[0]
                    if started == s.server_started:
                        return s.number
                self.numbered += 1
                op_number = self.numbered
                identity = servers.server_identity(s.conn, self.worker, op_number)
        except psycopg2.Error:
            self.close()
            self.numbered += 1  # the op's server is unknown; the next connect starts anew
            return self.numbered
        if identity.started_at == started:
            identity = identity._replace(at=acked_at)
        else:
            self.numbered += 1
            identity = identity._replace(session=self.numbered)
        self.identities(identity)
        # a server that cannot say when it started must not make every op ask again
        self.session = s._replace(number=self.numbered,
                                  server_started=identity.started_at
                                  if identity.started_at is not None else started)
        return op_number
