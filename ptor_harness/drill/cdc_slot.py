"""The CDC consumer's slot and publication on the primary: what must hold before the load
(each failure one sentence naming the fix, exit 3), what ptor creates with --init (its
publication, and the slot only with --cdc-create-slot), and the slot's state on the new
primary after the failover.

ptor's worker tables get REPLICA IDENTITY FULL while a consumer reads them, so a delete
carries the row version it removed (cdc_decode.py); the tables are ptor's own.
"""

from __future__ import annotations

import psycopg2

from ..config.scenario import Cdc
from ..db import quote_ident
from ..errors import ClusterError
from ..schema import MARK, worker_table
from .cdc import parse_lsn

PRESENT, MISSING, LOST_WAL, INVALIDATED = "present", "missing", "lost WAL", "invalidated"


def prepare(conn, cdc: Cdc, schema: str, workers: int, init: bool) -> int:
    """Check (and with --init create) what the consumer needs on the primary behind
    `conn`; returns the WAL position from which changes are this run's (the worker tables
    were emptied just before). Raises ClusterError."""
    slot, plugin = cdc.cdc_slot, cdc.cdc_plugin
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('wal_level'), current_database(), "
                    "(SELECT rolreplication OR rolsuper FROM pg_roles "
                    " WHERE rolname = current_user)")
        wal_level, database, may_replicate = cur.fetchone()
        if wal_level != "logical":
            raise ClusterError(f"the primary's wal_level is {wal_level}; --cdc-slot needs "
                               "logical: set wal_level = logical and restart it (ptor-lab up "
                               "--cdc does)")
        if not may_replicate:
            raise ClusterError("the role ptor connects as may not read a replication slot: "
                               "grant it REPLICATION (ALTER ROLE ... REPLICATION)")
        if plugin == "pgoutput":
            publication(conn, cdc.cdc_publication, schema, workers, init)
        cur.execute("SELECT slot_type, plugin, database, active_pid FROM "
                    "pg_replication_slots WHERE slot_name = %s", (slot,))
        found = cur.fetchone()
        if found is None and init and cdc.cdc_create_slot:
            conn.commit()  # a slot is made in a transaction that has written nothing
            cur.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (slot, plugin))
            conn.commit()
            cur.execute("SELECT slot_type, plugin, database, active_pid FROM "
                        "pg_replication_slots WHERE slot_name = %s", (slot,))
            found = cur.fetchone()
        if found is None:
            raise ClusterError(f"there is no replication slot {slot} on the primary: create "
                               f"it (SELECT pg_create_logical_replication_slot('{slot}', "
                               f"'{plugin}')) or run with --init --cdc-create-slot")
        slot_type, slot_plugin, slot_database, active_pid = found
        if slot_type != "logical":
            raise ClusterError(f"replication slot {slot} is a physical slot; --cdc-slot "
                               "needs a logical one")
        if slot_plugin != plugin:
            raise ClusterError(f"replication slot {slot} uses the plugin {slot_plugin}, not "
                               f"{plugin}: give --cdc-plugin {slot_plugin}")
        if slot_database != database:
            raise ClusterError(f"replication slot {slot} is for the database "
                               f"{slot_database}, not {database}, where ptor's tables are")
        if active_pid is not None:
            raise ClusterError(f"replication slot {slot} is in use by another consumer "
                               f"(backend {active_pid}): ptor's consumer must have it alone")
        for worker in range(workers):
            cur.execute(f"ALTER TABLE {worker_table(schema, worker)} REPLICA IDENTITY FULL")
        conn.commit()
        cur.execute("SELECT pg_current_wal_lsn()::text")
        since = parse_lsn(cur.fetchone()[0])
    conn.commit()
    return since


def publication(conn, name: str, schema: str, workers: int, init: bool) -> None:
    """pgoutput's publication: with --init, ptor's own for its schema (before PostgreSQL
    15, for its worker tables) where there is none of that name, marked as ptor's so
    --reset drops it; else it must exist."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,))
        if cur.fetchone() is not None:
            return
        if not init:
            raise ClusterError(f"there is no publication {name} on the primary: run with "
                               "--init to create it for ptor's tables, or name yours with "
                               "--cdc-publication")
        what = f"TABLES IN SCHEMA {quote_ident(schema)}" if conn.server_version >= 150000 \
            else "TABLE " + ", ".join(worker_table(schema, w) for w in range(workers))
        cur.execute(f"CREATE PUBLICATION {quote_ident(name)} FOR {what}")
        cur.execute(f"COMMENT ON PUBLICATION {quote_ident(name)} IS %s", (MARK,))


def slot_state(conn, slot: str) -> dict:
    """The slot on the server behind `conn` (the new primary): present, missing, lost WAL
    (the WAL it needed was removed: max_slot_wal_keep_size) or invalidated for another
    reason (PostgreSQL 16 and later: rows it needed removed, wal_level lowered; 17 names
    the reason, and it is in the detail), with its positions."""
    version = getattr(conn, "server_version", 0)
    reason = "invalidation_reason" if version >= 170000 else \
        "CASE WHEN conflicting THEN 'conflict' END" if version >= 160000 else "NULL"
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT wal_status, confirmed_flush_lsn::text, restart_lsn::text, "
                        f"{reason} FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            found = cur.fetchone()
    except psycopg2.Error as exc:
        return {"status": None, "error": str(exc).strip().splitlines()[0][:200]}
    if found is None:
        return {"status": MISSING, "confirmed_flush_lsn": None, "restart_lsn": None}
    wal_status, confirmed, restart, invalidated = found
    status = LOST_WAL if wal_status == "lost" or invalidated == "wal_removed" else \
        INVALIDATED if invalidated else PRESENT
    out = {"status": status,
           "confirmed_flush_lsn": None if confirmed is None else parse_lsn(confirmed),
           "restart_lsn": None if restart is None else parse_lsn(restart)}
    if invalidated:
        out["invalidation_reason"] = invalidated
    return out
