"""The node observer's part of the report: what it watched and delivered, the failover's
anatomy (verify/anatomy.py) for the outage that matters, and why lost ops were lost."""

from __future__ import annotations

from typing import Optional

from ..outcome import DrillOutcome
from ..verify.anatomy import anatomy, lag_series, role_lanes
from ..verify.findings import OTHER_CAUSE, SPLIT_BRAIN, SYNC_WAIT_CANCELLED


def lost_by_cause(counts: dict, at_fault: list[dict]) -> dict:
    """Why the lost acknowledged ops were lost: a cancelled wait for the synchronous
    standby (PostgreSQL said so with the acknowledgement), split brain, and the rest by
    the replication mode the observer saw at the fault: asynchronous lag when no standby
    was synchronous, unexplained when one was, not attributed when nothing was seen."""
    modes = {x["sync_state"] for x in at_fault if x["seen_by"].startswith("primary")}
    other = counts.get(OTHER_CAUSE, 0)
    sync = bool(modes & {"sync", "quorum"})
    return {SYNC_WAIT_CANCELLED: counts.get(SYNC_WAIT_CANCELLED, 0),
            SPLIT_BRAIN: counts.get(SPLIT_BRAIN, 0),
            "asynchronous_lag": other if modes and not sync else 0,
            "unexplained": other if sync else 0,
            "not_attributed": 0 if modes else other}


def stale_routing(outcome: DrillOutcome, fault_at: Optional[float]) -> dict:
    """Clients sent to a server that was no longer the primary: writes refused as
    read-only (SQLSTATE 25006), and sessions the endpoint led to a standby after the fault
    (a worker checks every session it opens and looks again)."""
    refused, first, last = outcome.refused_writes
    landed = [i.at for i in outcome.identities
              if i.in_recovery and fault_at is not None and i.at >= fault_at]
    times = [t for t in (first, last) if t is not None] + landed
    return {"refused_writes": refused, "standby_sessions": len(landed),
            "first_at": min(times, default=None), "last_at": max(times, default=None),
            "seconds": max(times) - min(times) if times else None}


def failover_anatomy(outcome: DrillOutcome, windows: list, fault_at: Optional[float],
                     fault: dict, causing: Optional[int]) -> dict:
    """The anatomy (verify/anatomy.py) of the outage ptor's fault caused (`causing`: the
    index of the first fault an outage followed), or of the first outage when a person
    failed the cluster over."""
    injected = outcome.faults[causing] if causing is not None else None
    if injected is not None:
        detection, to_ok = fault["detection_seconds"], fault["injection_to_first_ok_seconds"]
        detected = None if detection is None else fault_at + detection
        first_ok = None if to_ok is None else fault_at + to_ok
    else:
        detected = windows[0].first_bad if windows else None
        first_ok = windows[0].first_ok if windows else None
    return anatomy(outcome.node_samples, outcome.replication, fault_at,
                   injected.name if injected else None, detected, first_ok)


def nodes_section(outcome: DrillOutcome) -> dict:
    """What the node observer watched, what it delivered, what it could not read, and each
    node's states over time."""
    o, samples = outcome.observer, outcome.node_samples
    # `ptor reconcile` did not run the observer: the drill's samples are in the ledger
    names = o.nodes or list(dict.fromkeys(x.node for x in samples))
    nodes = {}
    for name in names:
        mine = [x for x in samples if x.node == name]
        monitor = {x.monitor for x in mine if x.monitor is not None}
        reached = sum(1 for x in mine if x.reachable)
        nodes[name] = {"samples": len(mine), "reachable": reached,
                       "pg_monitor": None if not monitor else all(monitor),
                       "never_reached": None if reached or not mine else mine[-1].error}
    unread = [name for name, info in nodes.items() if info["pg_monitor"] is False]
    return {
        "observer": "on" if names else "off",
        "found": o.found if o.nodes or not names else "the run's ledger",
        "samples_sent": o.sent,
        "samples_dropped": o.dropped,
        "failure": o.failure,
        "nodes": nodes,
        "unknown_fields": None if not unread else (
            f"on {', '.join(unread)} ptor's role is neither superuser nor a member of "
            "pg_monitor: WAL positions and standbys' progress there are unknown (GRANT "
            "pg_monitor TO the role ptor connects as, to fill them)"),
        "lanes": role_lanes(samples),
        "replay_lag_bytes": lag_series(samples, outcome.replication),
    }
