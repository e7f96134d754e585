"""The failover's anatomy as the terminal shows it: the events step by step, the write
outage by part, replication at the fault, two primaries, stale routing and a primary held
read-only; then the anatomy of each outage a later fault caused (a failback)."""

from __future__ import annotations

from tabulate import tabulate

from .account import no_standby
from .cells import num, secs
from .event_time import after_fault, event_when


def anatomy_tables(r: dict, rel) -> list[str]:
    """The failover as the nodes and the clients saw it, step by step; how far each
    standby was behind at the fault; two primaries at once; stale routing and a primary
    held read-only."""
    parts: list[str] = []
    nodes, a = r.get("nodes") or {}, r.get("anatomy") or {}
    stale = a.get("stale_routing") or {}
    if stale.get("refused_writes") or stale.get("standby_sessions"):
        parts += ["", f"Stale routing: {stale['refused_writes']:,} writes refused as read-only "
                  f"(SQLSTATE 25006) and {stale['standby_sessions']:,} sessions that landed "
                  f"on a standby, from {rel(stale['first_at'])} to {rel(stale['last_at'])} "
                  f"({secs(stale['seconds'])}): clients were sent to a server that was not the "
                  "primary"]
    held = a.get("refused_by_primary") or {}
    if held.get("refused_writes"):
        parts += ["", f"Read-only primary: {held['refused_writes']:,} writes refused as "
                  "read-only (SQLSTATE 25006) by the primary itself, from "
                  f"{rel(held['first_at'])} to {rel(held['last_at'])} "
                  f"({secs(held['seconds'])}): it was held read-only "
                  "(default_transaction_read_only), not left behind"]
    if nodes.get("observer") != "on":
        return parts + (["", f"Node observer: {nodes.get('found', 'off')}"] if nodes else [])
    every = f"observer samples every {r['scenario'].get('observe_interval', 0):g} s"
    if a.get("events"):
        parts += ["", f"Failover anatomy ({every})", events_table(a, rel), outage_split(a)]
    if a.get("replication_at_fault"):
        rows = [[x["standby"], x["seen_by"], x["sync_state"] or "-",
                 num(x["sent_bytes_behind"]), num(x["flushed_bytes_behind"]),
                 num(x["replayed_bytes_behind"]), secs(x["replay_lag_seconds"])]
                for x in a["replication_at_fault"]]
        parts += ["", "Replication at the fault (bytes behind the primary)",
                  tabulate(rows, headers=["standby", "seen by", "sync", "sent", "flushed",
                                          "replayed", "replay lag"])]
    alone = no_standby(r)
    if alone:
        parts += ["", alone]
    for both in a.get("two_primaries") or []:
        parts += ["", f"TWO PRIMARIES: {' and '.join(both['nodes'])} both primary from "
                  f"{rel(both['start'])} to {rel(both['end'])} ({secs(both['seconds'])})"]
    for name, info in (nodes.get("nodes") or {}).items():
        if info.get("never_reached"):
            parts += ["", f"Node observer: {name} never answered ({info['never_reached']})"]
    if nodes.get("unknown_fields"):
        parts += ["", f"Node observer: {nodes['unknown_fields']}"]
    for later in a.get("later_outages") or []:
        parts += ["", f"{later_title(later, rel)} ({every})", events_table(later, rel),
                  outage_split(later)]
    return parts


def events_table(a: dict, rel) -> str:
    """An anatomy's events, each at its time (event_time.event_when)."""
    rows = [[when, secs(after_fault(e)), e["name"], e["source"], detail]
            for e in a["events"] for when, detail in [event_when(e, rel)]]
    return tabulate(rows, headers=["at", "after fault", "event", "source", "detail"],
                    disable_numparse=[0])


def later_title(later: dict, rel) -> str:
    """The heading of a later outage's anatomy (the terminal's and report.html's)."""
    return f"Failover anatomy of the later fault {later['fault']} at {rel(later['fault_at'])}"


OUTAGE_PARTS = {"detection_seconds": "detection", "promotion_seconds": "promotion",
                "read_only_seconds": "read-only", "held_seconds": "clients held",
                "routing_seconds": "routing", "first_commit_seconds": "first commit"}
SAID_WHEN_THERE = ("read_only_seconds", "first_commit_seconds")  # else "-"


def outage_split(a: dict) -> str:
    """The write outage by part, as the terminal and report.html say it (the read-only
    part only where the promoted node was held read-only, the clients held only where
    their ops in flight outlasted the promotion, the first commit only where a worker's
    session on the new primary is known)."""
    split = [f"{label} {secs(a.get(key))}" for key, label in OUTAGE_PARTS.items()
             if (key not in SAID_WHEN_THERE or a.get(key) is not None)
             and (key != "held_seconds" or a.get(key))]
    return "write outage: " + ", ".join(split)
