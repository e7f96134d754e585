"""The CDC check (verify/cdc.py) on synthetic ledgers: missed, phantom, duplicate and
failed-but-received changes, each against what reconciliation found."""

import pytest

from ptor_harness.ops import DELETE, FAILED, INDETERMINATE, INSERT, UPDATE, CdcChange
from ptor_harness.verify.cdc import CdcCheck, outage

from .synthetic import op


def change(key, kind, version, at=1.0, lsn=100):
    return CdcChange(0, key, kind, version, lsn, at, 1)


def ops():
    return [op(1, INSERT, 1, 1.0, rows=1), op(4, UPDATE, 1, 4.0, rows=1, prev=1),
            op(6, DELETE, 1, 6.0, rows=1, prev=4),
            op(2, INSERT, 2, 2.0, rows=1), op(5, UPDATE, 2, 5.0, rows=0),  # matched no row
            op(3, INSERT, 3, 3.0, FAILED), op(7, INSERT, 4, 7.0, INDETERMINATE),
            op(8, INSERT, 5, 8.0, rows=1)]


def test_every_change_received_once_is_clean():
    check = CdcCheck(lost=[], not_applied=[])
    check.add_worker(0, ops(), [change(1, INSERT, 1), change(1, UPDATE, 4),
                                change(1, DELETE, 4), change(2, INSERT, 2),
                                change(5, INSERT, 8)])
    t = check.finish()
    assert (t.expected, t.received, t.received_ops) == (5, 5, 5)
    assert (t.missed, t.phantom, t.duplicates, t.unmatched) == (0, 0, 0, 0)


def test_missed_phantom_and_duplicate_changes():
    # seq 8 was lost in the failover (the consumer got it first: a phantom); seq 4 arrived
    # twice; the delete of key 1 and the insert of key 2 never arrived
    check = CdcCheck(lost=[(0, 8, 5, "A")], not_applied=[(0, 7)])
    check.add_worker(0, ops(), [change(1, INSERT, 1), change(1, UPDATE, 4, at=2.0),
                                change(1, UPDATE, 4, at=3.0), change(5, INSERT, 8),
                                change(4, INSERT, 7), change(3, INSERT, 3),
                                change(9, INSERT, 99)])
    t = check.finish()
    assert t.expected == 4  # seq 1, 2, 4, 6: seq 5 changed nothing, seq 8 is lost
    assert t.missed == 2 and {e["seq"] for e in t.missed_examples} == {2, 6}
    assert t.phantom == 2 and {e["seq"] for e in t.phantom_examples} == {7, 8}
    assert t.duplicates == 1 and t.duplicate_examples[0]["times"] == 2
    assert t.received_failed == 1 and t.unmatched == 1
    assert (t.first_received_at, t.last_received_at) == (1.0, 3.0)


def test_a_delete_is_the_first_delete_after_the_version_it_removed():
    history = [op(1, INSERT, 1, 1.0, rows=1), op(2, DELETE, 1, 2.0, rows=1, prev=1),
               op(3, INSERT, 1, 3.0, rows=1), op(4, DELETE, 1, 4.0, INDETERMINATE)]
    check = CdcCheck(lost=[], not_applied=[])
    check.add_worker(0, history, [change(1, DELETE, 3)])
    t = check.finish()
    assert t.received_ops == 1 and t.unmatched == 0
    assert t.missed == 3  # seq 1, 2, 3 never arrived; seq 4 (in doubt) did


def test_the_consumers_outage_spans_the_fault():
    assert outage([1.0, 2.0, 5.0, 6.0], 3.0) == {
        "last_before_fault": 2.0, "first_after_fault": 5.0, "session_lost_at": None,
        "last_before": 2.0, "first_after": 5.0, "seconds": 3.0}
    assert outage([1.0], 3.0)["seconds"] is None and outage([1.0], None) is None


def test_the_consumers_outage_runs_from_the_session_the_fault_cut():
    """Changes the old primary had sent still arrive just after the fault; the session is
    lost at 3.02 and the consumer hears again at 8.6: its outage is 3.01 to 8.6."""
    times = [2.0, 2.999, 3.004, 3.01, 8.6, 8.7]
    connections = [{"connection": 1, "at": 0.5, "lost": {"at": 1.5, "error": "before"}},
                   {"connection": 2, "at": 1.6, "lost": {"at": 3.02, "error": "killed"}},
                   {"connection": 3, "at": 3.1, "error": "refused"},
                   {"connection": 4, "at": 8.5, "error": None}]
    o = outage(times, 3.0, connections)
    assert (o["last_before_fault"], o["first_after_fault"]) == (2.999, 3.004)
    assert (o["session_lost_at"], o["last_before"], o["first_after"]) == (3.02, 3.01, 8.6)
    assert o["seconds"] == pytest.approx(5.59)


def test_changes_received_per_second():
    from ptor_harness.verify.cdc import per_second

    assert per_second([10.2, 10.9, 12.0, 12.5, 12.7]) == [[10, 2], [12, 3]]
    assert per_second([]) == []
