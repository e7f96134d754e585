"""The worker's client (drill/client.py) against a fake connection: what each way an op or
a transaction can end makes of the completed op, and of the session.

The fake answers the statements the client sends from a script, so these tests pin the
client's rules (acknowledged, failed for certain, in doubt; a pooler that moved the
session); that the statements do what they claim on a real server is
tests/integration/test_statements.py's part."""

from __future__ import annotations

import itertools

import psycopg2
import pytest

from ptor_harness.config.scenario import WorkerSpec
from ptor_harness.drill import client as client_module
from ptor_harness.drill.client import NOT_SENT, Client, Session
from ptor_harness.ops import (
    DELETE,
    FAILED,
    INDETERMINATE,
    INSERT,
    NOT_REPLICATED,
    OK,
    OWN_TIMEOUT_NOT_REPLICATED,
    UPDATE,
    Op,
)

CANCELLED_WAIT = ("WARNING:  canceling wait for synchronous replication due to user request\n"
                  "DETAIL:  The transaction has already committed locally, but might not "
                  "have been replicated to the standby.\n")


def server_error(base, code):
    cls = type("ServerError", (base,), {"pgcode": code})
    return cls(f"server said {code}")


class FakeCursor:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn
        self.rowcount = -1
        self.row = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, params=None):
        self.conn.sent.append((sql, params))
        if "inet_server_addr" in sql and "pg_control_system" in sql:  # servers.open_session
            if self.conn.no_control:
                raise psycopg2.errors.InsufficientPrivilege("permission denied")
            identity = self.conn.identities.pop(0)
            answer = identity if isinstance(identity, BaseException) else \
                (1, identity + ("7001", self.conn.backend_pid, None))
        elif "inet_server_addr" in sql:
            identity = self.conn.identities.pop(0)
            answer = identity if isinstance(identity, BaseException) else (1, identity)
        elif "system_identifier" in sql:
            answer = (1, ("7001",))
        elif "pg_backend_pid" in sql:
            answer = (1, (self.conn.backend_pid,))
        elif sql.startswith("PREPARE"):
            answer = (-1, None)
        else:
            answer = self.conn.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            answer = answer(self.conn)
        self.rowcount, self.row = answer

    def fetchone(self):
        return self.row


class FakeConn:
    """A session whose server answers op statements from `answers`, in order: a
    (rowcount, row) pair, an exception to raise, or a callable of the connection (to
    leave a notice) returning the pair. Identity queries take `identities` in order:
    (host, port, in_recovery, timeline, started_at)."""

    def __init__(self, answers=(), identities=(), pooled=False, no_control=False):
        self.no_control = no_control  # the role may not read pg_control_system()
        self.answers = list(answers)
        self.identities = list(identities)
        self.sent: list = []
        self.notices: list = []
        self.autocommit = True
        self.closed = 0
        self.backend_pid = 40 if pooled else 41

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = 1

    def fileno(self):
        return -1

    def get_backend_pid(self):
        return 41


def spec(statement_timeout: float = 5.0) -> WorkerSpec:
    return WorkerSpec(worker=3, run_tag="t", primary_pgdsn="host=127.0.0.1", table='"s"."w3"',
                      insert_percent=50, update_percent=30, delete_percent=20, seed=1,
                      payload_bytes=16, rto_conn_timeout=2.0,
                      statement_timeout=statement_timeout, sync_ledger=True)


def on_session(conn: FakeConn, pooled: bool = False, statement_timeout: float = 5.0):
    """A client with a session already open on `conn` (session 1, server started at 100),
    and the list its identities go to."""
    seen: list = []
    client = Client(spec(statement_timeout), seen.append)
    client.numbered = 1
    client.session = Session(conn, conn.cursor(), -1, 1, 100.0, pooled,
                             client.statements.of(pooled), client.statements.of(pooled, True))
    return client, seen


def ops_sent(conn: FakeConn) -> list:
    return [sql for sql, _ in conn.sent]


def test_an_acknowledged_insert_completes_ok_on_its_session():
    conn = FakeConn([(1, None)])
    client, _ = on_session(conn)
    op = Op(*client.invoke(7, INSERT, 9))
    assert (op.worker, op.seq, op.kind, op.key, op.outcome, op.error) == (3, 7, INSERT, 9, OK,
                                                                          None)
    assert (op.session, op.rows, op.prev_seq) == (1, 1, None)
    assert op.t_start <= op.t_end
    sql, params = conn.sent[0]
    assert sql.startswith("INSERT") and params[:2] == (9, 7) and params[3] == op.t_start
    assert client.session is not None and not conn.closed


