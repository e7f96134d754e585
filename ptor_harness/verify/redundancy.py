"""The drill before the fault: when the primary lost a standby (it stopped streaming, or a
synchronous one dropped to asynchronous), when a standby fell further behind than
--standby-lag-threshold and caught up again, and whether any was streaming at the fault,
from the primary's own view in the node observer's samples (pg_stat_replication, and its
WAL position in the same sample). A loss at the failover often starts here: a synchronous
standby gone seconds before, its waits cancelled, commits visible on the primary alone; or
an async standby megabytes behind when the primary died. And from the ledger: the
primary's commits stalling (a brownout period that began before the fault).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from ..ops import NodeSample, ReplicationRow
from .anatomy import SYNC_STATES, Event, is_primary, primary_at

STOPPED = "standby stopped streaming"
DROPPED = "synchronous standby dropped to async"
BACK = "standby streaming again"
LAGGING = "standby lag above the threshold"
CAUGHT_UP = "standby lag back under the threshold"
STALLED = "commits stalled"


def bytes_behind(sample: NodeSample, row: ReplicationRow) -> tuple[Optional[int], ...]:
    """(replayed, flushed) bytes a standby was behind its primary's position in the same
    sample, each None when unknown (no pg_monitor)."""
    return tuple(None if sample.wal_lsn is None or lsn is None else
                 max(0, sample.wal_lsn - lsn) for lsn in (row.replay_lsn, row.flush_lsn))


def lag_events(samples: Sequence[NodeSample], rows: dict[tuple[str, float], list],
               threshold: Optional[int]) -> list[Event]:
    """A standby crossing `threshold` bytes of WAL behind its primary, either way, in the
    primary's samples (time order); none without a threshold. The lag is the replayed
    position's, which bounds how long a promotion takes (the flushed one, which bounds
    what it can lose, is in the detail)."""
    if not threshold:
        return []
    events: list[Event] = []
    above: dict[str, bool] = {}
    previous: Optional[float] = None
    for sample in samples:
        for row in rows.get((sample.node, sample.at), []):
            replayed, flushed = bytes_behind(sample, row)
            name = row.application_name or "standby"
            if replayed is None or (replayed > threshold) == above.get(name, False):
                continue
            above[name] = replayed > threshold
            events.append(Event(LAGGING if above[name] else CAUGHT_UP, sample.at,
                                f"observer: {sample.node}",
                                f"{name}: {replayed:,} bytes behind in replay, "
                                f"{'-' if flushed is None else f'{flushed:,}'} in flush "
                                f"(threshold {threshold:,})", previous))
        previous = sample.at
    return events


def streaming(rows: Sequence[ReplicationRow]) -> dict[str, str]:
    """standby -> its sync state, for the standbys streaming in one sample."""
    return {r.application_name or "standby": r.sync_state or "" for r in rows
            if r.state == "streaming"}


def before_fault(nodes: dict[str, list[NodeSample]], replication: Sequence[ReplicationRow],
                 fault_at: float, lag_threshold: Optional[int] = None,
                 until: Optional[float] = None) -> tuple[list[Event], Optional[float]]:
    """(the primary's standbys changing before the fault, as events in time order; since
    when no standby was streaming at the fault, None when one was or nothing was seen).

    `until` (the first client error, when later than the fault's start) carries on with
    the old primary's own samples up to it: a fault that is a command may stop a standby
    and fail the primary over seconds later, and what the primary lost meanwhile is what
    the failover then loses. Only its samples: a node promoted meanwhile is not the
    primary whose standbys this follows. "At the fault" then means when writes failed."""
    rows: dict[tuple[str, float], list[ReplicationRow]] = {}
    for r in replication:
        rows.setdefault((r.node, r.at), []).append(r)
    old = primary_at(nodes, fault_at)
    samples = sorted((s for mine in nodes.values() for s in mine
                      if is_primary(s) and (s.at < fault_at or (
                          until is not None and old is not None and s.node == old.node
                          and s.at < until))), key=lambda s: s.at)
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
    events += lag_events(samples, rows, lag_threshold)
    return sorted(events, key=lambda e: e.at), alone_since if samples else None


def stalls_before(slow: dict, fault_at: float) -> list[Event]:
    """The primary's commits stalling before the fault: each brownout period whose first
    slow second ended by the fault (acknowledged ops per second under the threshold's
    share of the baseline), as an event at its start; "ledger" is its source, every op's
    acknowledgement. A period that begins in the second the fault falls in is the fault's
    own outage as far as whole seconds can tell (it read "commits stalled 0.37 s before the
    fault" of a drill whose last acknowledgement came after the fault)."""
    rate = slow["warmup_ok_per_second"]
    return [Event(STALLED, p["start"], "ledger",
                  f"under {slow['threshold']:g} of the baseline's {rate:,g} acknowledged ops "
                  f"a second for {p['seconds']:g} s" + (", until the fault"
                                                       if p["end"] >= fault_at else ""))
            for p in slow["periods"] if p["start"] + 1.0 <= fault_at]  # whole seconds
