"""--rate: each op's due time (Poisson arrivals), the no-burst rule after an outage, and
the load figures the report builds from the workers' schedules."""

import pytest

from ptor_harness.drill.messages import WorkerSchedule
from ptor_harness.drill.schedule import Schedule
from ptor_harness.verify.rate import load_figures, load_warnings


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_arrivals_average_the_rate_and_ops_wait_for_their_turn():
    clock = Clock()
    plan = Schedule(200.0, seed=7)
    plan.start(clock.now)
    for _ in range(20000):
        assert plan.wait_turn(lambda: False, clock, clock.sleep)
        assert clock.now >= plan.due
        plan.done(clock.now, clock.now + 0.001, True)
    assert 20000 / (clock.now - 1000.0) == pytest.approx(200.0, rel=0.03)
    assert plan.sent == 20000 and plan.skipped == 0
    assert plan.lag.max < 0.011  # on time, up to one poll late at most


def test_ops_due_during_an_outage_are_skipped_not_sent_as_a_burst():
    plan = Schedule(100.0, seed=1)
    plan.start(0.0)
    plan.skip_missed(5.0)  # five seconds without a server
    assert plan.skipped == pytest.approx(500, rel=0.15) and plan.due >= 5.0
    assert plan.sent == 0


def test_a_stop_while_waiting_ends_the_wait():
    clock = Clock()
    plan = Schedule(0.001, seed=3)  # the next op is due in about 1,000 s
    plan.start(clock.now)
    assert not plan.wait_turn(lambda: clock.now > 1002.0, clock, clock.sleep)


def test_late_ops_count_their_lag_and_latency_from_when_due():
    plan = Schedule(10.0, seed=2)
    plan.start(0.0)
    due = plan.due
    plan.done(due + 0.5, due + 0.6, True)
    assert plan.lag.max == pytest.approx(0.5, rel=0.05)
    assert plan.from_due.max == pytest.approx(0.6, rel=0.05)


def test_load_figures_say_when_the_target_was_not_reached():
    def report(worker, lag, skipped):
        plan = Schedule(500.0, seed=worker)
        plan.start(0.0)
        plan.done(plan.due + lag, plan.due + lag + 0.002, True)
        plan.skipped = skipped
        return WorkerSchedule(worker, plan.sent, plan.skipped, plan.lag.packed(),
                              plan.from_due.packed())

    on_target = load_figures(1000.0, 2, [report(0, 0.0, 0), report(1, 0.0, 0)], 9900,
                             100.0, 110.0)
    assert on_target["achieved_rate"] == 990.0 and on_target["target_reached"]
    assert load_warnings(on_target) == []
    behind = load_figures(1000.0, 2, [report(0, 0.25, 40), report(1, 0.3, 0)], 6000,
                          100.0, 110.0)
    assert behind["skipped_ops"] == 40 and not behind["target_reached"]
    assert behind["schedule_lag_seconds"]["max"] == pytest.approx(0.3, rel=0.05)
    (warning,) = load_warnings(behind)
    assert "600 ops/s of the 1,000 targeted (60%)" in warning
    assert "40 ops fell due while no server took writes" in warning
    no_target = load_figures(0.0, 2, [], 5000, 100.0, 110.0)
    assert no_target["target_rate"] is None and no_target["achieved_rate"] == 500.0
    assert no_target["skipped_ops"] is None and load_warnings(no_target) == []
    one_died = load_figures(1000.0, 2, [report(0, 0.0, 0)], 9900, 100.0, 110.0)
    assert load_warnings(one_died) == ["schedule figures from 1 of 2 workers (the others "
                                       "died)"]


def test_ops_due_in_an_outage_and_sent_late_after_it_are_kept_apart():
    """A new primary holds the first op after the outage for 0.4 s: the ops that fell
    due meanwhile go out late, and count in the lag over every op, not in the lag of the
    ops due while writes went through."""
    plan = Schedule(100.0, seed=4)
    plan.start(0.0)
    for _ in range(50):  # on time
        plan.done(plan.due, plan.due + 0.001, True)
    plan.done(plan.due, plan.due + 0.002, False)  # the primary is gone
    plan.skip_missed(plan.due + 3.0)  # three seconds without a server
    first_sent = plan.due
    plan.done(first_sent, first_sent + 0.4, True)  # held 0.4 s, then acknowledged
    held = 0
    while plan.due < first_sent + 0.4:  # due while it was held: sent once it came back
        plan.done(first_sent + 0.4, first_sent + 0.401, True)
        held += 1
    for _ in range(50):  # on time again
        plan.done(plan.due, plan.due + 0.001, True)
    assert held >= 10 and plan.lag.max > 0.3
    # the op that failed was due while writes went through; the one held was not
    assert plan.lag_writable.max < 0.001 and plan.lag_writable.n == 50 + 1 + 50
    assert plan.lag.n == 100 + 1 + 1 + held


