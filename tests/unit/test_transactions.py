"""--ops-per-transaction in reconciliation and metrics, on synthetic ledgers: a lost
transaction counts once and its ops each; a transaction found partly applied is an
anomaly; only evidence of an op's effect counts toward that."""

from types import SimpleNamespace

import pytest

from ptor_harness.drill.schedule import Schedule
from ptor_harness.ops import DELETE, FAILED, INDETERMINATE, INSERT, UPDATE
from ptor_harness.verify import checks
from ptor_harness.verify.metrics import RunMetrics
from ptor_harness.verify.transactions import Transactions, transaction_totals

from . import synthetic
from .synthetic import intent, op


def reconcile(ops, rows, n=2, servers=None):
    return synthetic.reconcile(ops, rows, servers, ops_per_transaction=n)


def test_a_lost_transaction_counts_once_and_its_ops_each():
    # transactions {1, 2} kept, {3, 4} lost (both inserts gone), {5, 6} lost (an update of
    # a kept key and an insert)
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 1.0), op(3, INSERT, 3, 2.0),
           op(4, INSERT, 4, 2.0), op(5, UPDATE, 1, 3.0, rows=1, prev=1), op(6, INSERT, 5, 3.0)]
    f = reconcile(ops, [(1, 1), (2, 2)])
    assert f.lost_total == 4 and f.lost_transactions == 2
    assert f.partial_transactions == 0 and f.holes == 0


def test_each_op_its_own_transaction_by_default():
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0), op(3, INSERT, 3, 3.0)]
    f = reconcile(ops, [(1, 1)], n=1)
    assert f.lost_total == 2 and f.lost_transactions == 2 and f.partial_transactions == 0


def test_an_acknowledged_transaction_found_partly_applied_is_an_anomaly():
    # one transaction {1, 2}: the primary holds key 1 but not key 2
    f = reconcile([op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 1.0)], [(1, 1)])
    assert f.lost_total == 1 and f.lost_transactions == 1
    assert f.partial_transactions == 1
    assert f.partial_transaction_examples == [
        {"worker": 0, "first_seq": 1, "last_seq": 2, "acknowledged": True}]
    figures = SimpleNamespace(anomalies={"partial_transactions": 1}, wrong_payloads=0, lost=1)
    check = checks.anomalies(figures, None)
    assert check.status == checks.FAIL and "1 partial transactions" in check.detail


def test_an_in_doubt_transaction_found_partly_applied_is_an_anomaly():
    ops = [op(1, INSERT, 1, 1.0, INDETERMINATE), op(2, INSERT, 2, 1.0, INDETERMINATE)]
    f = reconcile(ops, [(1, 1)])
    assert (f.applied, f.not_applied, f.partial_transactions) == (1, 1, 1)
    assert f.partial_transaction_examples[0]["acknowledged"] is False
    both = reconcile(ops, [(1, 1), (2, 2)])
    neither = reconcile(ops, [])
    assert both.partial_transactions == neither.partial_transactions == 0


def test_an_in_doubt_update_of_a_missing_row_is_no_evidence_of_a_partial_transaction():
    # transaction {1, 2} was lost in a failover from server A to B, {3, 4} kept; the
    # in-doubt transaction {5, 6} updated key 1 (matching nothing) and inserted key 2,
    # which applied
    after = {"session": 2}
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 8, 1.0), op(3, INSERT, 9, 2.0, **after),
           op(4, INSERT, 10, 2.0, **after), op(5, UPDATE, 1, 5.0, INDETERMINATE, **after),
           op(6, INSERT, 2, 5.0, INDETERMINATE, **after)]
    rows = [(2, 6), (9, 3), (10, 4)]
    servers = {1: "A", 2: "B"}
    f = reconcile(ops, rows, servers=servers)
    assert f.lost_total == 2 and f.lost_transactions == 1 and f.applied == 1
    assert f.partial_transactions == 0 and f.holes == 0
    # an in-doubt delete of such a row says nothing either
    ops[4] = op(5, DELETE, 1, 5.0, INDETERMINATE, **after)
    assert reconcile(ops, rows, servers=servers).partial_transactions == 0
    # nor when the insert of key 2 did not apply: key 1's insert is unverifiable (assumed
    # kept, so its delete is counted applied), which is no evidence against the insert
    f = reconcile(ops, rows[1:], servers=servers)
    assert f.unverifiable == 1 and f.applied == 1 and f.not_applied == 1
    assert f.partial_transactions == 0
    # but an in-doubt insert that is not there, beside one that is, is partial
    ops[4] = op(5, INSERT, 3, 5.0, INDETERMINATE, **after)
    assert reconcile(ops, rows, servers=servers).partial_transactions == 1


def test_transactions_share_their_outcome_in_the_metrics():
    m = RunMetrics(ops_per_transaction=3)
    ops = [op(s, INSERT, s, 1.0 + s) for s in (1, 2, 3)] + \
          [op(s, INSERT, s, 5.0, FAILED) for s in (4, 5, 6)] + \
          [op(7, INSERT, 7, 6.0), intent(8, INSERT, 8)]  # a killed harness: half recorded
    stats = m.add_worker(0, ops)
    assert stats.transactions == {"ok": 1, "failed": 1, "indeterminate": 1}
    assert transaction_totals([stats, stats]) == {"ok": 2, "failed": 2, "indeterminate": 2}
    # one op per transaction: the op counts themselves
    single = RunMetrics().add_worker(0, ops)
    assert single.transactions == {"ok": 4, "failed": 3, "indeterminate": 1}


def test_the_last_transaction_may_be_short():
    counter = Transactions(4)
    for seq in range(1, 7):  # --ops-per-worker 6: {1..4}, {5, 6}
        counter.add(seq, "ok")
    assert counter.end() == {"ok": 2, "failed": 0, "indeterminate": 0}


def test_a_rate_with_transactions_schedules_transactions():
    plan = Schedule(400.0, seed=3, ops_per_arrival=4)  # 100 transactions a second
    plan.start(0.0)
    plan.skip_missed(10.0)
    assert plan.skipped % 4 == 0 and plan.skipped == pytest.approx(4000, rel=0.1)
    plan.done(10.0, 10.01, True, ops=4)
    assert plan.sent == 4
