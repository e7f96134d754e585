"""Before the load: the drill lock, and a cluster and repo fit to run on.

One drill at a time per cluster (the lock on the primary, kept across failovers by a
keeper thread, and on the PostgreSQL repo), taken before anything is touched. Then the
primary is reached and must be a primary, ptor's tables are prepared (only ptor's own,
marked ones: see schema.py), the repo's ledger tables are checked, and, when asked, the
primary's latency is measured.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import NamedTuple, Optional

import psycopg2

from .. import bounds, db, lock, schema, servers
from ..config import Scenario
from ..config.scenario import Cdc, Connection
from ..errors import ClusterError
from ..ledger import postgres as pg_ledger
from ..ops import Identity
from ..outcome import LockStatus
from ..verify.distribution import latency_summary
from . import cdc_slot


class DrillLocks:
    """The drill lock on the primary (kept by a keeper thread) and on the repo."""

    def __init__(self, connection: Connection, run_id: str) -> None:
        self.connection = connection
        self.run_id = run_id
        self.primary: Optional[lock.LockKeeper] = None
        self.repo = None

    def take(self) -> None:
        c = self.connection
        conn = lock.acquire(c.primary_pgdsn, "primary", c.schema, self.run_id,
                            c.rto_conn_timeout, c.statement_timeout)
        self.primary = lock.LockKeeper(conn, c.primary_pgdsn, c.schema, self.run_id,
                                       c.rto_conn_timeout, c.statement_timeout)
        self.primary.start()
        if c.repo_pgdsn:
            check_repo_apart(c)
            self.repo = lock.acquire(c.repo_pgdsn, "repo", c.schema, self.run_id,
                                     c.rto_conn_timeout, c.statement_timeout)

    def status(self) -> LockStatus:
        """How the primary's lock was kept during the run."""
        keeper = self.primary
        if keeper is None:
            return LockStatus()
        return LockStatus(retaken=keeper.retaken, lost_to=keeper.lost_to,
                          failed=keeper.failed)

    def release(self) -> None:
        if self.primary is not None:
            self.primary.release()
        if self.repo is not None:
            self.repo.close()


def check_repo_apart(c: Connection) -> None:
    """The repo must not be a server of the cluster under test: a failover there would
    take the ledger with it (the drill measuring its own ledger's outage), and on the
    primary itself its drill lock is the drill's own (it read "another ptor drill is
    running against this repo"). Same server (address and port, any database) or same
    system identifier (the primary, or one of its standbys): one sentence, exit 3. Either
    side that cannot be reached here is left to the lock's own sentence."""
    sides = []
    for dsn in (c.primary_pgdsn, c.repo_pgdsn):
        try:
            conn = db.connect(dsn, "ptor-check", c.rto_conn_timeout, c.statement_timeout)
        except psycopg2.Error:
            return
        try:
            with bounds.bounded(conn, c.rto_conn_timeout + c.statement_timeout):
                sides.append(servers.server_identity(conn, -1, 0))
        except psycopg2.Error:
            return
        finally:
            conn.close()
    primary, repo = sides
    same_server = (primary.addr, primary.port) == (repo.addr, repo.port) and \
        primary.addr is not None
    same_cluster = primary.system_id is not None and primary.system_id == repo.system_id
    if same_server or same_cluster:
        what = f"the primary's own server ({primary.addr}:{primary.port})" if same_server \
            else f"a server of the cluster under test (system identifier {repo.system_id})"
        raise ClusterError(f"the repo (--repo-pgdsn) is {what}: a failover there would take "
                           "the ledger with it; give the ledger a server of its own, or "
                           "leave --repo-pgdsn empty for the embedded ledger in the run's "
                           "folder")


class ClusterCheck(NamedTuple):
    """What the check before the load found: the primary's identity and PostgreSQL version
    (`server_version`, for the report's reader), the synchronous_commit its sessions
    get (the workers' sessions open as this one does: the same role, database and server
    defaults; a commit acknowledged with it off or local waited for no standby), the
    latency check (None when not asked) and, with --cdc-slot, the WAL position from which
    changes are this run's (cdc_slot.prepare)."""

    primary: Identity
    postgres_version: Optional[str]
    synchronous_commit: Optional[str]
    latency: Optional[dict]
    cdc_since: Optional[int]


def check_cluster(scenario: Scenario, run_id: str) -> ClusterCheck:
    """Reach the primary (and the repo), prepare tables for run `run_id`, measure latency
    if asked."""
    s = scenario
    lab_dir = s.faults.lab_dir
    if s.faults.fault:
        check_lab_faults(lab_dir, [action for action, _at in s.faults.fault])
    identity, (version, synchronous_commit), since = prepare_primary(
        s.connection, s.load.parallel_workers, s.preparation.init, run_id, s.cdc)
    if s.connection.repo_pgdsn:
        check_repo(s.connection, s.preparation.init, s.cdc.cdc_slot is not None)
    latency = None
    if s.preparation.check_primary_latency:
        latency = measure_latency(s.connection, s.preparation.latency_samples)
    return ClusterCheck(identity, version, synchronous_commit, latency, since)


