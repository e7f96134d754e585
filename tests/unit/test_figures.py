"""The drill's typed figures (verify/figures.py): worked out once from the outcome, and
the verdict judged on them without the report's dict."""

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
