"""The drills people dread, beyond "kill the primary": a blip that must not fail over, the
synchronous standby lost (with and without a quorum to fall back on), the standby and then
the primary, the whole cluster restarted."""

import os
import sqlite3

from ptor_harness.lab.repmgr import RepmgrLab

from .conftest import free_port_base, lab_dir, remove_lab


def drill(lab, run_ptor, faults: str, *extra: str):
    return run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "3",
                    "--warmup-duration", "1", "--observe-after", "2", "--lab-dir", lab.dir,
                    "--fault", faults, "--full-data-validation", *extra)


def same_primary(r: dict) -> bool:
    before, after = r["servers"]["primary_before"], r["servers"]["primary_after"]
    return (before["port"], before["timeline"]) == (after["port"], after["timeline"])


def test_a_blip_on_a_stack_without_a_manager_is_no_failover(make_lab, run_ptor):
    lab = make_lab("sync")
    run = drill(lab, run_ptor, "blip=2.5:1", "--duration", "7", "--expect", "no-failover",
                "--max-write-rto", "10", "--warmup-duration", "3")
    assert run.code == 0, run
    r = run.report
    assert r["verdict"] == "pass" and same_primary(r)
    (record,) = r["faults"]
    assert record["name"] == "blip=2.5" and "for 2.5 s, then resumed" in record["output"]
    assert record["ended_at"] - record["started_at"] >= 2.5
    # the frozen primary stalled every worker for the blip's length, then answered: no op
    # failed, so no outage, but a brownout over the whole seconds the freeze covered
    assert r["windows"] == [] and r["ops"]["failed"] == 0
    assert r["latency"]["op_ok_max_seconds"] >= 2.4
    assert r["brownout"]["seconds"] >= 1, r["brownout"]
    assert r["rpo"]["lost_acknowledged_ops"] == 0
    # said as a stall (it read "Writes never stopped."), with the slowest write's wait
    assert f"No write failed, but writes stalled: the slowest acknowledged write took " \
        f"{r['latency']['op_ok_max_seconds']:.2f} s" in " ".join(r["account"])
    # a client that waited longer for one write than max-write-rto allows had no write
    # for that long, error or not: the same blip under a bound of 1.5 s fails, and the
    # wait it names is the freeze as the lab timed it (the ledger's own slowest write)
    run = drill(lab, run_ptor, "blip=2.5:1", "--duration", "7", "--expect", "no-failover",
                "--max-write-rto", "1.5", "--warmup-duration", "3")
    r = run.report
    assert (run.code, r["verdict"]) == (1, "fail"), run
    assert r["windows"] == [] and r["rto"]["write_seconds"] == 0
    (record,) = r["faults"]
    with sqlite3.connect(os.path.join(r["run_dir"], "ledger.sqlite")) as ledger:
        (slowest,), = ledger.execute("SELECT max(t_end - t_start) FROM ledger_op "
                                     "WHERE outcome = 'ok'")
    froze = record["ended_at"] - record["started_at"]
    assert froze - 0.2 <= slowest <= froze + 1.0, (slowest, froze)
    assert f"an acknowledged write waited {slowest:.3f} s (writes stalled without an " \
        "error), above max-write-rto 1.5 s" in r["verdict_reasons"]
    assert "writes stalled for longer than max-write-rto in a drill that must not fail " \
        "over" in r["verdict_reasons"]


def test_losing_the_only_sync_standby_stalls_writes_and_fails(make_lab, run_ptor):
    lab = make_lab("sync")
    run = drill(lab, run_ptor, "stop-sync-standby:1", "--duration", "30", "--expect",
                "no-failover", "--max-outage", "4")
    r = run.report
    assert (run.code, r["verdict"]) == (1, "fail"), run
    assert r["rto"]["recovered"] is False and "(max-outage)" in r["stop_reason"]
    assert r["expectation"]["observed"]["primary_changed"] is False
    assert "crashed the synchronous standby node2" in r["faults"][0]["output"]
    # a primary whose commits all wait cannot confirm itself with a write: the loss stays
    # unknown, never a made-up 0
    assert r["rpo"]["lost_acknowledged_ops"] is None and r["servers"]["primary_after"] is None


def test_a_quorum_outlives_its_sync_standby(run_ptor):
    """repmgr with three nodes and `ANY 1 (...)`: the other standby answers for the lost
    one, so commits go on and nothing fails over."""
    lab = RepmgrLab.up(os.path.join(lab_dir(), "lab"), free_port_base(4), "sync", nodes=3)
    try:
        run = drill(lab, run_ptor, "stop-sync-standby:1", "--duration", "5", "--expect",
                    "no-failover", "--max-write-rto", "5")
        assert run.code == 0, run
        r = run.report
        assert r["verdict"] == "pass" and same_primary(r)
        assert r["rpo"]["lost_acknowledged_ops"] == 0
        assert r["ops"]["ok"] > 0
    finally:
        remove_lab(lab)


def test_standby_then_primary(make_lab, run_ptor):
    """Sync pair: the standby crashes, commits wait; 1 s later the primary crashes and the
    standby, started as it was, is promoted. Nothing acknowledged is lost; the outage runs
    from the standby's crash."""
    lab = make_lab("sync")
    run = drill(lab, run_ptor, "kill-standby-then-primary:1", "--duration", "60")
    assert run.code == 0, run
    r = run.report
    assert r["verdict"] == "pass" and r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["servers"]["primary_after"]["port"] == lab.nodes["node2"].port
    assert r["rto"]["write_seconds"] >= 1.0
    assert r["validation"]["completed"] and r["validation"]["mismatched_rows"] == 0


def test_restarting_the_whole_cluster(make_lab, run_ptor):
    lab = make_lab("sync")
    run = drill(lab, run_ptor, "restart-cluster:1", "--duration", "60", "--expect",
                "no-failover", "--max-write-rto", "30")
    assert run.code == 0, run
    r = run.report
    assert r["verdict"] == "pass" and r["rto"]["recovered"] is True
    before, after = r["servers"]["primary_before"], r["servers"]["primary_after"]
    assert (before["port"], before["timeline"]) == (after["port"], after["timeline"])
    assert r["rpo"]["lost_acknowledged_ops"] == 0 and r["rto"]["write_seconds"] > 0
