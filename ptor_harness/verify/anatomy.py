"""The failover's anatomy: what the nodes said, in order, beside what the clients saw (pure).

From the node observer's samples (drill/observer.py) and the clients' figures: the old
primary going away (unreachable, or demoted), a standby promoted, writes acknowledged
again through the endpoint, the old primary back as a standby, a synchronous standby
streaming again. Each event has its time, its source, and for an observer event the
sample before it (the event happened in between: the observer's resolution). The write
outage splits into detection (fault to first client error), promotion (to the standby's
promotion), read-only (to when the promoted node took writes, where its manager held it
read-only first) and routing (to the first acknowledged write). Also: how far each standby was
behind at the fault, any time two nodes were primaries at once, and when the endpoint took
connections again (Service Available).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Optional

from ..ops import ENDPOINT, NodeSample, ReplicationRow

SYNC_STATES = ("sync", "quorum")


@dataclass(frozen=True)
class Event:
    name: str
    at: float
    source: str
    detail: str = ""
    after: Optional[float] = None  # an observer event happened between `after` and `at`

    def as_dict(self, origin: Optional[float], first_ok_at: Optional[float] = None) -> dict:
        """`happened_by`: the first acknowledged write's time where it bounds the event
        (listed_at), so a reader sees why it stands before the write; else None."""
        by = listed_at(self.name, self.at, self.after, first_ok_at)
        return dict(asdict(self), happened_by=by if by < self.at else None,
                    seconds_after_fault=None if origin is None else round(self.at - origin, 6))


def by_node(samples: Sequence[NodeSample]) -> dict[str, list[NodeSample]]:
    """The cluster's nodes' samples, each node's in time order (the endpoint apart)."""
    return {name: mine for name, mine in by_name(samples).items() if name != ENDPOINT}


def is_primary(sample: NodeSample) -> bool:
    return sample.reachable and sample.in_recovery is False


def primary_at(nodes: dict[str, list[NodeSample]], at: float) -> Optional[NodeSample]:
    """The last sample before `at` of the node that was primary then (the latest, if two
    said so)."""
    found = None
    for samples in nodes.values():
        last = next((s for s in reversed(samples) if s.at < at and s.reachable), None)
        if last is not None and is_primary(last) and (found is None or last.at > found.at):
            found = last
    return found


def first_change(samples: list[NodeSample], since: float, test) -> Optional[Event]:
    """The first sample at or after `since` for which `test(sample)` holds, as an event
    (its name and detail filled in by the caller), with the sample before it."""
    before = None
    for sample in samples:
        if sample.at >= since and test(sample):
            return Event("", sample.at, f"observer: {sample.node}",
                         after=before.at if before else None)
        before = sample
    return None


def sample_at(samples: list[NodeSample], event: Event) -> NodeSample:
    """The sample that showed an observer event (first_change keeps only its time)."""
    return next(s for s in samples if s.at == event.at)


