"""Reconciliation on synthetic ledgers and synthetic primary rows."""

import pytest

from ptor_harness.ops import DELETE, FAILED, INDETERMINATE, INSERT, UPDATE
from ptor_harness.verify.findings import rpo_window
from ptor_harness.verify.reconcile import Reconciler

from .synthetic import intent, op, reconcile


def test_everything_kept():
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 1.1), op(3, UPDATE, 1, 1.2),
           op(4, DELETE, 2, 1.3)]
    f = reconcile(ops, [(1, 3)])
    assert f.lost_total == 0 and f.mismatched_rows == 0 and f.phantom_rows == 0
    assert f.keys_checked == 2 and f.rows_checked == 1


def test_lost_insert():
    f = reconcile([op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0)], [(1, 1)])
    assert f.lost == {"insert": 1, "update": 0, "delete": 0}
    assert f.lost_examples[0]["key"] == 2 and f.first_lost_ack == 2.0 == f.last_lost_ack
    assert f.lost_by_evidence == {"final_state": 1, "version_chain": 0, "worker_order": 0,
                                  "commit_order": 0}
    assert f.mismatched_rows == 1


def test_lost_update():
    f = reconcile([op(1, INSERT, 1, 1.0), op(5, UPDATE, 1, 5.0)], [(1, 1)])
    assert f.lost == {"insert": 0, "update": 1, "delete": 0}


def test_lost_delete_is_a_row_that_still_exists():
    f = reconcile([op(1, INSERT, 1, 1.0), op(2, DELETE, 1, 2.0)], [(1, 1)])
    assert f.lost == {"insert": 0, "update": 0, "delete": 1}


def test_lost_insert_and_its_update_when_the_row_is_gone():
    f = reconcile([op(1, INSERT, 1, 1.0), op(2, UPDATE, 1, 2.0)], [])
    assert f.lost == {"insert": 1, "update": 1, "delete": 0}
    assert f.mismatched_rows == 1  # one key, two lost ops


@pytest.mark.parametrize("ops, rows, applied, not_applied", [
    ([op(1, INSERT, 1, 1.0, INDETERMINATE)], [(1, 1)], 1, 0),
    ([op(1, INSERT, 1, 1.0, INDETERMINATE)], [], 0, 1),
    ([op(1, INSERT, 1, 1.0), op(2, UPDATE, 1, 2.0, INDETERMINATE)], [(1, 2)], 1, 0),
    ([op(1, INSERT, 1, 1.0), op(2, UPDATE, 1, 2.0, INDETERMINATE)], [(1, 1)], 0, 1),
    ([op(1, INSERT, 1, 1.0), op(2, DELETE, 1, 2.0, INDETERMINATE)], [], 1, 0),
    ([op(1, INSERT, 1, 1.0), op(2, DELETE, 1, 2.0, INDETERMINATE)], [(1, 1)], 0, 1),
    # the harness died between send and acknowledgement: intent only
    ([op(1, INSERT, 1, 1.0), intent(2, UPDATE, 1)], [(1, 2)], 1, 0),
    ([intent(1, INSERT, 1)], [], 0, 1),
])
def test_in_doubt_ops_resolve_and_are_never_loss(ops, rows, applied, not_applied):
    f = reconcile(ops, rows)
    assert (f.applied, f.not_applied) == (applied, not_applied)
    assert f.lost_total == 0 and f.mismatched_rows == 0 and f.superseded == 0


def test_failed_ops_are_ignored_unless_found_applied():
    ok = reconcile([op(1, INSERT, 1, 1.0), op(2, UPDATE, 1, 2.0, FAILED)], [(1, 1)])
    assert ok.lost_total == 0 and ok.failed_but_applied == 0
    bad = reconcile([op(1, INSERT, 1, 1.0), op(2, UPDATE, 1, 2.0, FAILED)], [(1, 2)])
    assert bad.failed_but_applied == 1 and bad.mismatched_rows == 1


def test_phantom_rows():
    f = reconcile([op(1, INSERT, 1, 1.0)], [(1, 1), (7, 99), (0, 5)])
    assert f.phantom_rows == 2 and f.rows_checked == 3
    assert {e["key"] for e in f.phantom_examples} == {7, 0}
    g = reconcile([op(1, INSERT, 1, 1.0)], [(1, 42)])  # a version no op wrote
    assert g.phantom_rows == 1


