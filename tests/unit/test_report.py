"""Verdicts and the rendered report, from synthetic drill outcomes."""
import pytest

from ptor_harness.config import parse_scenario
from ptor_harness.drill.faults import FaultRecord
from ptor_harness.ops import DELETE, INDETERMINATE, INSERT
from ptor_harness.outcome import DrillOutcome, Stop, StopReason
from ptor_harness.outputs import cells, exports, render, report
from ptor_harness.verify.metrics import RunMetrics
from ptor_harness.verify.reconcile import Reconciler

from .synthetic import identity, op


def outcome(extra=(), rows=None, ops=None, validated=True):
    s = parse_scenario(["--primary-pgdsn", "host=127.0.0.1 password=zz9", *extra], {})
    o = DrillOutcome("run-1", "/tmp/run-1", s, "sqlite")
    o.phases = {"warmup": 0.0}
    ops = ops or [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0, INDETERMINATE),
                  op(3, INSERT, 3, 4.5)]
    m = RunMetrics()
    m.add_worker(0, ops)
    o.metrics = m
    o.faults = [FaultRecord("failover-command", "cmd password=zz9", 1.5, 1.7, 0, "")]
    o.identities = [identity(0, 1, 6001, at=0.1), identity(0, 2, 6002, 2, at=3.0)]
    if validated:
        r = Reconciler(lambda w, s: None)
        r.add_worker(0, ops, rows if rows is not None else [(1, 1), (3, 3)])
        o.findings = r.finish()
    else:
        o.validation_error = "no confirmed primary to reconcile against: refused"
    return o


def test_pass_with_figures():
    r = report.build(outcome())
    assert r["verdict"] == "pass" and report.exit_code(r) == 0
    assert r["rto"]["write_seconds"] == 3.5  # last ok 1.0 -> first ok 4.5
    assert r["rto"]["detection_seconds"] == 0.5
    assert r["rto"]["injection_to_first_ok_seconds"] == 3.0
    assert r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["indeterminate"] == {"applied": 0, "not_applied": 1, "superseded": 0,
                                  "unrecorded_applied": 0}
    assert r["ops"] == {"ok": 2, "failed": 0, "indeterminate": 1,
                        "ok_by_kind": {"insert": 2, "update": 0, "delete": 0}}
    assert r["servers"]["identity_changes"][0]["to"].startswith("127.0.0.1:6002")


def test_lost_ack_fails_unless_allowed():
    lossy = report.build(outcome(rows=[(1, 1)]))
    assert lossy["verdict"] == "fail" and report.exit_code(lossy) == 1
    assert lossy["rpo"]["lost_acknowledged_ops"] == 1
    assert lossy["rpo"]["window_seconds"] == 0.0  # one lost op: a single instant
    # ... acknowledged 3 s after the fault was injected (at 1.5)
    assert lossy["rpo"]["first_lost_before_fault_seconds"] == -3.0
    assert lossy["rpo"]["lost_by_evidence"] == {"final_state": 1, "version_chain": 0,
                                                "worker_order": 0, "commit_order": 0}
    allowed = report.build(outcome(["--max-lost-acknowledged", "1"], rows=[(1, 1)]))
    assert allowed["verdict"] == "pass"


def test_ops_no_evidence_places_never_let_a_loss_over_the_allowance_pass():
    """Key 2 inserted and deleted just before the cut, key 3's insert after it lost: the
    two ops on key 2 are unverifiable (assumed kept, never reported lost). Within an
    allowance that they could exceed, the verdict is unknown, never pass."""
    ops = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0), op(3, DELETE, 2, 3.0, prev=2),
           op(4, INSERT, 3, 4.5)]
    def build(allowed):
        return report.build(outcome(["--max-lost-acknowledged", str(allowed)], rows=[(1, 1)],
                                    ops=ops))
    assert [r["rpo"]["lost_acknowledged_ops"] for r in (build(0), build(3))] == [1, 1]
    assert build(0)["rpo"]["unverifiable_ops"] == 2
    assert build(0)["verdict"] == "fail"
    unsure = build(2)
    assert unsure["verdict"] == "unknown" and report.exit_code(unsure) == 4
    assert statuses(unsure)["max-lost-acknowledged"] == "unknown"
    assert "2 more that no evidence shows kept or lost" in " ".join(unsure["verdict_reasons"])
    assert build(3)["verdict"] == "pass"


def test_rto_threshold():
    r = report.build(outcome(["--max-write-rto", "2"]))
    assert r["verdict"] == "fail"
    assert "above max-write-rto" in r["verdict_reasons"][0]


