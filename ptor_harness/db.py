"""Connections to PostgreSQL with bounded waits, and errors as short labels.

libpq's own `connect_timeout` takes whole seconds (at least 2), so ptor bounds each connect
attempt itself with a psycopg2 wait callback that is installed only while connecting: the
deadline can be fractional, it applies per host of a multi-host DSN as libpq's would, and
the established connection then runs on psycopg2's ordinary blocking path at full speed.
"""

from __future__ import annotations

import contextlib
import math
import random
import select
import threading
import time
from typing import Callable, Optional

import psycopg2
from psycopg2 import extensions

from .bounds import bounded


def _deadline_wait(per_host_seconds: float) -> Callable:
    """A wait callback that fails a connect attempt stuck on one host for too long."""
    state = {"host": None, "deadline": time.monotonic() + per_host_seconds}

    def wait(conn) -> None:
        while True:
            status = conn.poll()
            if status == extensions.POLL_OK:
                return
            try:
                where = (conn.info.host, conn.info.port)
            except Exception:  # no host chosen yet
                where = None
            if where != state["host"]:
                state["host"] = where
                state["deadline"] = time.monotonic() + per_host_seconds
            remaining = state["deadline"] - time.monotonic()
            if remaining <= 0:
                raise psycopg2.OperationalError(
                    f"connection attempt timed out after {per_host_seconds:g} s")
            if status == extensions.POLL_READ:
                select.select([conn.fileno()], [], [], remaining)
            elif status == extensions.POLL_WRITE:
                select.select([], [conn.fileno()], [], remaining)
            else:
                raise psycopg2.OperationalError(f"unexpected poll status {status}")

    return wait


def _wait_for_ever(conn) -> None:
    """psycopg2's blocking wait, as a wait callback: poll until the operation is done; a
    connect keeps its DSN's connect_timeout, which libpq does not apply to the callback's
    (asynchronous) path itself."""
    if conn.status == extensions.STATUS_SETUP:
        limit = 0.0
        with contextlib.suppress(Exception):
            limit = float(extensions.parse_dsn(conn.dsn).get("connect_timeout") or 0)
        if limit > 0:
            return _deadline_wait(limit)(conn)
    while True:
        status = conn.poll()
        if status == extensions.POLL_OK:
            return
        if status == extensions.POLL_READ:
            select.select([conn.fileno()], [], [])
        elif status == extensions.POLL_WRITE:
            select.select([], [conn.fileno()], [])
        else:
            raise psycopg2.OperationalError(f"unexpected poll status {status}")


_thread = threading.local()  # .wait: the deadline wait of a connect under way in a thread
_shared_waits = False


def _per_thread_wait(conn) -> None:
    (getattr(_thread, "wait", None) or _wait_for_ever)(conn)


def share_between_threads() -> None:
    """For a process whose threads talk to PostgreSQL at the same time (the coordinator:
    lock keeper, journal, faults; the node observer: a thread per node). psycopg2's wait
    callback is one for the whole process: swapping it in for a connect, as `connect` does
    in a single-threaded process, would switch a query running meanwhile in another thread
    to the callback's path and then pull the callback from under it ("wait callback not
    available"). Here one callback stays, and each thread's connect deadline is its own.
    (Single-threaded processes, the workers, keep psycopg2's faster blocking path.)"""
    global _shared_waits
    _shared_waits = True
    extensions.set_wait_callback(_per_thread_wait)


TCP_USER_TIMEOUT = 10.0  # seconds unacknowledged data may wait before the session is cut


# statement_timeout for the session, set only on a server session that is the
# connection's own: behind a pooler in transaction mode a SET would stay on whichever
# server session ran it and bound the statements of the pool's other clients (the user's
# applications among them) long after ptor has gone. There the client-side bounds (the
# op watchdog, `bounded`) are ptor's only ones. See behind_pooler.
# Parameters: timeout_params(). A column of a SELECT, so a worker can set it in the same
# round trip as asking who the server is (servers.open_session).
SESSION_TIMEOUT_COLUMN = ("CASE WHEN pg_backend_pid() = %s "
                         "THEN set_config('statement_timeout', %s, false) END")


def timeout_params(conn, statement_timeout: float) -> tuple[int, str]:
    """SESSION_TIMEOUT_COLUMN's parameters: the backend the connection was handed (a
    pooler's made-up one never matches a server's; with no timeout, no backend at all, so
    the role's own setting stays) and the timeout."""
    pid = conn.get_backend_pid() if statement_timeout > 0 else -1
    return pid, f"{int(statement_timeout * 1000)}ms"


def set_session_timeout(conn, statement_timeout: float, bound: float) -> None:
    """The session's statement_timeout, where the session is the connection's own (0:
    none set, no round trip)."""
    if statement_timeout <= 0:
        return
    with bounded(conn, bound), conn.cursor() as cur:
        cur.execute("SELECT " + SESSION_TIMEOUT_COLUMN, timeout_params(conn, statement_timeout))


