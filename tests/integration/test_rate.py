"""--rate on real servers: the target is met, and ops skipped in an outage are never
counted lost or in doubt (the loss still equals the old primary's WAL)."""

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