def test_a_wrong_payload_counts_only_where_the_server_found_one():
    ops = [op(1, INSERT, 1, 1.0)]
    assert reconcile(ops, [(1, 1, True)]).checksum_mismatches == 0
    f = reconcile(ops, [(1, 1, False)])
    assert f.checksum_mismatches == 1 and f.mismatched_rows == 1
    assert f.checksum_examples == [{"worker": 0, "key": 1, "last_seq": 1}]
    assert reconcile(ops, [(1, 1)]).checksum_mismatches == 0  # the quick check


def test_lost_suffix_before_failover_is_not_a_hole():
    # ops 1-3 on server A, 2-3 lost; op 4 on the new primary B survives
    ops = [op(1, INSERT, 1, 1.0, session=1), op(2, INSERT, 2, 2.0, session=1),
           op(3, INSERT, 3, 3.0, session=1), op(4, INSERT, 4, 9.0, session=2)]
    f = reconcile(ops, [(1, 1), (4, 4)], servers={1: "A", 2: "B"})
    assert f.lost_total == 2 and f.holes == 0


def test_lost_op_below_a_survivor_on_the_same_server_is_a_hole():
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0), op(3, INSERT, 3, 3.0)]
    f = reconcile(ops, [(1, 1), (3, 3)])
    assert f.lost_total == 1 and f.holes == 1
    assert f.hole_examples[0] == {"worker": 0, "key": 2, "seq": 2, "surviving_seq": 3}


def test_rpo_window_spans_the_lost_acknowledgements_and_their_distance_to_the_fault():
    nothing = rpo_window(None, None, 10.0)
    assert nothing == {"window_seconds": 0.0, "first_lost_before_fault_seconds": None,
                       "last_lost_before_fault_seconds": None}
    assert rpo_window(7.5, 9.0, 10.0) == {"window_seconds": 1.5,
                                          "first_lost_before_fault_seconds": 2.5,
                                          "last_lost_before_fault_seconds": 1.0}
    # acknowledged after the fault (an old primary still answering): negative distance,
    # and never a window of 0 while several acks over time were lost
    late = rpo_window(9.0, 11.5, 10.0)
    assert late["window_seconds"] == 2.5 and late["last_lost_before_fault_seconds"] == -1.5
    assert rpo_window(7.5, 9.0, None)["first_lost_before_fault_seconds"] is None


def test_the_rpo_window_comes_from_every_lost_op_not_only_the_final_state():
    # key 1: update 2 lost, overwritten after the failover (version chain); key 2: insert 4
    # lost (final state)
    ops = [op(1, INSERT, 1, 1.0), op(2, UPDATE, 1, 2.0, prev=1), op(3, INSERT, 2, 2.5),
           op(4, INSERT, 3, 3.0), op(5, UPDATE, 1, 9.0, session=2, prev=1)]
    f = reconcile(ops, [(1, 5), (2, 3)], servers={1: "A", 2: "B"}, final="B")
    assert (f.first_lost_ack, f.last_lost_ack) == (2.0, 3.0)


def test_a_lost_delete_is_a_resurrected_row_with_its_example():
    f = reconcile([op(1, INSERT, 1, 1.0), op(2, DELETE, 1, 2.0)], [(1, 1)])
    assert f.resurrected_rows == 1
    assert f.resurrected_examples == [{"worker": 0, "key": 1, "deleted_by_seq": 2,
                                       "row_last_seq": 1}]


def test_split_brain_writes_are_acks_after_a_newer_primary_served():
    from ptor_harness.servers import newer_primary_since
    from ptor_harness.verify.validation import stale_lookup

    from .synthetic import identity

    # worker 0 stays on the old primary (timeline 1, session 1); worker 1 reaches the
    # promoted one (timeline 2) at t=5.0
    identities = [identity(0, 1, 6001, timeline=1, at=0.0),
                  identity(1, 1, 6001, timeline=1, at=0.0),
                  identity(1, 2, 6002, timeline=2, at=5.0)]
    assert newer_primary_since(identities) == {("42", 1): 5.0}
    stale = stale_lookup(identities)
    r = Reconciler(lambda w, s: "A", stale)
    ops = [op(1, INSERT, 1, 4.0), op(2, INSERT, 2, 6.0), op(3, UPDATE, 1, 7.0),
           op(4, INSERT, 3, 8.0, outcome=INDETERMINATE)]
    r.add_worker(0, sorted(ops, key=lambda o: (o.key, o.seq)), [(1, 3), (2, 2)])
    f = r.finish()
    assert f.split_brain_writes == 2  # seq 2 and 3: acknowledged after t=5.0 on timeline 1
    assert {e["seq"] for e in f.split_brain_examples} == {2, 3}
    assert f.split_brain_examples[0]["newer_primary_since"] == 5.0
    assert stale(1, 2, 9.0) is None  # the newest primary's acks are fine