def failover_events(nodes: dict[str, list[NodeSample]],
                    replication: Sequence[ReplicationRow], fault_at: float,
                    ) -> tuple[list[Event], Optional[str], Optional[str]]:
    """The nodes' side of the failover: the old primary lost, a standby promoted, the old
    primary rejoined, redundancy restored. Returns the events, the old and the new
    primary's names."""
    events: list[Event] = []
    old = primary_at(nodes, fault_at)
    if old is None:
        return events, None, None
    lost = first_change(nodes[old.node], fault_at, lambda s: not is_primary(s))
    if lost is not None:
        sample = sample_at(nodes[old.node], lost)
        how = "unreachable" if not sample.reachable else "demoted (in recovery)"
        events.append(Event(f"old primary {how}", lost.at, lost.source,
                            sample.error or "", lost.after))
    promoted, new = None, None
    for name, samples in nodes.items():
        if name == old.node:
            continue
        change = first_change(samples, fault_at, is_primary)
        if change is not None and (promoted is None or change.at < promoted.at):
            promoted, new = change, name
    if promoted is None:
        # no standby took over: the old primary itself may answer as the primary again
        # (restarted in place, by its manager or a person)
        back = None if lost is None else first_change(nodes[old.node], lost.at, is_primary)
        if back is not None:
            timeline = sample_at(nodes[old.node], back).timeline
            events.append(Event("old primary back", back.at, back.source,
                                f"{old.node} primary again, timeline {timeline}", back.after))
        return events, old.node, None
    timeline = sample_at(nodes[new], promoted).timeline
    events.append(Event("standby promoted", promoted.at, promoted.source,
                        f"{new} now primary, timeline {timeline} (was {old.timeline})",
                        promoted.after))
    held = writable_after_promotion(nodes[new], promoted.at)
    if held is not None:
        events.append(Event("new primary writable", held.at, held.source,
                            f"{new} no longer read-only (transaction_read_only off)",
                            held.after))
    # streaming from the new primary: its WAL receiver gets the new timeline (a standby
    # restarted in recovery may show a received position before it streams at all). The
    # new primary's walsender is no proof: a rejoining node first fetches its old
    # timeline up to the switch point (catchup, even "streaming", then "startup" again),
    # and pg_auto_failover may then restart it or clone it anew: seen here as walsenders
    # of under 0.1 s, 1.4 to 5.4 s before the node really followed. Only when the old
    # node's own samples never show it (e.g. the observer cannot reach it) does the new
    # primary's view stand in.
    rejoined = first_change(nodes[old.node], promoted.at,
                            lambda s: s.reachable and s.in_recovery is True
                            and timeline is not None and s.timeline == timeline)
    if rejoined is None and len(nodes) == 2:  # the new primary's only possible standby
        streaming = next((r for r in replication if r.node == new and r.at >= promoted.at
                          and r.state == "streaming"), None)
        if streaming is not None:
            rejoined = Event("", streaming.at, f"observer: {new}")  # seen by the primary
    if rejoined is not None:
        events.append(Event("old primary rejoined", rejoined.at, rejoined.source,
                            f"{old.node} streaming from {new}", rejoined.after))
    was_sync = any(r.node == old.node and r.at == old.at and r.sync_state in SYNC_STATES
                   for r in replication)
    wanted = SYNC_STATES if was_sync else ("sync", "quorum", "async", "potential")
    restored = next((r for r in replication if r.node == new and r.at >= promoted.at
                     and r.state == "streaming" and r.sync_state in wanted), None)
    if restored is not None:
        events.append(Event("redundancy restored", restored.at, f"observer: {new}",
                            f"{restored.application_name or 'a standby'} streaming, "
                            f"{restored.sync_state}"))
    return events, old.node, new


def writable_after_promotion(samples: list[NodeSample], promoted_at: float,
                             ) -> Optional[Event]:
    """When a promoted node that first said it was out of recovery but read-only (its
    manager holding writes back: pg_auto_failover's default_transaction_read_only while it
    promotes) first took writes; None when it took them from its promotion on, or the
    samples do not say (an older ledger, a server not asked)."""
    first = next((s for s in samples if s.at >= promoted_at), None)
    if first is None or first.read_only is not True:
        return None
    return first_change(samples, promoted_at, lambda s: is_primary(s)
                        and s.read_only is False)


def replication_at_fault(nodes: dict[str, list[NodeSample]],
                         replication: Sequence[ReplicationRow],
                         fault_at: float) -> list[dict]:
    """How far each standby was behind the primary at the last sample before the fault:
    as the primary saw it (pg_stat_replication: sent, flushed, replayed bytes; replay lag)
    and as each standby saw itself (received and replayed bytes behind the primary's WAL
    position at that sample)."""
    old = primary_at(nodes, fault_at)
    if old is None or old.wal_lsn is None:
        return []
    wal = old.wal_lsn
    behind = lambda lsn: None if lsn is None else max(0, wal - lsn)  # noqa: E731
    out = [{"standby": r.application_name, "seen_by": f"primary {old.node}",
            "state": r.state, "sync_state": r.sync_state,
            "sent_bytes_behind": behind(r.sent_lsn),
            "flushed_bytes_behind": behind(r.flush_lsn),
            "replayed_bytes_behind": behind(r.replay_lsn), "replay_lag_seconds": r.replay_lag,
            "at": r.at}
           for r in replication if r.node == old.node and r.at == old.at]
    for name, samples in nodes.items():
        last = next((s for s in reversed(samples) if s.at < fault_at), None)
        if name == old.node or last is None or not last.reachable or not last.in_recovery:
            continue
        out.append({"standby": name, "seen_by": "itself", "state": None, "sync_state": None,
                    "sent_bytes_behind": None, "flushed_bytes_behind": behind(last.receive_lsn),
                    "replayed_bytes_behind": behind(last.replay_lsn),
                    "replay_lag_seconds": None if last.replay_at is None
                    else max(0.0, last.at - last.replay_at), "at": last.at})
    return out