def test_the_target_is_judged_outside_the_workers_own_outages():
    from ptor_harness.verify.metrics import Gap, WorkerStats

    def stats(worker, ok, gaps):
        return WorkerStats(worker, ok=ok, gaps=[Gap(worker, start, start + 0.01, end)
                                                for start, end in gaps])

    def report(worker, lag_writable):
        plan = Schedule(500.0, seed=worker)
        plan.start(0.0)
        plan.done(plan.due + 0.5, plan.due + 0.6, True)  # one late op, in the recovery
        plan.lag_writable = Schedule(1.0, seed=0).lag_writable
        plan.lag_writable.add(lag_writable)
        return WorkerSchedule(worker, plan.sent, plan.skipped, plan.lag.packed(),
                              plan.from_due.packed(), plan.lag_writable.packed())

    # 20 s of load at 1,000 ops/s, 5 s of it an outage for both workers (one never had
    # its gap end before the drain: 2 s of it fall inside the load)
    two = [stats(0, 7500, [(104.0, 109.0)]), stats(1, 9000, [(118.0, None)])]
    figures = load_figures(1000.0, 2, [report(0, 0.001), report(1, 0.002)], 16500,
                           100.0, 120.0, worker_stats=two)
    assert figures["achieved_rate"] == 825.0  # the whole load, outages included
    assert figures["achieved_rate_while_writable"] == pytest.approx(16500 / 16.5, abs=0.1)
    assert figures["target_reached"] and load_warnings(figures) == []
    assert figures["schedule_lag_seconds"]["max"] == pytest.approx(0.5, rel=0.05)
    assert figures["schedule_lag_while_writable_seconds"]["max"] == pytest.approx(0.002)
    slow = load_figures(1000.0, 2, [report(0, 0.2), report(1, 0.002)], 12000, 100.0,
                        120.0, worker_stats=[stats(0, 6000, []), stats(1, 6000, [])])
    assert slow["achieved_rate_while_writable"] == 600.0 and not slow["target_reached"]
    (warning,) = load_warnings(slow)
    assert warning.startswith("the load reached 600 ops/s of the 1,000 targeted (60%) "
                              "while writes went through (600 over the whole load")
    assert "late (p99): the harness or the cluster was too slow" in warning


def test_the_wal_rate_counts_each_primary_on_its_own_timeline_only():
    from ptor_harness.ops import NodeSample
    from ptor_harness.verify.rate import wal_rate

    def sample(node, at, lsn, timeline=1, in_recovery=False, reachable=True):
        return NodeSample(node, at, 0.001, reachable, in_recovery if reachable else None,
                          timeline, "7301", lsn if reachable else None, None, None, None,
                          True, None if reachable else "timeout")

    samples = [sample("n1", 10.0, 1_000), sample("n1", 11.0, 2_001_000),
               sample("n1", 12.0, 4_001_000), sample("n1", 12.5, None, reachable=False),
               sample("n2", 12.0, 3_000_000, in_recovery=True),
               sample("n2", 13.0, 3_500_000, timeline=2),  # promoted: its own count
               sample("n2", 14.0, 4_500_000, timeline=2)]
    # n1: 4,000,000 bytes in 2 s; n2: 1,000,000 in 1 s; the gap between them is no span
    assert wal_rate(samples, 10.0, 14.0) == round(5_000_000 / 3.0)
    assert wal_rate(samples, 10.0, 11.5) == 2_000_000
    assert wal_rate(samples, 20.0, 30.0) is None and wal_rate([], 0.0, 1.0) is None
    assert wal_rate(samples, None, 5.0) is None


def test_the_wal_timeline_spreads_each_step_over_the_seconds_it_spans():
    from ptor_harness.ops import NodeSample
    from ptor_harness.verify.rate import wal_timeline

    def sample(at, lsn, in_recovery=False):
        return NodeSample("n1", at, 0.001, True, in_recovery, 1, "7301", lsn, None, None,
                          None, True, None)

    # 1 MB/s from 10.5 to 12.5, then a standby's samples (not the primary's WAL)
    samples = [sample(10.5, 0), sample(11.5, 1_000_000), sample(12.5, 2_000_000),
               sample(13.5, 9_000_000, in_recovery=True)]
    assert wal_timeline(samples) == [[10, 1_000_000], [11, 1_000_000], [12, 1_000_000]]
    assert wal_timeline([]) == []


def test_a_low_rate_qualifies_the_write_rto_beside_the_probe():
    """--rate 5 over 4 workers (seen on pg_auto_failover): write RTO 8.787 s where the
    probe was without a write for 6.477 s; each worker wrote every 0.8 s."""
    from ptor_harness.verify.rate import rto_resolution_warnings

    rto = {"write_seconds": 8.787, "probe_seconds": 6.477}
    (said,) = rto_resolution_warnings(5.0, 4, 1, rto)
    assert said.startswith("at --rate 5 over 4 workers each worker writes about every "
                           "0.800 s")
    assert "(write RTO 8.787 s; the probe, which writes every 11 ms, was without a write " \
        "for 6.477 s)" in said
    assert "every 4.000 s" in rto_resolution_warnings(5.0, 4, 5, rto)[0]  # transactions
    assert rto_resolution_warnings(10_000.0, 10, 1, rto) == []  # every 1 ms: nothing to say
    assert rto_resolution_warnings(0.0, 4, 1, rto) == []  # as fast as it can
    assert rto_resolution_warnings(5.0, 4, 1, {"write_seconds": 0.0}) == []  # no outage
