"""The writability probe: one process that tells the workers the moment a primary accepts
writes again, and ptor's own view of every outage, one check every 11 ms.

A worker that loses its session cannot know when the cluster is back. Retrying at once
storms a recovering cluster (N workers, hundreds of connection attempts a second each);
backing off finds the new primary up to the backoff late: with a backoff growing to 0.2 s,
ptor's write RTO came out 150-170 ms longer than an independent 10 ms probe's on
multi-second outages. So one probe retries for everybody, every PROBE_INTERVAL (11 ms:
about 90 connection attempts a second, whatever --parallel-workers is), and the moment it
reaches a primary (a server out of recovery) it raises a generation counter in shared
memory, then writes to it. A waiting worker tries again at once (within WAKE_POLL), and
otherwise stays off the cluster; it retries on its own only after a safety interval, or
with backoff once the probe has gone silent.

While the cluster is healthy the probe keeps one session and runs a SELECT 1 every
PROBE_INTERVAL (each bounded on the client: a frozen server never answers), so an outage is
seen within one interval even while the workers are idle between ops. Its own gaps (last
answer, first failure, first write after) go to the coordinator as `ProbeGap` messages and
into the report beside the workers' figures; the coordinator journals each (PROBE_GAP), so
that `ptor reconcile` of the run has the probe's view too (gaps_from_journal).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Optional

import psycopg2

from .. import bounds, db, servers
from ..errors import ClusterError
from ..schema import heartbeat
from . import messages

# Seconds between the probe's attempts (and its health checks): about 90 a second, so that
# with the workers' own attempts (one as each loses its session, one as the probe wakes
# it) ptor stays under 100 connection attempts a second during an outage.
PROBE_INTERVAL = 0.011
PROBE_SILENT = 0.5  # a probe not heard from for this long is gone: workers retry alone
PROBE_GAP = "probe:gap"  # a gap's name in the run's journal
WAKE_POLL = 0.001  # how often a waiting worker looks at the generation
PROBE_ROW = 2  # the probe's heartbeat row (reconciliation's is 1)


@dataclass(frozen=True)
class ProbeSpec:
    """What the probe process needs of the scenario, and nothing more."""

    primary_pgdsn: str
    schema: str
    rto_conn_timeout: float
    statement_timeout: float


class ProbeBoard:
    """The probe's shared slots (a lock-free array the workers read): generation (times the
    probe reached a primary after a failure), attempts (its connection
    attempts), alive_at (its last loop, epoch seconds)."""

    FIELDS = ("generation", "attempts", "alive_at", "safety")

    def __init__(self, array) -> None:
        self.array = array

    @classmethod
    def create(cls, ctx, workers: int) -> ProbeBoard:
        """`safety`: how long a worker waits for the probe's word before trying on its own
        anyway (the probe may be content while the worker is not, e.g. a proxy that sent
        the worker to a standby): long enough that the workers' own attempts stay under
        PROBE_INTERVAL's rate in total, whatever their number."""
        board = cls(ctx.Array("d", len(cls.FIELDS), lock=False))
        board.array[3] = max(1.0, workers * PROBE_INTERVAL * 2)
        return board

    @property
    def generation(self) -> float:
        return self.array[0]

    @property
    def attempts(self) -> float:
        return self.array[1]

    def silent(self, now: float) -> bool:
        return now - self.array[2] > PROBE_SILENT

    def wait_for_primary(self, generation: float, backoff: float, stopping) -> None:
        """A worker's wait after a failed connection attempt: until the probe has reached
        a primary since `generation` was read; at most the safety interval while the probe
        runs, and `backoff` seconds once it is silent; `stopping()` ends it early."""
        started = time.monotonic()
        while self.array[0] == generation and not stopping():
            waited = time.monotonic() - started
            if waited >= self.array[3] or (waited >= backoff and self.silent(time.time())):
                return
            time.sleep(WAKE_POLL)