def closest_standby(rows: Sequence[dict]) -> Optional[tuple[str, int, Optional[float]]]:
    """(standby, bytes, seconds) of the standby least behind at the fault, from the rows
    of `replication_at_fault`: the best candidate a manager had. A standby's bytes are the
    WAL it had received (flushed) where known, else what it had replayed; both views of
    it (the primary's and its own) count, the smaller behind."""
    best: dict[str, tuple[int, Optional[float]]] = {}
    for row in rows:
        behind = row.get("flushed_bytes_behind")
        behind = row.get("replayed_bytes_behind") if behind is None else behind
        if behind is None:
            continue
        name = row["standby"]
        if name not in best or behind < best[name][0]:
            best[name] = (behind, row.get("replay_lag_seconds"))
    if not best:
        return None
    name = min(best, key=lambda n: best[n][0])
    return name, best[name][0], best[name][1]


def primary_spans(samples: list[NodeSample]) -> list[tuple[float, float]]:
    """The spans in which a node's consecutive samples said it was a primary."""
    spans, start, last = [], None, None
    for sample in samples:
        if is_primary(sample):
            start = sample.at if start is None else start
            last = sample.at
        elif start is not None:
            spans.append((start, last))
            start = None
    if start is not None:
        spans.append((start, last))
    return spans


def two_primaries(nodes: dict[str, list[NodeSample]]) -> list[dict]:
    """Every interval in which two nodes of one cluster (same system identifier, where
    known) both said they were the primary: the split-brain exposure."""
    spans = {name: primary_spans(samples) for name, samples in nodes.items()}
    system = {name: next((s.system_id for s in samples if s.system_id), None)
              for name, samples in nodes.items()}
    names = sorted(spans)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if system[a] and system[b] and system[a] != system[b]:
                continue  # two clusters, not two primaries of one
            for a_start, a_end in spans[a]:
                for b_start, b_end in spans[b]:
                    start, end = max(a_start, b_start), min(a_end, b_end)
                    if start <= end:
                        out.append({"nodes": [a, b], "start": start, "end": end,
                                    "seconds": end - start})
    return sorted(out, key=lambda d: d["start"])


def service_available(samples: Sequence[NodeSample], fault_at: float) -> Optional[float]:
    """Fault to the endpoint's first successful connection, any role, after it failed
    (the original tool's "Service Available"); 0 when it never failed; None when the
    endpoint was not sampled after the fault."""
    after = [s for s in sorted(samples, key=lambda s: s.at)
             if s.node == ENDPOINT and s.at >= fault_at]
    if not after:
        return None
    down = next((i for i, s in enumerate(after) if not s.reachable), None)
    if down is None:
        return 0.0
    back = next((s for s in after[down:] if s.reachable), None)
    return None if back is None else back.at - fault_at


def read_outages(samples: Sequence[NodeSample], fault_at: float) -> dict:
    """Read availability: for the endpoint and for each node, the longest span from a
    sample that answered a SELECT to the next one that did again, among the spans in which
    it did not answer at or after the fault (0 when it always answered; None when it was
    not sampled after the fault or never answered again)."""
    out: dict = {}
    for name, mine in by_name(samples).items():
        after = [s for s in mine if s.at >= fault_at]
        if not after:
            out[name] = None
            continue
        longest, last_ok, down = 0.0, None, False
        for sample in mine:
            if sample.reachable:
                if down and last_ok is not None:
                    longest = max(longest, sample.at - last_ok)
                last_ok, down = sample.at, False
            elif sample.at >= fault_at:
                down = True
        out[name] = None if down else longest
    return out


def by_name(samples: Sequence[NodeSample]) -> dict[str, list[NodeSample]]:
    """Every sampled name's samples (the endpoint's too), in time order."""
    out: dict[str, list[NodeSample]] = {}
    for sample in sorted(samples, key=lambda s: s.at):
        out.setdefault(sample.node, []).append(sample)
    return out


def _bounded(at: float, after: Optional[float], first_ok_at: Optional[float]) -> float:
    """An observer event's time, no later than a first acknowledged write that came after
    the sample before it (`after`; None: no sample before it)."""
    if first_ok_at is None or (after is not None and first_ok_at <= after):
        return at
    return min(at, first_ok_at)


def bounded_by(event: Optional[Event], first_ok_at: Optional[float]) -> Optional[float]:
    """An observer event's time, bounded by the first acknowledged write (_bounded)."""
    return None if event is None else _bounded(event.at, event.after, first_ok_at)


# The events the first acknowledged write after the outage implies: they had happened by
# then (with no standby promoted, the write went to the old primary, back). Not the old
# primary lost: with its manager killed it may still take writes.
IMPLIED_BY_A_WRITE = ("standby promoted", "new primary writable", "old primary back")


