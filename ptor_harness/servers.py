"""Which server, and which primary is newer: one model for the lock, validation, the
coordinator and the report, each of which asks here instead of deriving it again
(Patroni's `Cluster` and `Leader` objects, which every caller asks).

A server says who it is when asked (`server_identity`, and `behind_pooler` for what
answers a connection); from the identities, three notions, each named by what it is for:
- a server's unbroken history, `Identity.server()` (node, cluster, timeline and the
  postmaster's start): two ops on equal histories ran on one server that neither failed
  over nor restarted in between, so the later cannot have lost the earlier;
- a primary, `Identity.primary()` (node, cluster, timeline): the same primary restarted is
  still that primary, so a restart alone is no change of primary;
- a cluster position, (system identifier, timeline): a promoted standby keeps the
  cluster's identifier and moves to a higher timeline, so a higher one of the same
  cluster is a newer primary and an older one a stale primary.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Optional

import psycopg2

from .db import SESSION_TIMEOUT_COLUMN, timeout_params
from .ops import Identity

Position = tuple[str, int]  # (system identifier, timeline)

# When the server's postmaster started (epoch seconds): the identity records it, and every
# op returns it, so a worker sees when its statements start running on another server
# without its connection breaking (behind a transaction pooler that was repointed).
SERVER_STARTED_SQL = "date_part('epoch', pg_postmaster_start_time())"

_IDENTITY_SQL = f"""
SELECT host(inet_server_addr()), inet_server_port(), pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery()
            THEN (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1)
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END,
       {SERVER_STARTED_SQL}
"""


def behind_pooler(conn) -> bool:
    """Whether something between ptor and the server answers the connection for it: the
    cancel key a server hands its client names its own backend, while a pooler (pgbouncer,
    Odyssey, Supavisor) makes up its own. Only through a pooler can a connection's
    statements run on another server without the connection breaking; a TCP proxy
    (HAProxy) passes the server's key through."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0] != conn.get_backend_pid()


_SESSION_SQL = _IDENTITY_SQL + f""",
       (SELECT system_identifier::text FROM pg_control_system()), pg_backend_pid(),
       {SESSION_TIMEOUT_COLUMN}
"""


