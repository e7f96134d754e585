"""The verdict's checks (verify/checks.py), each on typed figures: a clean drill passes, and
every way a pass could be untrue (loss, loss that unplaced ops may hide, data not
validated, a fault that failed or never ran, a failover not seen, one not wanted, an
anomaly) fails or is unknown, with a sentence that says why."""

import dataclasses

from ptor_harness.config.scenario import Thresholds
from ptor_harness.drill.faults import FaultRecord
from ptor_harness.outcome import LockStatus, Stop, StopReason
from ptor_harness.verify import checks
from ptor_harness.verify.checks import FAIL, PASS, UNKNOWN, Figures, Observed, judge, merge

THRESHOLDS = Thresholds(expect="failover", max_outage=30.0, max_write_rto=10.0,
                        max_lost_acknowledged=0, max_detection_time=None,
                        brownout_threshold=0.5, standby_lag_threshold=0,
                        max_run_seconds=None)
FAULT = FaultRecord("kill-primary", "lab", 10.0, 10.5, 0)
PAST_MAX_OUTAGE = StopReason(Stop.MAX_OUTAGE, "no primary accepted writes for 12 s")
FAILOVER = Observed(primary_changed=True, write_outage=True, longest_outage_seconds=2.5,
                    not_recovered=False)


def figures(**changes) -> Figures:
    """A clean kill-primary drill: a failover seen, writes back in 2.5 s, nothing lost."""
    clean = Figures(write_rto=2.5, recovered=True, outage_windows=1, detection=0.05, lost=0,
                    unverifiable=0, validation_error=None, anomalies={}, wrong_payloads=0,
                    ops_ok=1000, stop=StopReason(Stop.OBSERVED, "writes healthy for 5 s"),
                    lock=LockStatus(), faults=[FAULT],
                    faults_planned=1, expected="failover", observed=FAILOVER)
    return dataclasses.replace(clean, **changes)


def verdict(thresholds=THRESHOLDS, **changes):
    return judge(figures(**changes), thresholds)


def test_a_clean_failover_passes_every_check():
    v = verdict()
    assert v.status == PASS and v.reasons == []
    assert [c.name for c in v.checks] == [
        "writes recovered", "max-write-rto", "max-detection-time", "max-lost-acknowledged",
        "anomalies", "drill completed", "faults ran", "expect failover"]


def test_loss_fails_and_loss_the_unplaced_ops_may_hide_is_unknown():
    assert verdict(lost=3).status == FAIL
    assert "3 acknowledged ops were lost" in verdict(lost=3).reasons[0]
    allowed = dataclasses.replace(THRESHOLDS, max_lost_acknowledged=3)
    assert verdict(allowed, lost=3).status == PASS
    hidden = verdict(allowed, lost=3, unverifiable=1)
    assert hidden.status == UNKNOWN and "may exceed" in hidden.reasons[0]


def test_data_not_validated_is_never_a_pass():
    v = verdict(lost=None, validation_error="no confirmed primary to reconcile against")
    assert v.status == UNKNOWN
    assert any("no confirmed primary" in r for r in v.reasons)
    assert "data was not validated" in " ".join(v.reasons)


def test_an_anomaly_fails():
    v = verdict(anomalies={"holes": 2})
    assert v.status == FAIL and v.reasons == ["2 holes"]
    assert verdict(wrong_payloads=1).status == FAIL


def test_a_fault_that_failed_or_never_ran_makes_the_drill_unknown():
    broken = FaultRecord("kill-primary", "lab", 10.0, 10.5, 2, stderr_first_line="no lab")
    assert verdict(faults=[broken]).status == UNKNOWN
    short = verdict(faults=[], faults_planned=1)
    assert short.status == UNKNOWN
    assert any("before every planned fault" in r for r in short.reasons)


def test_an_interrupted_or_lock_broken_drill_is_unknown():
    assert verdict(stop=StopReason(Stop.SIGNAL, "SIGTERM", "SIGTERM")).status == UNKNOWN
    later = verdict(stop=StopReason(Stop.RECONCILED_LATER, "the coordinator had died"))
    assert later.status == UNKNOWN and "reconciled later" in later.reasons[0]
    assert verdict(lock=LockStatus(lost_to="pid 42")).status == UNKNOWN
    assert verdict(ops_ok=0).status == UNKNOWN


def test_write_rto_above_its_limit_fails():
    v = verdict(write_rto=12.0)
    assert v.status == FAIL and v.reasons == ["write RTO 12.000 s is above max-write-rto 10 s"]


def test_a_stall_without_an_error_above_max_write_rto_fails():
    """A primary frozen for 12 s under a 15 s statement timeout: no op failed, so no
    outage window and a write RTO of 0, yet no write completed for 12 s. It passed
    max-write-rto 10 and --expect no-failover."""
    frozen = dict(write_rto=0.0, outage_windows=0, detection=None, slowest_write=12.0,
                  observed=Observed(False, False, None, False), faults=[])
    v = verdict(**frozen, faults_planned=0)
    assert v.status != PASS and "an acknowledged write waited 12.000 s (writes stalled " \
        "without an error), above max-write-rto 10 s" in v.reasons
    calm = verdict(**frozen, faults_planned=0, expected="no-failover")
    assert calm.status == FAIL and "writes stalled for longer than max-write-rto in a " \
        "drill that must not fail over" in calm.reasons
    # within the bound, or with no bound, a stall judges nothing
    assert verdict(**dict(frozen, slowest_write=9.0), faults_planned=0,
                   expected="no-failover").status == PASS
    unbounded = dataclasses.replace(THRESHOLDS, max_write_rto=None)
    assert verdict(unbounded, **frozen, faults_planned=0, expected="no-failover").status \
        == PASS
    # an outage's own RTO above the bound is still said as the RTO
    assert verdict(write_rto=12.0, slowest_write=11.0).reasons == [
        "write RTO 12.000 s is above max-write-rto 10 s"]


def test_writes_that_never_came_back_fail_and_name_the_lag_when_none_was_promoted():
    stuck = Observed(False, True, None, True)
    v = verdict(recovered=False, stop=PAST_MAX_OUTAGE, observed=stuck,
                closest_standby=("pa2", 3_000_000, 1.5))
    assert v.status == FAIL
    assert "the closest, pa2, was 3,000,000 bytes of WAL behind" in v.reasons[0]


def test_expectations():
    nothing = Observed(False, False, None, False)
    assert verdict(observed=nothing).status == UNKNOWN  # --expect failover, none seen
    no_failover = verdict(expected="no-failover")
    assert no_failover.status == FAIL and "must not fail over" in no_failover.reasons[0]
    assert verdict(expected="no-failover", observed=nothing).status == PASS
    assert verdict(expected="no-promotion").status == FAIL
    # no promotion, writes down past max-outage: what no-promotion asks for
    held = Observed(False, True, None, True)
    assert verdict(expected="no-promotion", observed=held, recovered=False,
                   stop=PAST_MAX_OUTAGE).status == PASS
    assert verdict(expected="no-promotion", observed=nothing).status == UNKNOWN
    assert verdict(expected="any", observed=nothing).status == PASS


def test_the_worst_status_wins_and_fails_are_told_first():
    merged = merge([checks.Check("a", UNKNOWN, "why a"), checks.Check("b", FAIL, "why b"),
                    checks.Check("c", PASS, "fine")])
    assert merged.status == FAIL and merged.reasons == ["why b", "why a"]
    assert merge([]).status == PASS
