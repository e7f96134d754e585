"""The drill before the fault (verify/redundancy.py): the primary losing a standby, from
its own samples of pg_stat_replication."""

from ptor_harness.ops import NodeSample, ReplicationRow
from ptor_harness.verify.redundancy import BACK, DROPPED, STOPPED, before_fault


def primary(at):
    return NodeSample("node1", at, 0.001, True, False, 1, "42", 1000, None, None, None, True,
                      None)


def standby_row(at, sync="sync", state="streaming", name="node2"):
    return ReplicationRow("node1", at, name, state, sync, 1000, 1000, 1000, 1000, 0.0, 0.0,
                          0.0)


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


def test_nothing_seen_says_nothing():
    assert before_fault({}, [], fault_at=3.0) == ([], None)