def test_an_update_completes_with_the_version_it_replaced():
    conn = FakeConn([(1, (5,))])
    client, _ = on_session(conn)
    op = Op(*client.invoke(8, UPDATE, 9))
    assert (op.outcome, op.rows, op.prev_seq) == (OK, 1, 5)


def test_a_rejected_op_fails_for_certain_and_ends_the_session():
    conn = FakeConn([server_error(psycopg2.InternalError, "25006")])
    client, _ = on_session(conn)
    op = Op(*client.invoke(7, DELETE, 9))
    assert op.outcome == FAILED and op.error.startswith("25006")
    assert (op.rows, op.prev_seq) == (None, None)
    assert client.session is None and conn.closed


def test_an_op_whose_session_was_lost_is_in_doubt():
    conn = FakeConn([psycopg2.OperationalError("server closed the connection unexpectedly")])
    client, _ = on_session(conn)
    op = Op(*client.invoke(7, UPDATE, 9))
    assert op.outcome == INDETERMINATE and "server closed" in op.error
    assert (op.rows, op.prev_seq, op.session) == (None, None, 1)
    assert client.session is None


def cancelled_wait(rows):
    def answer(conn):
        conn.notices.append(CANCELLED_WAIT)
        return rows
    return answer


def test_a_cancelled_wait_for_a_standby_is_acknowledged_but_labelled():
    conn = FakeConn([cancelled_wait((1, None)), (1, None)])
    client, _ = on_session(conn)
    op = Op(*client.invoke(7, INSERT, 9))
    assert (op.outcome, op.error, op.rows) == (OK, NOT_REPLICATED, 1)
    assert conn.notices == []  # taken off: the next op starts with none
    assert Op(*client.invoke(8, INSERT, 10)).error is None


def test_a_cancelled_wait_as_long_as_the_own_timeout_is_in_doubt(monkeypatch):
    clock = itertools.count(1000.0, 3.0)  # every reading 3 s after the one before

    class Clock:
        @staticmethod
        def time():
            return next(clock)

    monkeypatch.setattr(client_module, "time", Clock)
    conn = FakeConn([cancelled_wait((1, None))])
    client, _ = on_session(conn, statement_timeout=2.0)
    op = Op(*client.invoke(7, INSERT, 9))
    assert (op.outcome, op.error, op.rows) == (INDETERMINATE, OWN_TIMEOUT_NOT_REPLICATED, None)
    assert client.session is None


TRANSACTION = [(1, INSERT, 11), (2, UPDATE, 12), (3, DELETE, 13)]


def test_a_transaction_completes_together_with_its_commit():
    conn = FakeConn([(1, None), (1, (4,)), (1, (6,)), (-1, None)])
    client, _ = on_session(conn)
    done = [Op(*op) for op in client.invoke_transaction(TRANSACTION)]
    sent = ops_sent(conn)
    assert sent[0].startswith("BEGIN; INSERT") and not sent[1].startswith("BEGIN")
    assert sent[-1] == "COMMIT"
    assert [op.outcome for op in done] == [OK] * 3
    assert [op.prev_seq for op in done] == [None, 4, 6]
    assert len({op.t_end for op in done}) == 1 and client.session is not None


def test_an_error_before_the_commit_fails_every_op_and_sends_no_more():
    conn = FakeConn([(1, None), server_error(psycopg2.IntegrityError, "23505")])
    client, _ = on_session(conn)
    done = [Op(*op) for op in client.invoke_transaction(TRANSACTION)]
    assert [op.outcome for op in done] == [FAILED] * 3
    assert done[0].rows is None and done[2].error == NOT_SENT
    assert "COMMIT" not in ops_sent(conn) and len(conn.sent) == 2
    assert client.session is None


def test_a_commit_without_an_answer_leaves_the_whole_transaction_in_doubt():
    conn = FakeConn([(1, None), (1, (4,)), (1, (6,)),
                     server_error(psycopg2.OperationalError, "57P01")])
    client, _ = on_session(conn)
    done = [Op(*op) for op in client.invoke_transaction(TRANSACTION)]
    assert [op.outcome for op in done] == [INDETERMINATE] * 3
    assert all(op.rows is None and op.prev_seq is None for op in done)


IDENTITY = ("127.0.0.1", 7212, False, 2)