def test_a_restart_in_place_is_no_split_brain():
    from ptor_harness.verify.validation import stale_lookup

    from .synthetic import identity

    # the same server comes back on timeline 2 after every ack on timeline 1
    stale = stale_lookup([identity(0, 1, 6001, timeline=1, at=0.0),
                          identity(0, 2, 6001, timeline=2, at=10.0)])
    assert stale(0, 1, 9.9) is None and stale(0, 1, 10.5) == 10.0


def test_an_insert_and_delete_lost_together_are_found_by_the_worker_order():
    """Insert and delete of key 2 both came after the last op the new primary kept: the row
    is absent, which tells nothing by itself. But op 3 (key 3's insert, before the delete
    on the same server) is lost, and a server keeps a prefix of each worker's ops: so the
    delete, and the chain under it, are lost too. None of it is a hole."""
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0), op(3, INSERT, 3, 3.0),
           op(4, DELETE, 2, 4.0, prev=2)]
    f = reconcile(ops, [(1, 1)])
    assert f.holes == 0
    assert f.lost == {"insert": 2, "update": 0, "delete": 1}
    assert f.lost_by_evidence == {"final_state": 1, "version_chain": 0, "worker_order": 2,
                                  "commit_order": 0}
    assert f.unverifiable == 0


def test_a_deleted_key_at_the_cut_is_unverifiable_and_assumed_kept():
    """Key 2 was inserted and deleted just before the cut (kept), key 3's insert after it
    (lost). Nothing shows whether key 2's history was kept (no row either way, no kept op
    after it, no lost op before it): two unverifiable ops, never reported lost."""
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0), op(3, DELETE, 2, 3.0, prev=2),
           op(4, INSERT, 3, 4.0)]
    f = reconcile(ops, [(1, 1)])
    assert f.lost == {"insert": 1, "update": 0, "delete": 0}
    assert f.unverifiable == 2 and {e["seq"] for e in f.unverifiable_examples} == {2, 3}
    # a kept op after it on the same server settles it: kept
    g = reconcile(ops + [op(5, INSERT, 4, 5.0)], [(1, 1), (4, 5)])
    assert g.unverifiable == 0 and g.lost_total == 1 and g.holes == 1  # op 4: a real hole


def test_what_the_checked_server_acknowledged_itself_is_kept():
    # key 2 inserted and deleted on B, the primary being checked: kept, not unverifiable
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 5.0, session=2),
           op(3, DELETE, 2, 6.0, session=2, prev=2), op(4, INSERT, 3, 2.0)]
    f = reconcile(sorted(ops, key=lambda o: o.seq), [(1, 1)],
                  servers={1: "A", 2: "B"}, final="B")
    assert f.unverifiable == 0 and f.lost == {"insert": 1, "update": 0, "delete": 0}


def test_a_lost_update_overwritten_after_the_failover_is_found_by_the_version_chain():
    """The issue's case: worker 3, key 2207, update 5774 acknowledged and lost in the
    failover; update 6681 on the new primary overwrote the row, and returned the version it
    replaced (the insert), which shows the lost update."""
    ops = [op(1000, INSERT, 2207, 1.0), op(5774, UPDATE, 2207, 15.925, prev=1000),
           op(6681, UPDATE, 2207, 18.393, session=2, prev=1000)]
    f = reconcile(ops, [(2207, 6681)], servers={1: "A", 2: "B"}, final="B")
    assert f.lost == {"insert": 0, "update": 1, "delete": 0}
    assert f.lost_by_evidence["version_chain"] == 1 and f.holes == 0
    assert f.lost_examples[0]["seq"] == 5774 and f.lost_examples[0]["found_by"] == \
        "version_chain"


def test_several_lost_writes_of_one_key_each_count():
    ops = [op(1, INSERT, 1, 1.0), op(2, UPDATE, 1, 2.0, prev=1), op(3, UPDATE, 1, 3.0, prev=2),
           op(4, UPDATE, 1, 4.0, prev=3), op(5, UPDATE, 1, 9.0, session=2, prev=2)]
    f = reconcile(ops, [(1, 5)], servers={1: "A", 2: "B"}, final="B")
    assert f.lost == {"insert": 0, "update": 2, "delete": 0}  # 3 and 4; 2 was kept
    assert f.mismatched_rows == 1


