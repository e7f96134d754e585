"""The node observer: what every node of the cluster said about itself, every 0.1 s.

The workers see a failover only as clients: errors, then a new server. The observer asks
the nodes themselves: reachable or not, in recovery or not, which timeline, how far their
WAL has come (written, received, replayed) and, on a primary, how each standby is doing
(pg_stat_replication). From those samples the report builds the failover's anatomy:
when the old primary went away, when a standby was promoted, when the old primary came
back as a standby, how far behind the standby was at the fault.

One thread per node, each on its own connection, every statement and connect bounded by
a fraction of the interval: a node that does not answer is "unreachable" for that sample,
and never holds up the others, the load or the drill. Samples go to the ledger through
the recorder, like ops; when the queue to the recorder is full, a sample is dropped (and
counted), never waited for. No superuser is needed: with pg_monitor every field is read;
without, the fields the role may not read stay unknown and the sample says so.
"""

from __future__ import annotations

import os
import queue as queue_module
import threading
import time
from dataclasses import dataclass
from typing import Optional

import psycopg2
import psycopg2.errors
from psycopg2.extensions import make_dsn, parse_dsn

from .. import bounds, db
from ..config import Scenario
from ..ops import ENDPOINT, NodeSample, ReplicationRow
from . import messages

FLUSH_SECONDS = 0.5  # samples go to the recorder at least this often
MIN_BOUND = 0.05  # no sample's connect or statement is bounded tighter than this