def test_validation_that_did_not_run_is_unknown_never_pass():
    r = report.build(outcome(validated=False))
    assert r["verdict"] == "unknown" and report.exit_code(r) == 4
    assert r["validation"]["completed"] is False
    assert r["rpo"]["lost_acknowledged_ops"] is None


def test_render_and_json_never_show_passwords(tmp_path):
    r = report.build(outcome())
    text = render.render(r)
    assert "verdict                            PASS" in text
    assert "lost acknowledged ops (RPO)        0" in text
    path = tmp_path / "r.json"
    exports.write_json(r, str(path))
    assert "zz9" not in text and "zz9" not in path.read_text()


def statuses(r):
    return {c["name"]: c["status"] for c in r["checks"]}


def test_detection_threshold():
    r = report.build(outcome(["--max-detection-time", "0.25"]))  # detection was 0.5 s
    assert r["verdict"] == "fail" and statuses(r)["max-detection-time"] == "fail"
    assert "detection time 0.500 s is above max-detection-time 0.25 s" in r["verdict_reasons"]
    assert report.build(outcome(["--max-detection-time", "0.5"]))["verdict"] == "pass"


def test_checks_behind_a_pass():
    r = report.build(outcome(["--max-write-rto", "10"]))
    assert statuses(r) == {"writes recovered": "pass", "max-write-rto": "pass",
                           "max-detection-time": "pass", "max-lost-acknowledged": "pass",
                           "anomalies": "pass", "drill completed": "pass",
                           "faults ran": "pass", "expect failover": "pass"}
    assert r["checks"][1]["detail"] == "write RTO 3.500 s (limit 10 s)"


def test_an_interrupted_drill_is_never_a_pass():
    o = outcome()
    o.stopped(Stop.SIGNAL, "interrupted by SIGTERM", "SIGTERM")
    r = report.build(o)
    assert r["verdict"] == "unknown" and r["interrupted"] == "SIGTERM"
    assert r["verdict_reasons"] == ["the drill was interrupted by SIGTERM"]


def test_a_loss_still_fails_an_interrupted_drill():
    o = outcome(rows=[(1, 1)])
    o.stopped(Stop.SIGNAL, "interrupted by SIGINT", "SIGINT")
    r = report.build(o)
    assert r["verdict"] == "fail" and len(r["verdict_reasons"]) == 2


def test_faults_that_never_fired_make_the_verdict_unknown():
    o = outcome()
    o.faults_planned = 2  # one of two fired before max-run-seconds
    o.stopped(Stop.DEADLINE, "max-run-seconds (9 s) reached")
    r = report.build(o)
    assert r["verdict"] == "unknown" and r["deadline_reached"] is True
    assert "every planned fault was injected (1 of 2)" in r["verdict_reasons"][0]


def test_a_lock_taken_by_another_drill_makes_the_verdict_unknown():
    o = outcome()
    o.lock.lost_to = "run 2 from 127.0.0.1"
    r = report.build(o)
    assert r["verdict"] == "unknown" and r["lock"]["lost_to"] == "run 2 from 127.0.0.1"


def test_a_failover_command_that_failed_is_never_a_pass():
    """exit 127 from a typo'd ssh: the fault never ran, so nothing about a failover was
    tested: unknown, with the status and the first line of its stderr (masked)."""
    o = outcome()
    o.faults = [FaultRecord("failover-command", "sshh pg1", 1.5, 1.6, 127, "",
                            stderr_first_line="sh: 1: sshh: not found password=********")]
    r = report.build(o)
    assert r["verdict"] == "unknown" and report.exit_code(r) == 4
    assert statuses(r)["faults ran"] == "unknown"
    assert r["verdict_reasons"] == ["the fault failover-command exited with status 127: sh: 1: "
                                    "sshh: not found password=********"]
    killed = outcome()
    killed.faults = [FaultRecord("failover-command", "x", 1.5, 9.0, -9, "",
                                 error="did not finish within 5 s (failover-timeout); its "
                                       "process group was killed")]
    assert "failover-timeout" in report.build(killed)["verdict_reasons"][0]


def test_no_failover_observed_is_unknown_unless_none_was_expected():
    quiet = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0), op(3, INSERT, 3, 3.0)]
    calm = outcome(ops=quiet, rows=[(1, 1), (2, 2), (3, 3)])
    calm.identities = [identity(0, 1, 6001, at=0.1)]
    r = report.build(calm)
    assert r["verdict"] == "unknown" and statuses(r)["expect failover"] == "unknown"
    assert r["expectation"] == {"expected": "failover", "observed": {
        "primary_changed": False, "write_outage": False, "longest_outage_seconds": None,
        "not_recovered": False}}
    assert "no failover was observed" in r["verdict_reasons"][0]
    for expect in ("any", "no-failover"):
        o = outcome(["--expect", expect], ops=quiet, rows=[(1, 1), (2, 2), (3, 3)])
        o.identities = [identity(0, 1, 6001, at=0.1)]
        assert report.build(o)["verdict"] == "pass", expect


