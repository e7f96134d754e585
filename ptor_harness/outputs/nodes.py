"""The node observer's part of the report: what it watched and delivered, and each node's
states over time (the failover's anatomy and the causes of loss are verify/figures.py's)."""

from __future__ import annotations

from ..outcome import DrillOutcome
from ..verify.lanes import lag_series, role_lanes


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