def listed_at(name: str, at: float, after: Optional[float],
              first_ok_at: Optional[float]) -> float:
    """Where an event stands in the list: one the first acknowledged write implies
    (IMPLIED_BY_A_WRITE), seen in a sample whose previous sample (`after`) came before
    that write, stands before the write; its time stays the sample's that showed it.
    Every other event stands at its own time."""
    return _bounded(at, after, first_ok_at) if name in IMPLIED_BY_A_WRITE and \
        after is not None else at


def anatomy(samples: Sequence[NodeSample], replication: Sequence[ReplicationRow],
            fault_at: Optional[float], fault_name: Optional[str],
            detected_at: Optional[float], first_ok_at: Optional[float],
            reached_at: Optional[float] = None,
            clients_failed_at: Optional[float] = None) -> dict:
    """The anatomy section of the report. `fault_at`: ptor's injection, else the first
    client error (a person failed the cluster over); `detected_at`: the first client
    error; `first_ok_at`: the first acknowledged write after the outage; `reached_at`:
    the first worker session on the primary the drill ended with, after the first client
    error (None: not known). The routing part runs to that session, and the first commit
    part from it to the acknowledgement: a new primary whose commits wait for a
    synchronous standby to attach (repmgr's quorum after a switchover: 1.06 s) held its
    first writes there, not in routing. `clients_failed_at`: the workers' first failure;
    where it came after the new primary was ready (a primary that hung: their ops in
    flight waited for their own timeout, 10 s, while the probe had failed at once), that
    wait is the `held` part, before routing."""
    nodes = by_node(samples)
    events: list[Event] = []
    old = new = None
    if fault_at is not None:
        if fault_name:
            events.append(Event("fault injected", fault_at, "ptor", fault_name))
        node_events, old, new = failover_events(nodes, replication, fault_at)
        events += node_events
    if detected_at is not None:
        events.append(Event("first client error", detected_at, "workers and probe"))
    if first_ok_at is not None:
        events.append(Event("writes acknowledged again", first_ok_at, "workers",
                            "first acknowledged write through the endpoint"))
    events.sort(key=lambda e: listed_at(e.name, e.at, e.after, first_ok_at))
    # The observer saw the promotion (and the new primary taking writes) up to one
    # interval late: a write acknowledged through the endpoint after the sample before it
    # bounds it from above.
    promoted = bounded_by(next((e for e in events if e.name == "standby promoted"), None),
                          first_ok_at)
    writable = bounded_by(next((e for e in events if e.name == "new primary writable"),
                               None), first_ok_at)
    # The phases follow one another from the first client error: a standby promoted
    # before any client saw an error (a frozen primary whose sessions hang until their
    # timeout) spent no time of the outage promoting ("promotion -1.846 s" before).
    if promoted is not None and reached_at is not None:
        promoted = min(promoted, reached_at)  # a session found it primary by then
    if promoted is not None and detected_at is not None:
        promoted = max(promoted, detected_at)
    if writable is not None and promoted is not None:
        writable = max(writable, promoted)
    ready = writable if writable is not None else promoted
    routed_from = ready
    if ready is not None and clients_failed_at is not None and first_ok_at is not None:
        routed_from = min(max(ready, clients_failed_at), first_ok_at)  # released
    connected = None if None in (reached_at, first_ok_at) else min(reached_at, first_ok_at)
    if connected is not None and routed_from is not None:
        connected = max(connected, routed_from)
    routed_to = connected if connected is not None else first_ok_at
    return {
        "old_primary": old,
        "new_primary": new,
        "events": [e.as_dict(fault_at, first_ok_at) for e in events],
        "detection_seconds": None if None in (fault_at, detected_at)
        else detected_at - fault_at,
        "promotion_seconds": None if None in (promoted, detected_at)
        else promoted - detected_at,
        "read_only_seconds": None if None in (promoted, writable) else writable - promoted,
        "held_seconds": None if None in (ready, routed_from) else routed_from - ready,
        "routing_seconds": None if None in (routed_from, routed_to)
        else routed_to - routed_from,
        "first_commit_seconds": None if None in (connected, first_ok_at)
        else first_ok_at - connected,
        "replication_at_fault": [] if fault_at is None
        else replication_at_fault(nodes, replication, fault_at),
        "two_primaries": two_primaries(nodes),
        "service_available_seconds": None if fault_at is None
        else service_available(samples, fault_at),
        "read_outage_seconds": {} if fault_at is None else read_outages(samples, fault_at),
    }