def test_an_unwanted_failover_fails_a_no_failover_drill():
    r = report.build(outcome(["--expect", "no-failover"]))  # the primary moved 6001 -> 6002
    assert r["verdict"] == "fail" and statuses(r)["expect no-failover"] == "fail"
    assert r["expectation"]["observed"]["primary_changed"] is True
    o = outcome(["--expect", "no-failover", "--max-write-rto", "1"])
    o.identities = [identity(0, 1, 6001, at=0.1), identity(0, 2, 6001, at=3.0)]  # a blip
    blip = report.build(o)
    assert statuses(blip)["expect no-failover"] == "fail"  # 3.5 s outage > 1 s
    assert "longer than max-write-rto" in " ".join(blip["verdict_reasons"])


def test_no_promotion_expects_writes_that_never_come_back_on_the_same_primary():
    """A manager that refuses to promote a standby lacking acknowledged commits: writes
    stop and stay stopped. That passes under --expect no-promotion (no other primary, no
    loss); a standby promoted fails it; and the same outage fails an ordinary drill."""
    stuck = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 2.0, INDETERMINATE),
             op(3, INSERT, 3, 4.5, INDETERMINATE)]

    def drill(expect, primaries):
        o = outcome(["--expect", expect], ops=stuck, rows=[(1, 1)])
        o.identities = primaries
        return report.build(o)

    same = [identity(0, 1, 6001, at=0.1)]
    r = drill("no-promotion", same)
    assert r["rto"]["recovered"] is False
    assert r["verdict"] == "pass", r["verdict_reasons"]
    assert statuses(r)["expect no-promotion"] == "pass"
    assert statuses(r)["writes recovered"] == "pass"
    assert "no standby was promoted; writes did not come back" in " ".join(
        c["detail"] for c in r["checks"])
    promoted = drill("no-promotion", same + [identity(0, 2, 6002, 2, at=3.0)])
    assert promoted["verdict"] == "fail"
    assert statuses(promoted)["expect no-promotion"] == "fail"
    ordinary = drill("failover", same)
    assert ordinary["verdict"] == "fail" and statuses(ordinary)["writes recovered"] == "fail"
    calm = outcome(["--expect", "no-promotion"], ops=[op(1, INSERT, 1, 1.0)], rows=[(1, 1)])
    calm.identities = same
    assert statuses(report.build(calm))["expect no-promotion"] == "unknown"  # no outage


def test_a_lock_keeper_that_died_makes_the_verdict_unknown():
    o = outcome()
    o.lock.failed = "the drill lock's keeper failed: OperationalError: gone"
    r = report.build(o)
    assert r["verdict"] == "unknown"
    assert "keeper failed" in r["verdict_reasons"][0]


def test_a_verdict_without_a_promotion_names_the_standby_lag_at_the_fault():
    """The closest standby's lag at the fault goes into the reason when no primary
    changed: Patroni refuses a standby further behind than maximum_lag_on_failover."""
    from types import SimpleNamespace

    from ptor_harness.verify.anatomy import closest_standby
    from ptor_harness.verify.checks import FAIL, PASS, writes_recovered

    rows = [{"standby": "pa2", "flushed_bytes_behind": 3_500_000,
             "replayed_bytes_behind": 3_600_000, "replay_lag_seconds": 2.5},
            {"standby": "pa2", "flushed_bytes_behind": None,
             "replayed_bytes_behind": 3_400_000, "replay_lag_seconds": 2.4},
            {"standby": "pa3", "flushed_bytes_behind": 9_000_000,
             "replayed_bytes_behind": 9_000_000, "replay_lag_seconds": 7.0}]
    assert closest_standby(rows) == ("pa2", 3_400_000, 2.4)
    assert closest_standby([]) is None

    def figures(expected, changed, closest, stale_sessions=0, promoted=None):
        return SimpleNamespace(expected=expected, recovered=False,
                               stop=StopReason(Stop.MAX_OUTAGE, "no primary for 12 s"),
                               outage_windows=1, closest_standby=closest,
                               observed=SimpleNamespace(primary_changed=changed),
                               stale_sessions=stale_sessions, stale_refusals=0,
                               promoted_in_load=promoted)

    stuck = writes_recovered(figures("failover", False, closest_standby(rows)), None)
    assert stuck.status == FAIL
    assert "the closest, pa2, was 3,400,000 bytes of WAL behind" in stuck.detail
    assert "maximum_lag_on_failover" in stuck.detail
    expected = writes_recovered(figures("no-promotion", False, ("pa2", 10, None)), None)
    assert expected.status == PASS and "10 bytes of WAL behind" in expected.detail
    moved = writes_recovered(figures("failover", True, ("pa2", 10, None)), None)
    assert "behind" not in moved.detail
    # promoted, but the primary DSN led every session to a standby: the endpoint's fault
    stale = writes_recovered(figures("failover", True, None, 112, "node2"), None)
    assert stale.status == FAIL and stale.detail.startswith(
        "writes did not come back through the primary DSN, though node2 was promoted while "
        "the load ran: after the fault 112 sessions landed on a standby (stale routing)")
    assert "no primary accepted" not in stale.detail
    unreached = writes_recovered(figures("failover", True, None, 0, "node2"), None)
    assert "no session the workers opened after the fault reached it" in unreached.detail
    assert "no primary accepted writes again" in writes_recovered(
        figures("failover", True, None, 112), None).detail  # promoted after the load, if


