"""Connections, identity and outcome classification against real servers."""

import socket
import threading
import time

import psycopg2
import pytest

from ptor_harness import acknowledgement, bounds, db, servers
from ptor_harness.ops import FAILED, INDETERMINATE

from .conftest import free_port_base


def test_identity_of_primary_and_standby(make_lab):
    lab = make_lab("sync")
    primary = db.connect(lab.nodes["node1"].dsn(), "t", 2)
    standby = db.connect(lab.nodes["node2"].dsn(), "t", 2)
    p = servers.server_identity(primary, 0, 1)
    s = servers.server_identity(standby, 0, 2)
    assert (p.port, p.in_recovery, p.timeline) == (lab.nodes["node1"].port, False, 1)
    assert (s.port, s.in_recovery, s.timeline) == (lab.nodes["node2"].port, True, 1)
    assert p.system_id == s.system_id and p.system_id.isdigit()
    assert p.addr == "127.0.0.1"


def test_a_session_opened_in_one_round_trip_says_what_the_separate_queries_say(make_lab):
    """servers.open_session against server_identity and behind_pooler, as a superuser and
    as a role without privileges; the statement timeout set on the session, and with none
    asked for, the role's own left alone. Each server also says at once whether it is a
    primary (servers.reported_primary, what the probe wakes the workers on)."""
    lab = make_lab("sync")
    primary, standby = lab.nodes["node1"], lab.nodes["node2"]
    primary.query("CREATE ROLE plain_worker LOGIN")
    primary.query("ALTER ROLE plain_worker SET statement_timeout = '7s'")
    for user in (lab.user.name, "plain_worker"):
        for node, in_recovery in ((primary, False), (standby, True)):
            dsn = f"host=127.0.0.1 port={node.port} dbname=postgres user={user}"
            conn = db.connect(dsn, "t", 2)
            try:
                identity, pooled = servers.open_session(conn, 0, 1, 5.0)
                apart = servers.server_identity(conn, 0, 1)
                assert identity._replace(at=0) == apart._replace(at=0)
                assert identity.in_recovery is in_recovery and not pooled
                assert not servers.behind_pooler(conn)
                assert servers.reported_primary(conn) is (not in_recovery)
                with conn.cursor() as cur:
                    cur.execute("SHOW statement_timeout")
                    assert cur.fetchone()[0] == "5s"
            finally:
                conn.close()
        conn = db.connect(f"host=127.0.0.1 port={primary.port} dbname=postgres user={user}",
                          "t", 2)
        try:
            servers.open_session(conn, 0, 1, 0.0)
            with conn.cursor() as cur:
                cur.execute("SHOW statement_timeout")
                assert cur.fetchone()[0] == ("7s" if user == "plain_worker" else "0")
        finally:
            conn.close()


def test_multi_host_dsn_reaches_the_writable_node(make_lab):
    lab = make_lab("sync")
    conn = db.connect(lab.primary_dsn(), "t", 1)
    assert servers.server_identity(conn, 0, 1).port == lab.nodes["node1"].port


def test_fractional_connect_deadline_is_honoured():
    with socket.socket() as silent:  # accepts into the backlog, never answers
        silent.bind(("127.0.0.1", free_port_base(1)))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(psycopg2.OperationalError, match="timed out after 0.3 s"):
            db.connect(f"host=127.0.0.1 port={port} dbname=x", "t", 0.3)
        # libpq's own connect_timeout cannot go below 2 s
        assert time.monotonic() - started < 1.5


def test_write_on_standby_is_a_definite_failure(make_lab):
    lab = make_lab("sync")
    conn = db.connect(lab.nodes["node2"].dsn(), "t", 2)
    with pytest.raises(psycopg2.Error) as err, conn.cursor() as cur:
        cur.execute("CREATE TABLE nope (id int)")
    assert err.value.pgcode == "25006"
    assert acknowledgement.classify(err.value, sent=True) == FAILED