def test_a_delete_whose_chain_shows_a_lost_update():
    # the update was lost; the delete on the new primary replaced the insert's version
    ops = [op(1, INSERT, 1, 1.0), op(2, UPDATE, 1, 2.0, prev=1),
           op(3, DELETE, 1, 9.0, session=2, prev=1)]
    f = reconcile(ops, [], servers={1: "A", 2: "B"}, final="B")
    assert f.lost == {"insert": 0, "update": 1, "delete": 0}
    assert f.lost_by_evidence["version_chain"] == 1 and f.unverifiable == 0


def test_a_version_no_op_wrote_is_a_phantom():
    ops = [op(1, INSERT, 1, 1.0), op(3, UPDATE, 1, 3.0, prev=2)]
    f = reconcile(ops, [(1, 3)])
    assert f.phantom_rows == 1 and f.phantom_examples[0]["seen_by_seq"] == 3


def test_an_in_doubt_delete_of_a_key_whose_history_was_lost_did_not_apply():
    # the insert of key 2 is lost (worker order: after the lost insert 2 of key 3 ... ),
    # so the in-doubt delete cannot have removed anything: not applied
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 3, 2.0), op(3, INSERT, 2, 3.0),
           op(4, DELETE, 2, 4.0, outcome="indeterminate")]
    f = reconcile(ops, [(1, 1)])
    assert (f.applied, f.not_applied) == (0, 1)
    assert f.lost == {"insert": 2, "update": 0, "delete": 0}


def test_an_update_that_matched_no_row_is_no_loss_and_no_hole():
    """Seen on a real async failover: key 2's insert (session 1, old server A) was lost;
    after the failover its updates ran on the new server B, found no row (rowcount 0) and
    were acknowledged. Only the insert is lost; nothing below B's surviving op is a hole."""
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0),
           op(3, UPDATE, 2, 3.0, session=2, rows=0), op(4, DELETE, 2, 3.5, session=2, rows=0),
           op(5, INSERT, 3, 4.0, session=2, rows=1)]
    f = reconcile(ops, [(1, 1), (3, 5)], servers={1: "A", 2: "B"})
    assert f.lost == {"insert": 1, "update": 0, "delete": 0}
    assert f.noop_writes == 2 and f.holes == 0 and f.resurrected_rows == 0


def test_rows_of_ops_a_killed_worker_never_reported_are_in_doubt_not_phantoms():
    """Async repo mode: a worker's outcomes reach the ledger in order, so a row written by
    an op past the last one the ledger holds was written by an op whose record a killed
    worker never handed over: in doubt and applied, never a phantom or a loss."""
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0)]
    r = Reconciler(lambda w, s: "A", final_server="A")
    r.add_worker(0, ops, [(1, 1), (2, 7), (3, 8)], recorded_up_to=2)
    f = r.finish()
    assert f.unrecorded_applied == 2 and f.phantom_rows == 0 and f.lost_total == 0
    # without that knowledge (sync repo mode: every sent op has an intent) they are phantoms
    g = reconcile(ops, [(1, 1), (2, 7), (3, 8)])
    assert g.phantom_rows == 2 and g.unrecorded_applied == 0


def test_a_check_broken_off_starts_again_a_few_times_at_most():
    from ptor_harness.verify.validation import ValidationIncomplete, again_while_interrupted

    tries, interrupted = [], []

    def broken_off():
        tries.append(1)
        raise ValidationIncomplete(f"reading failed, try {len(tries)} (password=x)",
                                   interrupted=True)

    with pytest.raises(ValidationIncomplete, match="try 3"):
        again_while_interrupted(broken_off, 3, interrupted, lambda t: t.replace("x", "***"))
    assert len(tries) == 3
    assert interrupted == ["reading failed, try 1 (password=***)",
                           "reading failed, try 2 (password=***)"]

    tries.clear()
    interrupted.clear()

    def second_time_lucky():
        tries.append(1)
        if len(tries) == 1:
            raise ValidationIncomplete("broken off", interrupted=True)
        return "findings"

    assert again_while_interrupted(second_time_lucky, 3, interrupted, str) == "findings"
    assert interrupted == ["broken off"]