def test_seconds_read_without_a_minus_zero():
    """A CDC lag p50 of -0.00004 s (a change received just before its acknowledgement)
    read '-0.000 s'."""
    assert cells.secs(-0.00004) == "0.000 s" and cells.secs(-0.0) == "0.000 s"
    assert cells.secs(-0.5) == "-0.500 s" and cells.secs(0.61) == "0.610 s"
    assert cells.secs(None) == "-" and cells.secs(3.0, 1) == "3.0 s"


def test_writes_refused_by_the_primary_itself_are_not_stale_routing():
    """Refusals as read-only (25006), per session: on the primary the drill ended with, on
    its timeline, the primary was held read-only (pg_auto_failover while it promotes, an
    operator); on the old primary or a standby, clients were left behind."""
    from ptor_harness.verify.figures import read_only_refusals, refused_by

    o = outcome()
    o.identities.append(identity(1, 1, 6001, at=0.2))  # worker 1 on the old primary
    standby = identity(1, 2, 6002, at=2.5)._replace(in_recovery=True, timeline=1)
    o.identities.append(standby)  # worker 1 on the promoted node while it was a standby
    o.primary_after = identity(0, 2, 6002, 2, at=3.0)
    o.refused_writes = [(0, 2, 40, 3.1, 6.2), (1, 1, 5, 1.8, 2.0), (1, 2, 7, 2.6, 2.9)]
    own, stale = refused_by(o)
    assert own == [(40, 3.1, 6.2)] and stale == [(5, 1.8, 2.0), (7, 2.6, 2.9)]
    left, held = read_only_refusals(o, 1.5)
    assert held == {"refused_writes": 40, "first_at": 3.1, "last_at": 6.2,
                    "seconds": pytest.approx(3.1)}
    assert left["refused_writes"] == 12 and left["standby_sessions"] == 1
    assert (left["first_at"], left["last_at"]) == (1.8, 2.9)
    r = report.build(o)
    assert r["anatomy"]["refused_by_primary"]["refused_writes"] == 40
    shown = render.render(r)
    assert "Read-only primary: 40 writes refused as read-only (SQLSTATE 25006) by the " \
           "primary itself" in shown and "Stale routing: 12 writes" in shown
    assert "For 3.10 s the new primary itself refused writes as read-only (40 writes): it " \
           "was held read-only" in " ".join(r["account"]), r["account"]
    o.primary_after = None  # no primary confirmed: nothing can be put down to it
    assert refused_by(o)[0] == [] and read_only_refusals(o, 1.5)[0]["refused_writes"] == 52


def test_the_brownout_line_reads_whole_ops_per_second():
    r = report.build(outcome())
    r["brownout"] = {"threshold": 0.5, "warmup_ok_per_second": 1602.0, "seconds": 6.0,
                     "periods": [{"start": 6.284, "end": 12.284}]}
    # the clients' own view: shown with the node observer off too (one DSN, no nodes)
    assert (r.get("nodes") or {}).get("observer") != "on"
    assert "Brownout (below 50% of the warmup's 1,602 ok/s): 6 s (" in render.render(r)


