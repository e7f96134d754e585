"""--rate on real servers: the target is met, and ops skipped in an outage are never
counted lost or in doubt (the loss still equals the old primary's WAL)."""

import os
import sqlite3

import pytest

from .conftest import lab_command
from .groundtruth import (
    WalSampler,
    check_against_truth,
    failover_command,
    keep_decodable_history,
    truth_and_report,
)


def test_a_rate_is_met_within_five_percent(make_lab, run_ptor):
    lab = make_lab("async")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "4",
                   "--rate", "1200", "--warmup-duration", "1", "--duration", "8",
                   "--expect", "any")
    assert run.code == 0, run
    load = run.report["load"]
    assert load["target_rate"] == 1200 and load["target_reached"], load
    assert load["achieved_rate"] == pytest.approx(1200, rel=0.05), load
    # the test's own count: acknowledged ops over the phases' own times
    phases = run.report["phases"]
    ours = run.report["ops"]["ok"] / (phases["drain"] - phases["warmup"])
    assert ours == pytest.approx(1200, rel=0.05)
    assert load["skipped_ops"] == 0 and load["workers_reporting"] == 4
    assert "rate: achieved / target (ops/s)" in run.stdout, run.stdout
    assert load["schedule_lag_seconds"]["p50"] < 0.01  # sent when due, mostly
    assert load["latency_from_due_seconds"]["p50"] >= run.report["latency"][
        "op_ok_p50_seconds"] * 0.9


def test_an_outage_does_not_count_against_the_rate(make_lab, run_ptor):
    """--rate 1,000 through a failover whose promotion comes 3 s after the primary
    stopped: over the whole load the rate falls short (the outage's seconds cannot be
    written in), but while writes went through it is met, by the test's own count from
    the ledger's rows (each worker's acknowledged ops over the load's seconds outside its
    own spells from its last acknowledgement before a failure to its first after), and
    no warning says the target was missed."""
    lab = make_lab("sync")
    old = lab.named("primary")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "4",
                   "--rate", "1000", "--warmup-duration", "1", "--duration", "30",
                   "--failover-after", "3", "--observe-after", "4", "--failover-command",
                   f"{lab_command(lab, 'stop-node', old)} && sleep 3 && "
                   f"{lab_command(lab, 'failover')}")
    assert run.code == 0, run
    r, load = run.report, run.report["load"]
    start, end = r["phases"]["warmup"], r["phases"]["drain"]
    with sqlite3.connect(os.path.join(r["run_dir"], "ledger.sqlite")) as ledger:
        rows = ledger.execute("SELECT worker, t_end, outcome FROM ledger_op WHERE outcome "
                              "IS NOT NULL ORDER BY worker, seq").fetchall()
    acknowledged, outside, longest = 0, 0.0, 0.0
    for worker in sorted({w for w, _, _ in rows}):
        last_ok, failing, away = start, False, 0.0
        for _, t_end, outcome in (row for row in rows if row[0] == worker):
            if outcome == "ok":
                acknowledged += 1
                if failing:
                    away += t_end - last_ok
                    longest = max(longest, t_end - last_ok)
                    failing = False
                last_ok = t_end
            else:
                failing = True
        if failing:
            away += end - last_ok
        outside += (end - start) - away
    ours = acknowledged / (outside / 4)
    assert longest > 2.5, "the outage must be seconds long"
    assert load["achieved_rate"] < 0.95 * 1000, load  # over the whole load
    assert load["achieved_rate_while_writable"] == pytest.approx(ours, rel=0.01), (load, ours)
    assert ours == pytest.approx(1000, rel=0.05)
    assert load["target_reached"], load
    assert not any("targeted" in w for w in r["warnings"]), r["warnings"]
    assert "rate while writes went through (ops/s)" in run.stdout
    lag = load["schedule_lag_while_writable_seconds"]
    assert lag["p50"] < 0.01 and lag["max"] <= load["schedule_lag_seconds"]["max"], load


def test_ops_skipped_in_an_outage_are_never_lost_or_in_doubt(make_lab, run_ptor):
    """The async standby falls behind for 3 s under a 1,500 ops/s schedule, then the
    primary is killed and the standby promoted: the ops due while no server took writes
    are skipped, and the lost count still equals the old primary's WAL past the switch."""
    lab = make_lab("async")
    keep_decodable_history(lab)
    run, acknowledged, in_doubt = truth_and_report(
        lab, run_ptor, "sqlite", False, "--primary-pgdsn", lab.primary_dsn(),
        "--parallel-workers", "4", "--rate", "1500", "--failover-command",
        failover_command(lab, "stop-node node2; sleep 3; failover"))
    check_against_truth("async-behind-rate", run, acknowledged, in_doubt)
    assert len(acknowledged) > 1000, "the drill must lose thousands of acknowledged ops"
    load = run.report["load"]
    assert load["skipped_ops"] > 0, load
    # skipped ops were never planned: no seq, no ledger entry, so neither lost nor in doubt
    ops = run.report["ops"]
    assert run.report["recorder"]["ops"] == ops["ok"] + ops["failed"] + ops["indeterminate"]


def test_without_the_observer_the_wal_rate_is_read_through_the_endpoint(make_lab, run_ptor):
    """The node observer off (as with one DSN and no nodes to watch): the WAL rate comes
    from the endpoint's WAL positions at the load's start, warmup end and drain. Against
    the test's own samples of the primary's LSN every 10 ms: within 10 % over the load;
    across a kill and promotion, only the old primary's readings pair up (the warmup)."""
    lab = make_lab("async")
    primary = lab.nodes[lab.named("primary")]
    assert run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--ops-per-worker", "1",
                    "--warmup-duration", "0", "--expect", "any").code == 0
    common = ("--primary-pgdsn", lab.primary_dsn(), "--parallel-workers", "4",
              "--payload-bytes", "1024", "--warmup-duration", "2", "--observe-interval", "0")
    sampler = WalSampler(primary)
    sampler.start()
    try:
        run = run_ptor(*common, "--duration", "3", "--expect", "any")
    finally:
        sampler.stop.set()
        sampler.join()
    assert run.code == 0, run
    r = run.report
    assert r["nodes"]["observer"] != "on", r["nodes"]
    load, phases = r["load"], r["phases"]
    truth = (sampler.at(phases["drain"]) - sampler.at(phases["warmup"])) / (
        phases["drain"] - phases["warmup"])
    assert load["wal_source"] == "endpoint" and truth > 500_000, (load, truth)
    assert load["wal_bytes_per_second"] == pytest.approx(truth, rel=0.10)
    assert load["wal_seconds"] == pytest.approx(phases["drain"] - phases["warmup"], abs=0.5)

    sampler = WalSampler(primary)
    sampler.start()
    run = run_ptor(*common, "--duration", "30", "--failover-after", "1", "--observe-after",
                   "2", "--failover-command", lab_command(lab, "failover"))
    sampler.join(timeout=60)  # its session ends with the old primary
    r = run.report
    assert r["servers"]["primary_after"]["port"] != primary.port, r["servers"]
    load, phases = r["load"], r["phases"]
    assert load["wal_source"] == "endpoint"
    assert load["wal_seconds"] == pytest.approx(phases["load"] - phases["warmup"], abs=0.5)
    truth = (sampler.at(phases["load"]) - sampler.at(phases["warmup"])) / (
        phases["load"] - phases["warmup"])
    assert load["wal_bytes_per_second"] == pytest.approx(truth, rel=0.10)