def connect(dsn: str, application_name: str, timeout: float,
            statement_timeout: float = 0.0, autocommit: bool = True,
            connection_factory=None):
    """Open a connection that names itself and never waits forever.

    `timeout` bounds each host attempt (fractional seconds); `statement_timeout` (seconds,
    0 for none) bounds every statement of the session (not behind a pooler: see
    SESSION_TIMEOUT_COLUMN). TCP keepalives make a silently dead
    peer visible while the session is idle, and tcp_user_timeout while data waits for its
    acknowledgement (a partitioned repo mid-COPY would otherwise hold the recorder for the
    kernel's ~15 minutes of retransmissions). `connection_factory`: psycopg2's, e.g. a
    LogicalReplicationConnection (then no statement timeout, and autocommit as it comes).
    Raises psycopg2.Error on failure.
    """
    libpq_timeout = max(2, math.ceil(timeout) + 1)  # backstop only; our deadline is tighter
    kwargs = {
        "application_name": application_name,
        "connect_timeout": str(libpq_timeout),
        "keepalives": "1",
        "keepalives_idle": "5",
        "keepalives_interval": "2",
        "keepalives_count": "3",
        "tcp_user_timeout": str(int(TCP_USER_TIMEOUT * 1000)),
    }
    parsed = extensions.parse_dsn(dsn)
    for key in list(kwargs):
        if key in parsed and key != "connect_timeout":
            kwargs.pop(key)  # the user's own settings win
    if connection_factory is not None:
        kwargs["connection_factory"] = connection_factory
        return _connect_first_host(dsn, parsed, timeout, kwargs)
    conn = _connect_first_host(dsn, parsed, timeout, kwargs)
    try:
        conn.autocommit = autocommit
        if statement_timeout > 0:
            set_session_timeout(conn, statement_timeout, timeout)
            if not autocommit:
                conn.commit()
    except Exception:
        conn.close()
        raise
    return conn


def endpoint_label(dsn: str) -> str:
    """The servers and database a DSN leads to, as a person names a cluster:
    "127.0.0.1:6041,6042/postgres" (no user, no option, never a password); "" when the
    text is no DSN."""
    try:
        parsed = extensions.parse_dsn(dsn)
    except (psycopg2.Error, TypeError):
        return ""
    hosts = (parsed.get("host") or parsed.get("hostaddr") or "localhost").split(",")
    ports = (parsed.get("port") or "5432").split(",")
    ports = ports if len(ports) == len(hosts) else ports[:1] * len(hosts)
    if len(set(hosts)) == 1:
        servers = f"{hosts[0]}:{','.join(ports)}"
    else:
        servers = ",".join(f"{h}:{p}" for h, p in zip(hosts, ports))
    database = parsed.get("dbname") or parsed.get("user")  # libpq's default: the user's
    return f"{servers}/{database}" if database else servers


def host_attempts(dsn: str, parsed: dict) -> list[str]:
    """One single-host DSN per host of a multi-host DSN, in the order libpq would try them
    (shuffled for load_balance_hosts=random). libpq cannot be told to give up on one host
    and go on to the next in the middle of a connect, and a host that accepts TCP but never
    answers (a frozen server) would use up the whole attempt: so ptor walks the hosts
    itself, each attempt bounded, and libpq still checks target_session_attrs on each."""
    hosts = (parsed.get("host") or "").split(",")
    if len(hosts) < 2:
        return [dsn]
    def per_host(key: str) -> list:
        values = (parsed.get(key) or "").split(",") if parsed.get(key) else []
        return values if len(values) == len(hosts) else values[:1] * len(hosts)
    ports, addrs = per_host("port"), per_host("hostaddr")
    order = list(range(len(hosts)))
    if parsed.get("load_balance_hosts") == "random":
        random.shuffle(order)
    attempts = []
    for i in order:
        one = {"host": hosts[i], "load_balance_hosts": "disable"}
        if ports:
            one["port"] = ports[i]
        if addrs:
            one["hostaddr"] = addrs[i]
        attempts.append(extensions.make_dsn(dsn, **one))
    return attempts


def _connect_first_host(dsn: str, parsed: dict, timeout: float, kwargs: dict):
    """The first host that answers within `timeout` seconds (see host_attempts)."""
    error: Optional[Exception] = None
    for attempt in host_attempts(dsn, parsed):
        if _shared_waits:
            _thread.wait = _deadline_wait(timeout)
        else:
            previous = extensions.get_wait_callback()
            extensions.set_wait_callback(_deadline_wait(timeout))
        try:
            return psycopg2.connect(attempt, **kwargs)
        except psycopg2.OperationalError as exc:
            error = exc
        finally:
            if _shared_waits:
                _thread.wait = None
            else:
                extensions.set_wait_callback(previous)
    assert error is not None
    raise error


def error_label(exc: BaseException) -> str:
    """A short, password-free description of an error for the ledger."""
    code = getattr(exc, "pgcode", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{code}: {text}"[:200] if code else f"{type(exc).__name__}: {text}"[:200]


def quote_ident(name: str) -> str:
    """Quote one SQL identifier (double quotes, doubled inside)."""
    return '"' + name.replace('"', '""') + '"'
