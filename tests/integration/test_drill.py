"""Full drills against a real synchronous primary/standby pair with a real failover."""

import pytest

from .conftest import lab_command, ledger_args

COMMON = ("--init", "--parallel-workers", "3", "--warmup-duration", "1", "--duration", "40",
          "--failover-after", "1", "--observe-after", "1.5", "--full-data-validation")


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
@pytest.mark.parametrize("repo_mode", ["sync", "async"])
def test_sync_pair_failover_loses_nothing(make_lab, run_ptor, ledger, repo_mode):
    lab = make_lab("sync")
    args = ["--primary-pgdsn", lab.primary_dsn(), "--failover-command",
            lab_command(lab, "failover"), "--check-primary-latency", *COMMON]
    run = run_ptor(*args, *ledger_args(lab, ledger, repo_mode))
    assert run.code == 0, run
    r = run.report
    assert r["verdict"] == "pass" and r["ledger"] == ledger
    # a real outage was seen and measured from the client's side
    assert r["rto"]["write_seconds"] > 0
    assert r["rto"]["recovered"] is True
    assert r["rto"]["detection_seconds"] is not None
    assert r["rto"]["injection_to_first_ok_seconds"] >= r["rto"]["detection_seconds"]
    assert r["rto"]["outage_windows"] >= 1
    # synchronous replication: nothing acknowledged is lost, every row is explained
    assert r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["rpo"]["window_seconds"] == 0
    assert r["validation"]["completed"] is True and r["validation"]["mode"] == "full"
    assert r["validation"]["mismatched_rows"] == 0
    assert r["validation"]["rows_checked"] > 0
    assert r["anomalies"]["phantom_rows"] == 0 and r["anomalies"]["holes"] == 0
    ind = r["indeterminate"]
    assert ind["applied"] + ind["not_applied"] + ind["superseded"] == r["ops"]["indeterminate"]
    assert r["ops"]["ok"] > 100
    # the failover really moved the primary
    before, after = r["servers"]["primary_before"], r["servers"]["primary_after"]
    assert before["port"] != after["port"] and after["timeline"] > before["timeline"]
    assert r["faults"][0]["exit_code"] == 0
    assert r["latency"]["check"]["select1"]["samples"] == 50
    # loopback round trips in milliseconds (in seconds to 4 decimals they read 0.0000 s)
    median = r["latency"]["check"]["select1"]["median"]
    assert f"SELECT 1  {r['latency']['check']['select1']['min'] * 1000:.3f} ms  " \
        f"{median * 1000:.3f} ms" in run.stdout
    assert "Summary" in run.stdout and "PASS" in run.stdout


def test_outage_beyond_max_outage_ends_run_and_still_reports(make_lab, run_ptor):
    lab = make_lab("sync")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--failover-command",
                   lab_command(lab, "stop-node", "node1"), "--max-outage", "2",
                   "--rto-conn-timeout", "0.5", *COMMON)
    assert run.code == 1, run
    r = run.report
    assert r["verdict"] == "fail"
    assert r["rto"]["recovered"] is False and r["rto"]["write_seconds"] is None
    assert "max-outage" in r["stop_reason"]
    assert r["validation"]["completed"] is False
    assert "no confirmed primary" in r["validation"]["error"]
    assert "Traceback" not in run.stderr