def test_an_event_a_write_bounds_is_listed_before_that_write_in_the_report():
    """The observer saw node2 take writes in the sample after the first acknowledged
    write (4.5), though the sample before it (4.401) came before that write: in the
    report's list, as in the anatomy's, it stands before the write it made possible."""
    from ptor_harness.ops import NodeSample

    def sample(node, at, reachable=True, in_recovery=None, read_only=None, timeline=1):
        return NodeSample(node, at, 0.001, reachable, in_recovery, timeline, "42",
                          None, None, None, None, True, None if reachable else "refused",
                          read_only=read_only)

    o = outcome()
    for i in range(61):
        t = round(i * 0.1, 3)
        o.node_samples.append(sample("node1", t, t < 1.5, False if t < 1.5 else None,
                                     False if t < 1.5 else None))
        promoted = t >= 1.8
        o.node_samples.append(sample("node2", t + 0.001, True, not promoted,
                                     not promoted or t + 0.001 < 4.45, 2 if promoted else 1))
    r = report.build(o)
    names = [e["name"] for e in r["anatomy"]["events"]]
    assert names.index("standby promoted") < names.index("new primary writable") < \
        names.index("writes acknowledged again"), names
    writable = next(e for e in r["anatomy"]["events"] if e["name"] == "new primary writable")
    assert writable["at"] == pytest.approx(4.501)  # the sample that showed it, kept
    assert r["anatomy"]["routing_seconds"] == 0.0
    # promoted (1.801) before the first client error (2.0): the outage's phases run from
    # that error, so the read-only phase is its part of the outage
    assert r["anatomy"]["read_only_seconds"] == pytest.approx(4.5 - 2.0)
    assert r["anatomy"]["promotion_seconds"] == 0.0


def test_the_old_primary_lost_is_listed_at_its_own_time():
    """Seen with Patroni's manager killed: the old primary was seen unreachable in the
    sample just after the first write acknowledged on the new primary. That write does
    not show the old primary gone (it may still have taken writes), so the event stands
    after it, at the time the observer saw it, and the list reads in time order."""
    from ptor_harness.ops import NodeSample

    def sample(node, at, reachable=True, in_recovery=None, timeline=1):
        return NodeSample(node, at, 0.001, reachable, in_recovery, timeline, "42",
                          None, None, None, None, True, None if reachable else "refused",
                          read_only=False if reachable else None)

    o = outcome()
    for i in range(61):
        t = round(i * 0.1, 3)
        up = t + 0.05 < 4.55  # seen at 4.45, lost at 4.55: around the write at 4.5
        o.node_samples.append(sample("node1", t + 0.05, up, False if up else None))
        promoted = t >= 4.3
        o.node_samples.append(sample("node2", t + 0.001, True, not promoted,
                                     2 if promoted else 1))
    r = report.build(o)
    events = r["anatomy"]["events"]
    names = [e["name"] for e in events]
    assert names.index("standby promoted") < names.index("writes acknowledged again") < \
        names.index("old primary unreachable"), names
    lost = next(e for e in events if e["name"] == "old primary unreachable")
    assert lost["at"] == pytest.approx(4.55)
    times = [e["at"] for e in events if e["name"] != "standby promoted"]
    assert times == sorted(times), events


def test_the_drill_s_other_faults_stand_in_the_anatomy():
    """stop-sync-standby, then kill-primary: the anatomy listed only the kill, so the
    standby lost 6 s before it had no cause in the list."""
    o = outcome()
    kill = o.faults[0]
    o.faults = [FaultRecord("stop-sync-standby", "lab", kill.started_at - 1.0,
                            kill.started_at - 0.9, 0, ""), kill,
                FaultRecord("switchover", "lab", 5.0, 5.5, 0, "")]
    r = report.build(o)
    injected = [(e["detail"], e["seconds_after_fault"]) for e in r["anatomy"]["events"]
                if e["name"] == "fault injected"]
    assert injected == [("stop-sync-standby", -1.0), ("failover-command", 0.0),
                        ("switchover", 3.5)], r["anatomy"]["events"]


def test_times_from_the_warmup_keep_their_sign_and_digits_in_every_table():
    """tabulate read "+9.290" as a number and printed 9.29 (and "+6.001" as 6.001)."""
    r = report.build(outcome(rows=[(1, 1)]))
    t0 = r["phases"]["warmup"]
    r["nodes"] = {"observer": "on", "nodes": {}}
    r["anatomy"]["events"] = [{"name": "redundancy restored", "at": t0 + 9.29,
                               "seconds_after_fault": 3.289, "source": "observer: node2",
                               "detail": "node3 streaming, quorum"}]
    r["windows"][0].update(start=t0 + 6.0, first_failure=t0 + 6.01, end=t0 + 9.2)
    shown = render.render(r)
    assert "+9.290  3.289 s" in shown
    assert "+6.000" in shown and "+6.010" in shown and "+9.200" in shown