def _in_flight_error(conn, sql):
    box = {}

    def run():
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        except psycopg2.Error as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def _statement_in_flight(node):
    """A session of ours running a long statement on `node`, seen active by the server."""
    victim = db.connect(node.dsn(), "ptor-victim", 2)
    thread, box = _in_flight_error(victim, "SELECT pg_sleep(30)")
    deadline = time.monotonic() + 10
    while not node.query("SELECT 1 FROM pg_stat_activity WHERE application_name = "
                         "'ptor-victim' AND state = 'active'"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return thread, box


def test_terminated_session_mid_statement_is_in_doubt(make_lab):
    lab = make_lab("sync")
    node = lab.nodes["node1"]
    thread, box = _statement_in_flight(node)
    node.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE application_name = 'ptor-victim'")
    thread.join(10)
    assert acknowledgement.classify(box["error"], sent=True) == INDETERMINATE


def test_crashed_server_mid_statement_is_in_doubt(make_lab):
    lab = make_lab("sync")
    node = lab.nodes["node1"]
    thread, box = _statement_in_flight(node)
    node.kill()
    thread.join(10)
    assert isinstance(box["error"], psycopg2.OperationalError)
    assert acknowledgement.classify(box["error"], sent=True) == INDETERMINATE


def test_a_host_that_never_answers_does_not_hide_the_next_one(make_lab):
    """The first host accepts TCP (the kernel's backlog) but never speaks, like a frozen
    server: each host's attempt is bounded, so the second host is still reached."""
    import socket
    import time

    lab = make_lab("sync")
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        dsn = (f"host=127.0.0.1,127.0.0.1 port={hole.getsockname()[1]},"
               f"{lab.nodes['node1'].port} dbname=postgres user={lab.user.name} "
               "target_session_attrs=read-write")
        started = time.monotonic()
        conn = db.connect(dsn, "ptor-test", 0.5)
        took = time.monotonic() - started
    try:
        assert conn.info.port == lab.nodes["node1"].port
        assert 0.5 <= took < 2.5  # the silent host's bounded attempt, then the real one
    finally:
        conn.close()


class QueueingPooler:
    """A stand-in for a pooler with no server available (pgbouncer queueing a client's
    statements): it relays the login to a real server, then holds every statement the
    client sends for ever. A server-side statement_timeout never sees them."""

    READY = b"Z\x00\x00\x00\x05"  # ReadyForQuery: the login is over

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.held = 0
        self.sockets: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, server]
            logged_in = threading.Event()
            threading.Thread(target=self._pipe, args=(server, client, logged_in),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(client, server, None, logged_in),
                             daemon=True).start()

    def _pipe(self, src, dst, mark=None, hold=None) -> None:
        seen = b""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            if hold is not None and hold.is_set():
                self.held += 1  # queued, never relayed
                continue
            if mark is not None:
                # marked before the client can see it: a client that answers the
                # ReadyForQuery at once must find its statement held, not relayed
                seen = (seen + data)[-64:]
                if self.READY in seen:
                    mark.set()
            try:
                dst.sendall(data)
            except OSError:  # the other side was closed: the stand-in is shutting down
                return

    def close(self) -> None:
        for sock in [self.listener, *self.sockets]:
            sock.close()


def test_a_statement_a_pooler_queues_is_bounded_on_the_client(make_lab):
    """Behind a pooler with no server, a worker's connect-time statements (the session
    setup, the identity check) would wait without limit and the drill would kill it with
    planned ops still open. Every one of them is bounded by the connect timeout."""
    lab = make_lab("sync")
    pooler = QueueingPooler(lab.nodes["node1"].port)
    dsn = f"host=127.0.0.1 port={pooler.port} dbname=postgres user={lab.user.name} " \
          "sslmode=disable"
    try:
        started = time.monotonic()
        with pytest.raises(psycopg2.OperationalError):  # the SET statement_timeout
            db.connect(dsn, "t", 0.5, statement_timeout=5.0)
        assert time.monotonic() - started < 2.0
        conn = db.connect(dsn, "t", 0.5)  # no session setup: connected through
        started = time.monotonic()
        with pytest.raises(psycopg2.OperationalError), bounds.bounded(conn, 0.5):
            servers.server_identity(conn, 0, 1)
        assert 0.4 < time.monotonic() - started < 2.0
        assert pooler.held >= 2
        # a block that ends in time is never cut afterwards
        direct = db.connect(lab.nodes["node1"].dsn(), "t", 1.0)
        with bounds.bounded(direct, 0.2):
            servers.server_identity(direct, 0, 1)
        # the watchdog runs its actions in deadline order: once one armed after the
        # block's deadline has run, the block's deadline is past and was let go
        passed = threading.Event()
        bounds.WATCHDOG.arm(0.3, passed.set)
        assert passed.wait(30)
        assert servers.server_identity(direct, 0, 2).port == lab.nodes["node1"].port
    finally:
        pooler.close()


SHARED_THREADS = """
import sys, threading, time
import psycopg2
from ptor_harness import db

db.share_between_threads()
dsn, dead = sys.argv[1], sys.argv[2]
errors, queries, connects = [], [0], [0]
stop = time.monotonic() + 3

def query():
    conn = db.connect(dsn, "t-query", 2.0)
    with conn.cursor() as cur:
        while time.monotonic() < stop:
            try:
                cur.execute("SELECT pg_sleep(0.001)")
                queries[0] += 1
            except psycopg2.Error as exc:
                errors.append(str(exc))
                return

def connect():
    while time.monotonic() < stop:
        for target in (dsn, dead):
            try:
                db.connect(target, "t-connect", 0.05).close()
            except psycopg2.OperationalError:
                pass
            connects[0] += 1

threads = [threading.Thread(target=query) for _ in range(3)] + \\
    [threading.Thread(target=connect) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
print(queries[0], connects[0], errors)
"""


def test_threads_that_connect_and_query_side_by_side_never_trip_each_other(make_lab):
    """The coordinator's threads (lock keeper, journal, faults) and the observer's (one
    per node) use PostgreSQL at the same time: a connect with its deadline in one thread
    must never switch a query in another to a wait callback that then vanishes ("wait
    callback not available", seen as a failed lab fault). Connect deadlines still hold:
    a host that accepts TCP and never answers costs 0.05 s, not libpq's 2 s."""
    import subprocess
    import sys

    lab = make_lab("sync")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(50)
    dead = f"host=127.0.0.1 port={silent.getsockname()[1]} dbname=x user=y"
    try:
        out = subprocess.run([sys.executable, "-c", SHARED_THREADS,
                              lab.nodes[lab.named("primary")].dsn(), dead],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    finally:
        silent.close()
    queries, connects, errors = out.split(" ", 2)
    assert errors.strip() == "[]"
    assert int(queries) > 300 and int(connects) > 40  # both kept going throughout