# One round trip per sample, valid on a primary and on a standby. LSNs as bytes since 0/0.
SAMPLE_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery()
            THEN (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1)
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8 END,
       (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::int8,
       (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8,
       extract(epoch FROM pg_last_xact_replay_timestamp())::float8,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE (
           SELECT json_agg(json_build_array(
                      application_name, state, sync_state,
                      (sent_lsn - '0/0'::pg_lsn)::int8, (write_lsn - '0/0'::pg_lsn)::int8,
                      (flush_lsn - '0/0'::pg_lsn)::int8, (replay_lsn - '0/0'::pg_lsn)::int8,
                      extract(epoch FROM write_lag)::float8,
                      extract(epoch FROM flush_lag)::float8,
                      extract(epoch FROM replay_lag)::float8))
           FROM pg_stat_replication r  -- standbys: not a logical slot's consumer (CDC)
           WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots s
                             WHERE s.active_pid = r.pid AND s.slot_type = 'logical')) END,
       (SELECT coalesce(substring(conninfo FROM '(?:^| )application_name=''?([^ '']+)'),
                        substring(conninfo FROM 'fallback_application_name=''?([^ '']+)'))
        FROM pg_stat_wal_receiver LIMIT 1),
       current_setting('transaction_read_only') = 'on'
"""
# The column before the last: the name a standby's WAL receiver gives its primary (its conninfo's
# application_name, else the fallback it used: cluster_name or "walreceiver"), which the
# primary's pg_stat_replication lists it under: how the report tells which node a
# primary's row is about (verify/node_names.py). NULL without pg_monitor, which hides
# the conninfo (the password in it is masked anyway, and only the name is read).
# The last column: whether this sample's own transaction is read-only, which each
# transaction works out as it begins: on a standby, and on a primary whose manager holds it
# read-only (pg_auto_failover sets default_transaction_read_only while it promotes: seen
# here for 3.3 s after the node left recovery), which is time the report must not call
# routing (verify/anatomy.py).
# The endpoint (maybe a proxy or a pooler, where a prepared statement may not survive) is
# asked only what a client reaches there: the same columns, the rest NULL.
ENDPOINT_SQL = ("SELECT pg_is_in_recovery(), NULL::int, NULL::int8, NULL::int8, NULL::int8, "
                "NULL::float8, NULL::json, NULL::text, "
                "current_setting('transaction_read_only') = 'on'")
# Asked once per session: where the server says it is, as a worker's identity names it
# (servers.py; NULL over a Unix socket), so the report can name a server by node.
SERVER_SQL = "SELECT host(inet_server_addr()) || ':' || inet_server_port()"
# Asked once per session: may this role read everything (superuser or pg_monitor)?
PRIVILEGE_SQL = ("SELECT current_setting('is_superuser') = 'on' "
                 "OR pg_has_role(current_user, 'pg_monitor', 'USAGE')")


@dataclass(frozen=True)
class NodeSpec:
    """One node to watch: a name for the report, and how to reach it."""

    name: str
    dsn: str


@dataclass(frozen=True)
class ObserverSpec:
    """What the observer process needs: the nodes and the interval."""

    nodes: tuple[NodeSpec, ...]
    interval: float

    @property
    def bound(self) -> float:
        """How long one sample's connect or statement may take."""
        return max(MIN_BOUND, 0.9 * self.interval)


def nodes_to_observe(scenario: Scenario) -> tuple[tuple[NodeSpec, ...], str]:
    """The nodes to watch (the endpoint last) and where they came from, or none and why."""
    nodes, found = cluster_nodes(scenario)
    if not nodes:
        return (), found
    endpoint = NodeSpec(ENDPOINT, any_role(scenario.connection.primary_pgdsn))
    return nodes + (endpoint,), found


def cluster_nodes(scenario: Scenario) -> tuple[tuple[NodeSpec, ...], str]:
    """The nodes to watch and where they came from, or no nodes and why: --node-dsn, else
    the lab of --lab-dir, else the hosts of a multi-host primary DSN. Every node is
    reached with target_session_attrs=any: a standby is a node to watch too."""
    o = scenario.observer
    if o.observe_interval == 0:
        return (), "off (--observe-interval 0)"
    if o.node_dsn:
        return tuple(NodeSpec(node_name(dsn), any_role(dsn)) for dsn in o.node_dsn), \
            "--node-dsn"
    lab_dir = scenario.faults.lab_dir
    if lab_dir and os.path.exists(os.path.join(lab_dir, "lab.json")):
        from ..lab import load_lab

        nodes = load_lab(lab_dir).node_dsns()
        return tuple(NodeSpec(name, dsn) for name, dsn in nodes.items()), \
            f"the lab in {lab_dir}"
    primary = scenario.connection.primary_pgdsn
    hosts = db.host_attempts(primary, parse_dsn(primary))
    if len(hosts) > 1:
        return tuple(NodeSpec(node_name(dsn), any_role(dsn)) for dsn in hosts), \
            "the primary DSN's hosts"
    return (), ("off: no nodes to watch (give --node-dsn, a multi-host primary DSN or "
                "--lab-dir)")


def node_name(dsn: str) -> str:
    """host:port, as the report names a node."""
    parsed = parse_dsn(dsn)
    host = parsed.get("host") or parsed.get("hostaddr") or "local"
    return f"{host}:{parsed.get('port') or 5432}"


def any_role(dsn: str) -> str:
    """The DSN, reaching the node whatever its role."""
    return make_dsn(dsn, target_session_attrs="any")


class NodeWatcher(threading.Thread):
    """Samples one node every interval, on one session it keeps while the node answers."""

    def __init__(self, node: NodeSpec, spec: ObserverSpec, out: list, lock: threading.Lock,
                 stop) -> None:
        super().__init__(name=f"ptor-observe-{node.name}", daemon=True)
        self.node = node
        self.spec = spec
        self.out = out
        self.lock = lock
        self.stop_event = stop
        self.conn = None
        self.sql = SAMPLE_SQL
        self.monitor: Optional[bool] = None
        self.system_id: Optional[str] = None
        self.server: Optional[str] = None

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            sample, rows = self.sample()
            with self.lock:
                self.out.append((sample, rows))
            next_at += self.spec.interval
            now = time.monotonic()
            if next_at < now:  # fell behind (a slow node): skip the missed ticks
                next_at = now
            self.stop_event.wait(next_at - now)
        self.drop()

    def sample(self) -> tuple[tuple, list[tuple]]:
        at, t0 = time.time(), time.monotonic()
        try:
            if self.conn is None:
                self.open()
            with bounds.bounded(self.conn, self.spec.bound), self.conn.cursor() as cur:
                cur.execute(self.sql)
                in_recovery, timeline, wal, received, replayed, replay_at, standbys, \
                    standby_name, read_only = cur.fetchone()
        except (psycopg2.Error, OSError) as exc:
            self.drop()
            return tuple(NodeSample(self.node.name, at, time.monotonic() - t0, False, None,
                                    None, None, None, None, None, None, None,
                                    db.error_label(exc))), []
        took = time.monotonic() - t0
        sample = NodeSample(self.node.name, at, took, True, in_recovery, timeline,
                            self.system_id, wal, received, replayed, replay_at, self.monitor,
                            None, standby_name, self.server, read_only)
        rows = [tuple(ReplicationRow(self.node.name, at, *standby)) for standby in
                standbys or ()]
        return tuple(sample), rows

    def open(self) -> None:
        conn = db.connect(self.node.dsn, "ptor-observer", self.spec.bound, self.spec.bound)
        try:
            with bounds.bounded(conn, self.spec.bound), conn.cursor() as cur:
                cur.execute(PRIVILEGE_SQL)
                self.monitor = bool(cur.fetchone()[0])
                if self.node.name == ENDPOINT:
                    self.sql = ENDPOINT_SQL
                else:  # planned once: most of an unprepared sample's cost is planning
                    cur.execute("PREPARE ptor_sample AS " + SAMPLE_SQL)
                    self.sql = "EXECUTE ptor_sample"
                    cur.execute(SERVER_SQL)
                    self.server = cur.fetchone()[0]
                try:
                    cur.execute("SELECT system_identifier::text FROM pg_control_system()")
                    self.system_id = cur.fetchone()[0]
                except psycopg2.errors.InsufficientPrivilege:
                    self.system_id = None
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


def run_observer(spec: ObserverSpec, q, stop, events, alive) -> None:
    """Process entry point: watch every node until `stop` (or until the coordinator is
    gone: messages.coordinator_gone), sending samples to the recorder every FLUSH_SECONDS;
    the last samples go before the process exits."""
    messages.start_child("node observer")
    db.share_between_threads()
    out: list = []
    lock = threading.Lock()
    halt = threading.Event()  # the watchers' own stop: the drill's, or the parent's death
    watchers = [NodeWatcher(node, spec, out, lock, halt) for node in spec.nodes]
    for watcher in watchers:
        watcher.start()
    sent = dropped = 0
    while True:
        stopping = stop.wait(FLUSH_SECONDS) or messages.coordinator_gone(alive)
        if stopping:
            halt.set()
            for watcher in watchers:
                watcher.join(spec.bound * 2 + 1)
        with lock:
            taken, out[:] = list(out), []
        lost = send(q, taken)
        sent, dropped = sent + len(taken) - lost, dropped + lost
        if stopping:
            break
    events.put(messages.ObserverFinished(sent, dropped))


def send(q, taken: list) -> int:
    """Hand samples to the recorder without ever waiting on it; returns how many samples
    were dropped because its queue was full."""
    samples = [sample for sample, _ in taken]
    rows = [row for _, replication in taken for row in replication]
    def put(message: tuple) -> None:
        q.put(message, block=False)

    try:
        messages.put_split(put, messages.NODES, messages.OBSERVER, samples)
        if rows:
            messages.put_split(put, messages.REPLICATION, messages.OBSERVER, rows)
    except queue_module.Full:
        return len(samples)
    return 0