def test_behind_a_pooler_an_op_on_another_server_begins_a_session_named_by_it():
    conn = FakeConn([(1, (200.0,))], identities=[IDENTITY + (200.0,)], pooled=True)
    client, seen = on_session(conn, pooled=True)
    op = Op(*client.invoke(7, INSERT, 9))
    assert op.outcome == OK and op.session == 2
    assert [(i.session, i.port, i.started_at, i.at) for i in seen] == [
        (2, 7212, 200.0, op.t_end)]
    assert (client.session.number, client.session.server_started) == (2, 200.0)


def test_a_pooler_that_moved_again_leaves_the_op_on_a_server_unknown():
    conn = FakeConn([(1, (200.0,))], identities=[IDENTITY + (300.0,)], pooled=True)
    client, seen = on_session(conn, pooled=True)
    op = Op(*client.invoke(7, INSERT, 9))
    assert op.session == 2 and [i.session for i in seen] == [3]
    assert all(i.session != op.session for i in seen)  # no identity names the op's session
    assert (client.session.number, client.session.server_started) == (3, 300.0)


def test_an_op_that_changed_no_row_asks_its_server_only_then():
    conn = FakeConn([(0, None), (1, (100.0,))], pooled=True)
    client, seen = on_session(conn, pooled=True)
    op = Op(*client.invoke(7, DELETE, 9))
    assert (op.outcome, op.rows, op.session) == (OK, 0, 1) and seen == []
    assert len(conn.sent) == 2  # the DELETE, then the start time of its server


def test_a_server_that_cannot_be_named_keeps_the_op_and_ends_the_session():
    conn = FakeConn([(1, (200.0,))], identities=[psycopg2.OperationalError("gone")],
                    pooled=True)
    client, seen = on_session(conn, pooled=True)
    op = Op(*client.invoke(7, INSERT, 9))
    assert op.outcome == OK and op.session == 3 and seen == []
    assert client.session is None and client.numbered == 3


@pytest.mark.parametrize("in_recovery, connected", [(False, True), (True, False)])
def test_connect_names_the_server_and_keeps_only_a_primary(monkeypatch, in_recovery, connected):
    conn = FakeConn(identities=[("127.0.0.1", 7211, in_recovery, 1, 100.0)])
    monkeypatch.setattr(client_module.db, "connect", lambda *args: conn)
    seen: list = []
    client = Client(spec(), seen.append)
    assert client.connect() is connected
    assert [(i.session, i.in_recovery) for i in seen] == [(1, in_recovery)]
    assert (client.session is not None) is connected and bool(conn.closed) is not connected
    if connected:
        assert client.session.sql[INSERT].startswith("EXECUTE")  # prepared on its own server


@pytest.mark.parametrize("no_control", [False, True])
def test_a_new_session_is_one_round_trip_before_its_statements_are_prepared(monkeypatch,
                                                                           no_control):
    """Who the server is, whether a pooler answers, and the statement timeout (on the
    session's own backend) in one statement; a role that may not read pg_control_system()
    gets them in several, without the system identifier."""
    conn = FakeConn(identities=[("127.0.0.1", 7211, False, 1, 100.0)] * 2,
                    no_control=no_control)
    monkeypatch.setattr(client_module.db, "connect", lambda *args: conn)
    seen: list = []
    client = Client(spec(statement_timeout=5.0), seen.append)
    assert client.connect() is True and not client.session.pooled
    sent = [sql.split()[0] for sql, _ in conn.sent]
    assert sent == (["SELECT"] * 5 + ["PREPARE"] if no_control
                    else ["SELECT", "PREPARE"])
    assert (41, "5000ms") in [params for _, params in conn.sent]
    assert seen[0].system_id == "7001"
    # no statement timeout: the role's own stays (no backend matches -1)
    conn = FakeConn(identities=[("127.0.0.1", 7211, False, 1, 100.0)])
    monkeypatch.setattr(client_module.db, "connect", lambda *args: conn)
    assert Client(spec(statement_timeout=0), seen.append).connect() is True
    assert conn.sent[0][1] == (-1, "0ms")


def test_a_failed_connect_is_no_session(monkeypatch):
    def refuse(*args):
        raise psycopg2.OperationalError("could not connect")

    monkeypatch.setattr(client_module.db, "connect", refuse)
    seen: list = []
    client = Client(spec(), seen.append)
    assert client.connect() is False and client.session is None and seen == []