def check_lab_faults(lab_dir: str, actions: list[str]) -> None:
    """Every --fault is one the lab's stack offers, before any load: found out at the
    fault's time it would cost a whole drill whose verdict could only be unknown."""
    from ..lab import LabError, load_lab
    from ..lab.actions import split_action

    if not os.path.exists(os.path.join(lab_dir, "lab.json")):
        raise ClusterError(f"lab-dir {lab_dir} holds no ptor-lab lab (no lab.json); "
                           "start one with ptor-lab up")
    try:
        lab = load_lab(lab_dir)
    except LabError as exc:
        raise ClusterError(f"lab-dir {lab_dir}: {exc}") from None
    for action in actions:
        name, _seconds = split_action(action)
        if name not in lab.offers():
            raise ClusterError(f"--fault {name}: {lab.cannot(name)} (lab-dir {lab_dir})")


def prepare_primary(c: Connection, workers: int, init: bool, run_id: str,
                    cdc: Optional[Cdc] = None
                    ) -> tuple[Identity, tuple[str, str], Optional[int]]:
    """The primary's identity, its version and its sessions' synchronous_commit, with
    ptor's worker tables there (created with --init) and empty; with a CDC slot, where
    this run's changes begin (cdc_slot.prepare)."""
    since = None
    try:
        conn = db.connect(c.primary_pgdsn, "ptor-check", c.rto_conn_timeout,
                          c.statement_timeout, autocommit=False)
    except psycopg2.Error as exc:
        raise ClusterError(f"cannot connect to the primary: {db.error_label(exc)}") from None
    # A commit waiting for a synchronous standby that is gone never returns, and no
    # statement_timeout ends that wait: the whole preparation is bounded on the client.
    bound = 4 * (c.statement_timeout + c.rto_conn_timeout) if c.statement_timeout else None
    try:
        with bounds.bounded(conn, bound) if bound else contextlib.nullcontext():
            identity = servers.server_identity(conn, -1, 0)
            with conn.cursor() as cur:
                cur.execute("SELECT current_setting('server_version'), "
                            "current_setting('synchronous_commit')")
                settings = cur.fetchone()
            if identity.in_recovery:
                raise ClusterError("the primary DSN leads to a server in recovery (a "
                                   "standby); point it at the primary or add "
                                   "target_session_attrs=read-write")
            if init:
                schema.init_primary(conn, c.schema, workers)
            schema.check_tables(conn, c.schema, workers)
            schema.truncate_worker_tables(conn, c.schema, workers, run_id)
            if cdc is not None and cdc.cdc_slot is not None:
                since = cdc_slot.prepare(conn, cdc, c.schema, workers, init)
    except psycopg2.Error as exc:
        why = db.error_label(exc) if not (bound and conn.closed) else (
            f"no answer within {bound:g} s (a synchronous standby that is gone holds "
            "every commit)")
        raise ClusterError(f"cannot prepare the primary: {why}") from None
    finally:
        conn.close()
    return identity, settings, since


def check_repo(c: Connection, init: bool, cdc: bool = False) -> None:
    """The repo's ledger tables are there and of this ledger format (created or upgraded
    with --init)."""
    try:
        conn = db.connect(c.repo_pgdsn, "ptor-check", c.rto_conn_timeout, autocommit=False)
    except psycopg2.Error as exc:
        raise ClusterError(f"cannot connect to the repo: {db.error_label(exc)}") from None
    try:
        if init:
            pg_ledger.init_repo(conn, c.schema)
        missing = pg_ledger.missing_repo_tables(conn, c.schema, cdc)
        if missing:
            raise ClusterError(f"ptor's ledger tables are missing in the repo, or are "
                               f"from an older ptor ({missing[0]}); run with --init to "
                               f"create or upgrade them")
    except psycopg2.Error as exc:
        raise ClusterError(f"cannot prepare the repo: {db.error_label(exc)}") from None
    finally:
        conn.close()


def measure_latency(c: Connection, samples: int) -> dict:
    """Connect time over a few connects, and SELECT 1 round trips on one session."""
    connects, round_trips = [], []
    for _ in range(min(5, samples)):
        t0 = time.perf_counter()
        conn = db.connect(c.primary_pgdsn, "ptor-latency", c.rto_conn_timeout)
        connects.append(time.perf_counter() - t0)
        conn.close()
    conn = db.connect(c.primary_pgdsn, "ptor-latency", c.rto_conn_timeout)
    with conn.cursor() as cur:
        for _ in range(samples):
            t0 = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchone()
            round_trips.append(time.perf_counter() - t0)
    conn.close()
    return {"connect": latency_summary(connects), "select1": latency_summary(round_trips)}