def open_session(conn, worker: int, session: int, statement_timeout: float
                 ) -> tuple[Identity, bool]:
    """A new session's identity (server_identity), whether a pooler answers for the server
    (behind_pooler), and its statement timeout set (where the session is its own; 0:
    none), in one round trip: after an outage every worker opens a session at the same
    moment, on a server that has just been promoted, and each round trip more there is
    write RTO the clients did not see (on a network a round trip is a millisecond or more;
    on loopback the server starting the sessions costs more than the round trips). A role
    that may not read pg_control_system() gets the same in several."""
    try:
        with conn.cursor() as cur:
            cur.execute(_SESSION_SQL, timeout_params(conn, statement_timeout))
            addr, port, in_recovery, timeline, started_at, system_id, pid, _set = \
                cur.fetchone()
        return Identity(worker, session, time.time(), addr, port, in_recovery, system_id,
                        timeline, started_at), pid != conn.get_backend_pid()
    except psycopg2.Error:  # e.g. permission denied for pg_control_system
        if conn.closed:
            raise
        if not conn.autocommit:
            conn.rollback()
    identity = server_identity(conn, worker, session)
    pooled = behind_pooler(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT " + SESSION_TIMEOUT_COLUMN, timeout_params(conn, statement_timeout))
    return identity, pooled


def reported_primary(conn) -> Optional[bool]:
    """Whether the server is a primary, as it said when the connection began (PostgreSQL
    14 and later report in_hot_standby with every connection, and again when it changes):
    no round trip. None from an older server."""
    status = conn.get_parameter_status("in_hot_standby")
    return None if status is None else status == "off"


def server_identity(conn, worker: int, session: int) -> Identity:
    """Ask the server who it is: address, port, role, system identifier, timeline, and when
    its postmaster started."""
    with conn.cursor() as cur:
        cur.execute(_IDENTITY_SQL)
        addr, port, in_recovery, timeline, started_at = cur.fetchone()
        system_id: Optional[str] = None
        try:
            cur.execute("SELECT system_identifier::text FROM pg_control_system()")
            system_id = cur.fetchone()[0]
        except psycopg2.Error:  # not permitted for this role: identity without it
            if not conn.autocommit:
                conn.rollback()
    return Identity(worker, session, time.time(), addr, port, in_recovery, system_id, timeline,
                    started_at)


def position(identity: Optional[Identity]) -> Optional[Position]:
    """The cluster position of a server, None when it could not say (no identity, or a
    role that may not read the system identifier)."""
    if identity is None or identity.system_id is None or identity.timeline is None:
        return None
    return identity.system_id, identity.timeline


def is_newer(there: Optional[Position], here: Optional[Position]) -> bool:
    """Is `there` a newer primary of the cluster `here` belongs to (same system identifier,
    higher timeline)? Unknown positions are never newer."""
    return there is not None and here is not None and there[0] == here[0] \
        and there[1] > here[1]


def primaries(identities: Iterable[Optional[Identity]]) -> set[tuple]:
    """The distinct primaries among these identities (standbys and unknowns left out)."""
    return {i.primary() for i in identities if i is not None and i.in_recovery is False}


def first_primary(identities: Iterable[Identity]) -> Optional[Identity]:
    """The primary the workers were first served by: what a run that did not finish
    (`ptor reconcile`) knows of the primary before its fault, whose own check went with
    its coordinator. None when no worker was served by a primary."""
    return min((i for i in identities if i.in_recovery is False), key=lambda i: i.at,
               default=None)


def newest_timeline(identities: Iterable[Optional[Identity]],
                    system: Optional[str]) -> Optional[int]:
    """The highest timeline a primary of cluster `system` served on, among these (a role
    that may not read the system identifier has None for it on every server: the
    timelines still compare)."""
    return max((i.timeline for i in identities if i is not None and not i.in_recovery
                and i.system_id == system and i.timeline is not None), default=None)


def newer_primary_since(identities: Iterable[Identity]) -> dict[Position, float]:
    """Position -> when a client was first served by a newer primary of the same cluster,
    for every position some client wrote on that a newer one followed."""
    first_seen: dict[Position, float] = {}
    for ident in identities:
        here = position(ident)
        if ident.in_recovery or here is None:
            continue
        first_seen[here] = min(first_seen.get(here, ident.at), ident.at)
    newer = {}
    for here in first_seen:
        later = [at for there, at in first_seen.items() if is_newer(there, here)]
        if later:
            newer[here] = min(later)
    return newer


def identity_changes(identities: Iterable[Identity]) -> list[dict]:
    """Every change of server history each worker saw on a primary, in time order: a
    failover, a pooler's move, or the same primary restarted."""
    last: dict[int, Identity] = {}
    changes = []
    for ident in sorted(identities, key=lambda i: i.at):
        if ident.in_recovery:
            continue
        if ident.worker in last and last[ident.worker].server() != ident.server():
            changes.append({"worker": ident.worker, "at": ident.at,
                            "from": last[ident.worker].label(), "to": ident.label()})
        last[ident.worker] = ident
    return changes


def primary_moves(changes: list[dict]) -> list[dict]:
    """Identity changes (`identity_changes`) grouped into moves of the primary: from, to,
    when the first and the last worker followed, and how many workers did."""
    moves: list[dict] = []
    for change in changes:
        move = next((m for m in reversed(moves) if (m["from"], m["to"]) ==
                     (change["from"], change["to"])), None)
        if move is None or change["worker"] in move["worker_set"]:
            move = {"from": change["from"], "to": change["to"], "first": change["at"],
                    "last": change["at"], "worker_set": set()}
            moves.append(move)
        move["last"] = change["at"]
        move["worker_set"].add(change["worker"])
    return [{"from": m["from"], "to": m["to"], "first": m["first"], "last": m["last"],
             "workers": len(m["worker_set"])} for m in moves]
