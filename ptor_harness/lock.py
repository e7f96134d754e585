"""One drill at a time per cluster: an advisory lock held for the whole run.

A second drill against the same primary would truncate the first one's tables and turn its
report into nonsense, so ptor takes an advisory lock on the primary (and on a
PostgreSQL repo) before it touches anything, and refuses to run when another ptor holds it.
The key is derived from ptor's schema, so drills with different schemas do not block each
other.

The lock is a transaction-level one (`pg_try_advisory_xact_lock`), in a transaction the
lock's session keeps open: idle, with no snapshot and no transaction ID, so it holds back
no vacuum; its idle-in-transaction and transaction timeouts are turned off for it alone. A
session-level lock would not survive a pooler in transaction mode: the server session that
took it goes back to the pool, still holding it, so a second ptor whose statement lands
there is granted it again, and the lock outlives the run that took it. An open transaction
pins one server session to its client in every pooling mode, and a pooler ends that server
session when the client goes away in a transaction; without a pooler the transaction ends
with the session. Either way a crashed run (even one SIGKILLed) never blocks the next.

A failover ends the primary's session and with it the lock: `LockKeeper` notices, takes the
lock again on the new primary, and records it if another session got there first (a second
drill started during the outage), which makes the run's figures suspect.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from typing import Optional

import psycopg2

from . import db, servers
from .bounds import cut_socket
from .errors import ClusterError
from .retry import Backoff

LOCK_CLASS = 0x70746F72  # "ptor"
TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))"
# for the lock's own transaction only (transaction_timeout exists from PostgreSQL 17 on)
NO_TIMEOUTS = "SET LOCAL idle_in_transaction_session_timeout = 0"
NO_TRANSACTION_TIMEOUT = "SET LOCAL transaction_timeout = 0"
HOLDER = (
    "SELECT a.application_name, host(a.client_addr), a.backend_start "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s "
    "AND l.objid = hashtext(%s)::oid AND l.objsubid = 2 LIMIT 1")


class LockHeld(ClusterError):
    """Another ptor (a drill, or a campaign between its rounds) holds the drill lock."""


def application_name(run_id: str) -> str:
    return f"ptor-lock {run_id}"


# A holder that ended between the try and the look at who holds the lock (a campaign's
# hold whose pooler was just removed: its server session exits a moment after) is no
# holder: try again, this many times, this far apart (Retry's doubling), before saying so.
ENDED_HOLDER_TRIES, ENDED_HOLDER_DELAY = 6, 0.02


def try_lock(conn, schema: str) -> Optional[str]:
    """Take the drill lock in a transaction left open on this (autocommit) session; None
    when taken, else who holds it (and the transaction is ended)."""
    delays = Backoff(ENDED_HOLDER_DELAY, 1.0)
    for attempt in range(ENDED_HOLDER_TRIES):
        if attempt:
            time.sleep(delays.next())
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(NO_TIMEOUTS)
            if getattr(conn, "server_version", 0) >= 170000:
                cur.execute(NO_TRANSACTION_TIMEOUT)
            cur.execute(TRY_LOCK, (LOCK_CLASS, schema))
            if cur.fetchone()[0]:
                return None
            cur.execute(HOLDER, (LOCK_CLASS, schema))
            row = cur.fetchone()
            cur.execute("ROLLBACK")
        if row is not None:
            break
    if row is None:
        return "another session (it has just ended)"
    name, addr, since = row
    who = name[len("ptor-lock "):] if name and name.startswith("ptor-lock ") else None
    holder = f"run {who}" if who else f"session {name or '(unnamed)'}"
    # another role's session shows no details without pg_read_all_stats: all NULL
    when = f", since {since:%Y-%m-%d %H:%M:%S %Z}" if since is not None else ""
    return f"{holder} from {addr or 'a local socket or a hidden address'}{when}"


def acquire(dsn: str, what: str, schema: str, run_id: str, timeout: float,
            statement_timeout: float):
    """A new session holding the drill lock, or ClusterError naming the holder."""
    try:
        conn = db.connect(dsn, application_name(run_id), timeout, statement_timeout)
    except psycopg2.Error as exc:
        raise ClusterError(f"cannot connect to the {what}: {db.error_label(exc)}") from None
    try:
        holder = try_lock(conn, schema)
    except psycopg2.Error as exc:
        conn.close()
        raise ClusterError(f"cannot take ptor's drill lock on the {what}: "
                           f"{db.error_label(exc)}") from None
    if holder is not None:
        conn.close()
        raise LockHeld(f"another ptor drill is running against this {what} (schema "
                           f"{schema}; {holder}); one drill at a time")
    return conn


def cluster_position(conn) -> Optional[servers.Position]:
    """The cluster position (servers.position) of the server behind `conn`, None when it
    cannot be read."""
    try:
        return servers.position(servers.server_identity(conn, -1, 0))
    except psycopg2.Error:
        return None


class LockKeeper:
    """Holds the drill lock on the primary for the whole run, in a background thread that
    checks its session every `interval` seconds and takes the lock again after a
    failover. `lost_to` says who took it meanwhile, if anyone did.

    A dead session is noticed at once. An old primary that is frozen or was never fenced
    keeps the session alive, though, so every `follow_every` seconds the keeper also looks
    where the DSN leads now, and follows the lock to a newer primary of the same cluster
    (a higher timeline; never back to an older one, so two live primaries do not make it
    flip between them)."""

    def __init__(self, conn, dsn: str, schema: str, run_id: str, timeout: float,
                 statement_timeout: float, interval: float = 1.0,
                 follow_every: float = 2.0) -> None:
        self.conn = conn
        self.dsn = dsn
        self.schema = schema
        self.run_id = run_id
        self.timeout = timeout
        self.statement_timeout = statement_timeout
        self.interval = interval
        self.follow_every = follow_every
        self.position = self._position_now()
        self.retaken = 0
        self.lost_to: Optional[str] = None
        self.stopped = threading.Event()
        self.died: Optional[str] = None
        self.thread = threading.Thread(target=self._run, name="ptor-lock", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _alive(self) -> bool:
        """Is the lock's session still there? Sends nothing, so a frozen server can never
        block the check: the socket turns readable only when the server closed it (a
        crash, a shutdown) or sent something, and poll() then reads what it was."""
        if self.conn.closed:
            return False
        try:
            readable, _, _ = select.select([self.conn.fileno()], [], [], 0)
            if readable:
                self.conn.poll()
            return True
        except (psycopg2.Error, OSError, ValueError):
            return False

    def _session(self):
        """A new session where the DSN leads now (bounded by the connect timeout), or
        None while nothing answers."""
        try:
            return db.connect(self.dsn, application_name(self.run_id), self.timeout,
                              self.statement_timeout)
        except psycopg2.Error:
            return None

    def _position_now(self) -> Optional[tuple[str, int]]:
        """The position of the primary the DSN leads to, on a session of its own: asked on
        the lock's session, a query that fails (pg_control_system() for a role without
        pg_monitor) would end the lock's transaction, and the lock with it."""
        conn = self._session()
        if conn is None:
            return None
        try:
            return cluster_position(conn)
        finally:
            conn.close()

    def _newer_primary(self) -> bool:
        """Does the DSN now lead to a newer primary of the lock's cluster? An unreachable
        DSN says nothing."""
        return servers.is_newer(self._position_now(), self.position)

    def _retake(self) -> bool:
        cut_socket(self.conn)  # the old server may be frozen: close() must not wait on it
        with contextlib.suppress(Exception):
            self.conn.close()
        conn = self._session()
        if conn is None:
            return False
        try:
            position = cluster_position(conn)  # before the lock's transaction begins
            holder = try_lock(conn, self.schema)
        except psycopg2.Error:
            conn.close()
            return False
        self.conn = conn
        self.position = position or self.position
        if holder is not None and self.lost_to is None:
            self.lost_to = holder
        self.retaken += holder is None
        return holder is None

    @property
    def failed(self) -> Optional[str]:
        """Why the keeper stopped holding the lock without being told to (its thread died
        of an error): the drill can no longer claim the cluster was its own alone."""
        return self.died

    def _run(self) -> None:
        try:
            self._keep()
        except BaseException as exc:  # a keeper that dies must not keep a lock in silence
            self.died = f"the drill lock's keeper failed: {db.error_label(exc)}"
            with contextlib.suppress(Exception):
                self.conn.close()  # and the lock it held is released for good

    def _keep(self) -> None:
        held = True
        followed = time.monotonic()
        while not self.stopped.wait(self.interval):
            if held and self._alive():
                if time.monotonic() - followed < self.follow_every:
                    continue
                followed = time.monotonic()
                if not self._newer_primary():
                    continue
            held = self._retake()
            if self.lost_to is not None:
                return  # someone else's drill owns the cluster now: stop competing

    def release(self) -> None:
        """Stop the thread; closing the session releases the lock. A session stuck on a
        frozen server is cut at the socket first: close() would wait for it forever."""
        self.stopped.set()
        if self.thread.ident is not None:
            self.thread.join(self.timeout + 1)
        if self.thread.is_alive():
            cut_socket(self.conn)
            self.thread.join(self.timeout + 1)
        with contextlib.suppress(Exception):
            self.conn.close()