class Probe:
    """The probe's loop; `run_probe` is its process entry point."""

    def __init__(self, spec: ProbeSpec, board: ProbeBoard, events, stop, abort,
                 alive) -> None:
        self.spec = spec
        self.board = board
        self.events = events
        self.stop = stop
        self.abort = abort
        self.alive = alive  # messages.coordinator_gone
        self.conn = None
        self.last_ok: Optional[float] = None
        self.failed_at: Optional[float] = None

    def bound(self) -> float:
        """How long one check may take beyond its connect (a SELECT 1, or the identity
        and the write of a new session): rto-conn-timeout, as a connect attempt. A frozen
        or partitioned server never answers, and the probe must not wait on it longer than
        a worker would wait to connect."""
        return self.spec.rto_conn_timeout

    def connect(self) -> bool:
        """One attempt: a session on a server that is not in recovery. The workers are woken
        the moment it says so, which PostgreSQL 14 and later say as the connection begins
        (every round trip saved is resolution: the statement timeout is set after); then
        the probe writes, and its own view of the outage ends at that write."""
        self.board.array[1] += 1
        conn = None
        try:
            conn = db.connect(self.spec.primary_pgdsn, "ptor-probe", self.spec.rto_conn_timeout)
            with bounds.bounded(conn, self.bound()):
                primary = servers.reported_primary(conn)
                if primary is None:  # before PostgreSQL 14: ask
                    with conn.cursor() as cur:
                        cur.execute("SELECT NOT pg_is_in_recovery()")
                        primary = cur.fetchone()[0]
                if not primary:
                    conn.close()
                    return False
                self.board.array[0] += 1  # wake the workers
                db.set_session_timeout(conn, self.spec.statement_timeout, self.bound())
                heartbeat(conn, self.spec.schema, PROBE_ROW)
        except (psycopg2.Error, ClusterError):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            return False
        self.conn = conn
        return True

    def healthy(self) -> bool:
        """The session still answers (within the bound)."""
        try:
            with bounds.bounded(self.conn, self.bound()), self.conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        except psycopg2.Error:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
            return False

    def step(self) -> None:
        now = time.time()
        if self.conn is not None:
            if self.healthy():
                self.last_ok = time.time()
                return
            self.failed_at = time.time()
            return
        if self.connect():
            written = time.time()
            if self.failed_at is not None:
                self.events.put(messages.ProbeGap(self.last_ok, self.failed_at, written))
                self.failed_at = None
            self.last_ok = written
        elif self.failed_at is None and self.last_ok is not None:
            self.failed_at = now

    def run(self) -> None:
        while not self.stop.is_set() and not self.abort.is_set() and \
                not messages.coordinator_gone(self.alive):
            started = time.monotonic()
            self.board.array[2] = time.time()
            self.step()
            self.stop.wait(max(0.0, PROBE_INTERVAL - (time.monotonic() - started)))
        if self.failed_at is not None:  # writes never came back while it ran
            self.events.put(messages.ProbeGap(self.last_ok, self.failed_at, None))
        if self.conn is not None:
            self.conn.close()


def run_probe(spec: ProbeSpec, board_array, events, stop, abort, alive) -> None:
    """Process entry point (forked by the fork server: crew.py)."""
    messages.start_child("probe")
    Probe(spec, ProbeBoard(board_array), events, stop, abort, alive).run()


def gap_journaled(gap: messages.ProbeGap) -> tuple[float, str, dict]:
    """A probe gap as the run's journal keeps it: (at, name, detail)."""
    return gap.first_failure, PROBE_GAP, {"last_ok": gap.last_ok,
                                          "first_failure": gap.first_failure,
                                          "first_write": gap.first_write}


def gaps_from_journal(events: list) -> list[messages.ProbeGap]:
    """The probe's gaps of a run, from its journal's events (at, name, detail), as the
    drill's coordinator heard them (none from a run journaled before ptor kept them)."""
    return [messages.ProbeGap(d["last_ok"], d["first_failure"], d["first_write"])
            for _at, name, d in events if name == PROBE_GAP]
