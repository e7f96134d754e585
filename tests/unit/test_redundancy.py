"""The drill before the fault (verify/redundancy.py): the primary losing a standby, from
its own samples of pg_stat_replication."""

from ptor_harness.ops import NodeSample, ReplicationRow
from ptor_harness.verify.redundancy import (
    BACK,
    CAUGHT_UP,
    DROPPED,
    LAGGING,
    STOPPED,
    before_fault,
)


def primary(at, wal=1000):
    return NodeSample("node1", at, 0.001, True, False, 1, "42", wal, None, None, None, True,
                      None)


def standby_row(at, sync="sync", state="streaming", name="node2", flushed=1000,
                replayed=1000):
    return ReplicationRow("node1", at, name, state, sync, flushed, flushed, flushed, replayed,
                          0.0, 0.0, 0.0)


def test_a_synchronous_standby_dropping_then_going_before_the_fault():
    samples = {"node1": [primary(t) for t in (1.0, 2.0, 3.0, 4.0, 5.0, 7.0)]}
    rows = [standby_row(1.0), standby_row(2.0), standby_row(3.0, "async")]
    events, alone = before_fault(samples, rows, fault_at=6.0)
    assert [(e.name, e.at, e.after) for e in events] == [(DROPPED, 3.0, 2.0),
                                                         (STOPPED, 4.0, 3.0)]
    assert events[0].detail == "node2: sync -> async"
    assert events[1].detail == "node2 (async) no longer streaming"
    assert alone == 4.0  # nothing streaming from then to the fault


def test_a_standby_that_comes_back_before_the_fault():
    samples = {"node1": [primary(t) for t in (1.0, 2.0, 3.0)]}
    rows = [standby_row(1.0), standby_row(3.0, state="streaming")]
    events, alone = before_fault(samples, rows, fault_at=4.0)
    assert [(e.name, e.at) for e in events] == [(STOPPED, 2.0), (BACK, 3.0)]
    assert alone is None


def test_a_standby_catching_up_is_not_streaming():
    samples = {"node1": [primary(t) for t in (1.0, 2.0)]}
    rows = [standby_row(1.0), standby_row(2.0, state="catchup")]
    events, alone = before_fault(samples, rows, fault_at=3.0)
    assert [e.name for e in events] == [STOPPED] and alone == 2.0


def test_a_standby_the_fault_stopped_before_writes_failed():
    """A fault that is a command: it stops the standby at once and fails the primary over
    3 s later. Up to the first client error (`until`) the old primary's samples go on:
    the standby it lost then is an event, and none was streaming when writes failed. A
    node promoted meanwhile (node3, here with a standby of its own) is not that primary,
    and past `until` nothing counts."""
    samples = {"node1": [primary(t) for t in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)],
               "node3": [NodeSample("node3", t, 0.001, True, False, 2, "42", 5000, None, None,
                                    None, True, None) for t in (3.5, 4.5)]}
    rows = [standby_row(1.0), standby_row(2.0),
            ReplicationRow("node3", 3.5, "node4", "streaming", "async", 1, 1, 1, 1, 0.0, 0.0,
                           0.0)]
    assert before_fault(samples, rows, fault_at=2.5) == ([], None)  # at the fault: streaming
    events, alone = before_fault(samples, rows, fault_at=2.5, until=5.5)
    assert [(e.name, e.at, e.after) for e in events] == [(STOPPED, 3.0, 2.0)]
    assert events[0].detail == "node2 (sync) no longer streaming"
    assert alone == 3.0
    # a first client error before the fault's start changes nothing
    assert before_fault(samples, rows, fault_at=2.5, until=2.0) == ([], None)


def test_nothing_seen_says_nothing():
    assert before_fault({}, [], fault_at=3.0) == ([], None)


def test_a_standby_lagging_past_the_threshold_and_back():
    """Replay 5,000 bytes behind against a threshold of 4,000: an event each way, each at
    the sample that saw it, `after` the one before; without a threshold, none."""
    walk = [(1.0, 10_000, 9_000), (2.0, 20_000, 15_000), (3.0, 30_000, 25_000),
            (4.0, 40_000, 39_000), (5.0, 50_000, 49_000)]
    samples = {"node1": [primary(at, wal) for at, wal, _ in walk]}
    rows = [standby_row(at, "async", flushed=wal, replayed=replayed)
            for at, wal, replayed in walk]
    events, _ = before_fault(samples, rows, fault_at=6.0, lag_threshold=4_000)
    assert [(e.name, e.at, e.after) for e in events] == [(LAGGING, 2.0, 1.0),
                                                         (CAUGHT_UP, 4.0, 3.0)]
    assert events[0].detail == \
        "node2: 5,000 bytes behind in replay, 0 in flush (threshold 4,000)"
    assert before_fault(samples, rows, fault_at=6.0, lag_threshold=0)[0] == []
    # no WAL position (the observer's role lacks pg_monitor): no lag, no event
    blind = {"node1": [primary(at, None) for at, _, _ in walk]}
    assert before_fault(blind, rows, fault_at=6.0, lag_threshold=4_000)[0] == []


def test_commits_stalling_before_the_fault_are_events_and_after_it_are_not():
    from ptor_harness.verify.metrics import brownout
    from ptor_harness.verify.redundancy import STALLED, stalls_before

    # 100 ok ops a second in the warmup (10-12), none at 14-15, none again from 18 on;
    # the fault at 19.0
    timeline = [{"t": t, "ok": 0 if t in (14, 15) or t >= 18 else 100} for t in range(10, 22)]
    slow = brownout(timeline, 10.0, 12.5, 21.0, 0.5)
    events = stalls_before(slow, fault_at=19.0)
    assert [(e.name, e.at, e.source) for e in events] == [(STALLED, 14.0, "ledger"),
                                                          (STALLED, 18.0, "ledger")]
    assert events[0].detail == "under 0.5 of the baseline's 100 acknowledged ops a second " \
        "for 2 s"
    assert events[1].detail.endswith(", until the fault")
    assert stalls_before(slow, fault_at=14.0) == []
    # a slow second the fault falls in is the fault's own outage, as far as whole seconds
    # can tell: a stall 0.5 s "before" the fault is not said
    assert [e.at for e in stalls_before(slow, fault_at=18.5)] == [14.0]
    assert [e.at for e in stalls_before(slow, fault_at=14.99)] == []
