"""RTO windows, detection, injection -> first ok, on synthetic ledgers."""

import pytest

from ptor_harness.ops import FAILED, INDETERMINATE, INSERT
from ptor_harness.verify.distribution import LatencyHistogram
from ptor_harness.verify.metrics import RunMetrics, fault_figures, rto_summary

from .synthetic import intent, op


def ops_of(worker, spec):
    """spec: list of (t_end, outcome); consecutive seqs, one key each."""
    return [op(i + 1, INSERT, i + 1, t, outcome, worker=worker) for i, (t, outcome) in
            enumerate(spec)]


def test_single_worker_gap_is_last_ok_to_first_ok():
    m = RunMetrics()
    m.add_worker(0, ops_of(0, [(1.0, "ok"), (2.0, "ok"), (2.5, INDETERMINATE),
                               (3.0, FAILED), (6.0, "ok"), (7.0, "ok")]))
    (window,) = m.windows()
    assert window.write_rto == pytest.approx(4.0)  # 2.0 -> 6.0
    assert window.first_bad == 2.5
    assert window.summary()["failed_ops"] == 1
    assert window.summary()["indeterminate_ops"] == 1


def test_cluster_rto_is_longest_worker_gap_with_min_median_max():
    m = RunMetrics()
    m.add_worker(0, ops_of(0, [(1.0, "ok"), (2.0, INDETERMINATE), (4.0, "ok")]))  # 3.0
    m.add_worker(1, ops_of(1, [(1.5, "ok"), (2.1, INDETERMINATE), (3.0, "ok")]))  # 1.5
    m.add_worker(2, ops_of(2, [(1.2, "ok"), (2.2, FAILED), (6.2, "ok")]))  # 5.0
    windows = m.windows()
    assert len(windows) == 1
    summary = rto_summary(windows)
    assert summary["write_seconds"] == pytest.approx(5.0)
    assert summary["worker_min"] == pytest.approx(1.5)
    assert summary["worker_median"] == pytest.approx(3.0)
    assert summary["worker_max"] == pytest.approx(5.0)


def test_two_separate_outages_make_two_windows():
    m = RunMetrics()
    m.add_worker(0, ops_of(0, [(1, "ok"), (2, FAILED), (3, "ok"), (10, "ok"), (11, FAILED),
                               (13, "ok")]))
    m.add_worker(1, ops_of(1, [(1, "ok"), (2.5, FAILED), (3.5, "ok"), (10.5, "ok"),
                               (12, INDETERMINATE), (12.5, "ok")]))
    windows = m.windows()
    assert [round(w.write_rto, 3) for w in windows] == [2.5, 3.0]
    assert rto_summary(windows)["write_seconds"] == pytest.approx(3.0)


def test_unrecovered_worker_means_no_rto():
    m = RunMetrics()
    m.add_worker(0, ops_of(0, [(1, "ok"), (2, INDETERMINATE)]))
    m.add_worker(1, ops_of(1, [(1, "ok"), (2, FAILED), (3, "ok")]))
    (window,) = m.windows()
    assert not window.recovered and window.write_rto is None
    summary = rto_summary([window])
    assert summary["recovered"] is False and summary["write_seconds"] is None


def test_no_outage_means_rto_zero():
    m = RunMetrics()
    m.add_worker(0, ops_of(0, [(1, "ok"), (2, "ok")]))
    assert m.windows() == []
    assert rto_summary([])["write_seconds"] == 0.0


def test_detection_and_injection_to_first_ok():
    m = RunMetrics()
    m.add_worker(0, ops_of(0, [(1, "ok"), (10.4, INDETERMINATE), (13.0, "ok")]))
    m.add_worker(1, ops_of(1, [(1, "ok"), (10.2, FAILED), (12.5, "ok")]))
    figures = fault_figures(m.windows(), injected_at=10.0)
    assert figures["detection_seconds"] == pytest.approx(0.2)
    assert figures["injection_to_first_ok_seconds"] == pytest.approx(2.5)


def test_fault_after_an_earlier_outage_picks_its_own_window():
    m = RunMetrics()
    m.add_worker(0, ops_of(0, [(1, "ok"), (2, FAILED), (3, "ok"), (20, "ok"), (21, FAILED),
                               (24, "ok")]))
    figures = fault_figures(m.windows(), injected_at=20.5)
    assert figures["detection_seconds"] == pytest.approx(0.5)
    assert figures["injection_to_first_ok_seconds"] == pytest.approx(3.5)


def test_intents_without_outcome_count_as_in_doubt_but_not_as_gaps():
    m = RunMetrics()
    m.add_worker(0, ops_of(0, [(1, "ok"), (2, "ok")]) + [intent(3, INSERT, 3)])
    assert m.totals() == {"ok": 2, "failed": 0, "indeterminate": 1}
    assert m.windows() == []


def test_timeline_counts_per_second():
    m = RunMetrics()
    m.add_worker(0, ops_of(0, [(100.1, "ok"), (100.5, "ok"), (101.2, FAILED),
                               (102.0, INDETERMINATE), (102.3, "ok")]))
    rows = {r["t"]: r for r in m.timeline()}
    assert (rows[100]["ok"], rows[101]["failed"], rows[102]["indeterminate"],
            rows[102]["ok"]) == (2, 1, 1, 1)


def test_latency_histogram_percentiles_within_bucket_error():
    h = LatencyHistogram()
    for i in range(1, 1001):
        h.add(i / 1000.0)  # 1 ms .. 1 s
    assert h.percentile(50) == pytest.approx(0.5, rel=0.05)
    assert h.percentile(99) == pytest.approx(0.99, rel=0.05)
    assert h.percentile(100) == pytest.approx(1.0)
    assert LatencyHistogram().percentile(50) is None


def test_detection_counts_the_probes_first_failure():
    from ptor_harness.verify.metrics import RunMetrics, fault_figures

    m = RunMetrics()
    m.add_worker(0, [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 3.0, FAILED),
                     op(3, INSERT, 3, 5.0)])
    windows = m.windows()
    assert fault_figures(windows, 2.0)["detection_seconds"] == 1.0
    # the probe saw it 20 ms after the injection, while the worker was idle
    assert fault_figures(windows, 2.0, [2.02])["detection_seconds"] == 0.020000000000000018
    assert fault_figures(windows, 2.0, [1.5])["detection_seconds"] == 1.0  # before: not it


def test_an_outage_after_a_second_fault_is_that_faults():
    """stop-sync-standby at 1 s (no outage), kill-primary at 7 s: the outage at 7.02 s
    is detected 0.02 s after the kill, not 6.02 s after the first fault."""
    from ptor_harness.verify.metrics import figures_per_fault, first_outage_fault

    m = RunMetrics()
    m.add_worker(0, ops_of(0, [(1, "ok"), (6.9, "ok"), (7.02, FAILED), (9.0, "ok")]))
    per_fault = figures_per_fault(m.windows(), [1.0, 7.0])
    assert per_fault[0]["detection_seconds"] is None
    assert per_fault[1]["detection_seconds"] == pytest.approx(0.02)
    assert first_outage_fault(per_fault) == 1
    assert first_outage_fault([per_fault[0]]) == 0 and first_outage_fault([]) is None
    # an outage still open when the second fault came stays the first fault's
    open_at_second = RunMetrics()
    open_at_second.add_worker(0, ops_of(0, [(1, "ok"), (2.0, FAILED), (9.0, "ok")]))
    both = figures_per_fault(open_at_second.windows(), [1.5, 7.0])
    assert both[0]["detection_seconds"] == pytest.approx(0.5)
    assert first_outage_fault(both) == 0
