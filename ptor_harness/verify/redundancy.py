"""The drill before the fault: when the primary lost a standby (it stopped streaming, or a
synchronous one dropped to asynchronous) and whether any was streaming at the fault, from
the primary's own view in the node observer's samples (pg_stat_replication). A loss at
the failover often starts here: a synchronous standby gone seconds before, its waits
cancelled, commits visible on the primary alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from ..ops import NodeSample, ReplicationRow
from .anatomy import SYNC_STATES, Event, is_primary

STOPPED = "standby stopped streaming"
DROPPED = "synchronous standby dropped to async"
BACK = "standby streaming again"


def streaming(rows: Sequence[ReplicationRow]) -> dict[str, str]:
    """standby -> its sync state, for the standbys streaming in one sample."""
    return {r.application_name or "standby": r.sync_state or "" for r in rows
            if r.state == "streaming"}


def before_fault(nodes: dict[str, list[NodeSample]], replication: Sequence[ReplicationRow],
                 fault_at: float) -> tuple[list[Event], Optional[float]]:
    """(the primary's standbys changing before the fault, as events; since when no standby
    was streaming at the fault, None when one was or nothing was seen)."""
    rows: dict[tuple[str, float], list[ReplicationRow]] = {}
    for r in replication:
        rows.setdefault((r.node, r.at), []).append(r)
    samples = sorted((s for mine in nodes.values() for s in mine
                      if s.at < fault_at and is_primary(s)), key=lambda s: s.at)
    events: list[Event] = []
    before: Optional[dict[str, str]] = None
    before_at = None
    alone_since: Optional[float] = None
    for sample in samples:
        now = streaming(rows.get((sample.node, sample.at), []))
        source = f"observer: {sample.node}"
        if before is not None:
            for name, state in before.items():
                if name not in now:
                    events.append(Event(STOPPED, sample.at, source,
                                        f"{name} ({state or 'unknown'}) no longer streaming",
                                        before_at))
                elif state in SYNC_STATES and now[name] not in SYNC_STATES:
                    events.append(Event(DROPPED, sample.at, source,
                                        f"{name}: {state} -> {now[name] or 'unknown'}",
                                        before_at))
            for name in now.keys() - before.keys():
                events.append(Event(BACK, sample.at, source, f"{name} ({now[name]})",
                                    before_at))
        if now:
            alone_since = None
        elif alone_since is None:
            alone_since = sample.at
        before, before_at = now, sample.at
    return events, alone_since if samples else None
