"""The drill's typed figures (verify/figures.py): worked out once from the outcome, and
the verdict judged on them without the report's dict."""

import pytest

from ptor_harness.ops import Identity
from ptor_harness.outputs import report
from ptor_harness.verify import checks
from ptor_harness.verify.figures import drill_figures, lost_by_cause, lost_examples, verdict_figures

from .test_report import outcome


def test_the_figures_of_a_clean_failover():
    o = outcome()
    d = drill_figures(o)
    assert d.rto["write_seconds"] == 3.5 and d.rto["recovered"] is True
    assert (d.causing, d.fault_at) == (0, 1.5)
    assert d.fault == {"detection_seconds": 0.5, "injection_to_first_ok_seconds": 3.0}
    assert d.totals == {"ok": 2, "failed": 0, "indeterminate": 1}
    assert d.ok_by_kind == {"insert": 2, "update": 0, "delete": 0}
    assert d.observed.primary_changed and d.observed.write_outage
    assert [w["write_rto_seconds"] for w in d.window_summaries] == [3.5]


def test_the_verdict_is_judged_on_typed_figures_alone():
    for o in (outcome(), outcome(rows=[(1, 1)]), outcome(validated=False)):
        figures = verdict_figures(drill_figures(o), o)
        verdict = checks.judge(figures, o.scenario.thresholds)
        assert verdict.status == report.build(o)["verdict"]
    unvalidated = outcome(validated=False)
    figures = verdict_figures(drill_figures(unvalidated), unvalidated)
    assert figures.lost is None and figures.anomalies["holes"] is None
    assert checks.judge(figures, unvalidated.scenario.thresholds).status == checks.UNKNOWN


def test_a_restarted_primary_is_no_failover():
    o = outcome()
    o.identities = [Identity(0, 1, 0.1, "127.0.0.1", 6001, False, "42", 1, 100.0),
                    Identity(0, 2, 3.0, "127.0.0.1", 6001, False, "42", 1, 200.0)]
    assert not drill_figures(o).observed.primary_changed


def test_lost_ops_are_put_down_to_the_replication_seen_at_the_fault():
    counts = {"other": 3, "sync_wait_cancelled": 2}
    sync = [{"sync_state": "sync", "seen_by": "primary"}]
    asynchronous = [{"sync_state": "async", "seen_by": "primary"}]
    assert lost_by_cause(counts, sync)["unexplained"] == 3
    assert lost_by_cause(counts, asynchronous)["asynchronous_lag"] == 3
    assert lost_by_cause(counts, [])["not_attributed"] == 3
    assert lost_by_cause(counts, sync)["sync_wait_cancelled"] == 2
    # each example says the cause the counts put it under (it said "other" before)
    examples = [{"seq": 1, "cause": "other"}, {"seq": 2, "cause": "sync_wait_cancelled"}]
    assert [e["cause"] for e in lost_examples(examples, asynchronous)] == \
        ["asynchronous_lag", "sync_wait_cancelled"]
    assert [e["cause"] for e in lost_examples(examples, [])] == \
        ["not_attributed", "sync_wait_cancelled"]
    assert examples[0]["cause"] == "other"  # the findings' own list is left as it was


def test_a_loss_beside_a_synchronous_standby_with_synchronous_commit_off():
    """A synchronous pair whose sessions commit with synchronous_commit off (or local):
    no commit waited for the standby, so a loss there is no mystery (it read
    "unexplained, since a synchronous standby was streaming")."""
    counts = {"other": 5}
    sync = [{"sync_state": "sync", "seen_by": "primary node1"}]
    for setting in ("off", "local"):
        assert lost_by_cause(counts, sync, setting)["synchronous_commit_off"] == 5
        assert lost_by_cause(counts, sync, setting)["unexplained"] == 0
        assert [e["cause"] for e in lost_examples([{"cause": "other"}], sync, setting)] == \
            ["synchronous_commit_off"]
    for setting in ("on", "remote_write", "remote_apply", None):  # these waited for it
        assert lost_by_cause(counts, sync, setting)["unexplained"] == 5, setting
    quorum = [{"sync_state": "quorum", "seen_by": "primary node1"}]
    assert lost_by_cause(counts, quorum, "off")["synchronous_commit_off"] == 5
    asynchronous = [{"sync_state": "async", "seen_by": "primary node1"}]
    assert lost_by_cause(counts, asynchronous, "off")["asynchronous_lag"] == 5


def test_a_later_faults_outage_has_its_own_anatomy():
    """A kill at 1.5 (node2 promoted), then a switchover back at 10.5 (node1 promoted at
    11.2): the second outage's anatomy names its own fault, old and new primary, events and
    parts; the first keeps the kill's."""
    from ptor_harness.drill.faults import FaultRecord
    from ptor_harness.ops import INDETERMINATE, INSERT, NodeSample

    from .synthetic import op

    def sample(node, at, primary, timeline):
        up = primary is not None
        return NodeSample(node, at, 0.001, up, None if not up else not primary, timeline, "42",
                          None, None, None, None, True, None if up else "refused")

    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0, INDETERMINATE), op(3, INSERT, 3, 4.5),
           op(4, INSERT, 4, 10.0), op(5, INSERT, 5, 11.0, INDETERMINATE),
           op(6, INSERT, 6, 11.5)]
    o = outcome(ops=ops, rows=[(1, 1), (3, 3), (4, 4), (6, 6)])
    o.faults.append(FaultRecord("switchover", None, 10.5, 10.8, 0, ""))
    for i in range(140):
        t = round(i * 0.1, 3)
        first = "down" if 1.5 <= t < 6.0 else None
        node1 = sample("node1", t, None, 1) if first else \
            sample("node1", t, t < 1.5 or t >= 11.2, 1 if t < 1.5 else 3 if t >= 11.2 else 2)
        o.node_samples += [node1, sample("node2", t + 0.001, 1.8 <= t < 10.9,
                                         3 if t >= 11.2 else 2 if t >= 1.8 else 1)]
    a = drill_figures(o).anatomy
    assert (a["old_primary"], a["new_primary"]) == ("node1", "node2")
    (later,) = a["later_outages"]
    assert (later["fault"], later["fault_at"]) == ("switchover", 10.5)
    assert (later["old_primary"], later["new_primary"]) == ("node2", "node1")
    assert later["detection_seconds"] == 0.5  # the workers' failure at 11.0
    promoted = next(e for e in later["events"] if e["name"] == "standby promoted")
    assert promoted["source"] == "observer: node1" and promoted["at"] == 11.2
    assert later["promotion_seconds"] == pytest.approx(11.2 - 11.0)
    assert "two_primaries" not in later and "service_available_seconds" not in later
    first = next(e for e in a["events"] if e["name"] == "standby promoted")
    assert first["source"] == "observer: node2" and first["at"] == pytest.approx(1.801)
