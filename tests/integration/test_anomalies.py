"""Anomaly classes produced for real: split brain on a pair with no fencing, and
resurrected rows (lost acknowledged deletes) when an async standby that fell behind is
promoted."""

import os
import sqlite3

import pytest

from .conftest import lab_command


def test_split_brain_writes_are_caught(make_lab, run_ptor):
    """The standby is promoted while the old primary stays writable, and the clients'
    DSN reaches either (libpq load_balance_hosts=random): both accept writes."""
    lab = make_lab("sync")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn() + " load_balance_hosts=random",
                   "--init", "--parallel-workers", "4", "--warmup-duration", "1",
                   "--duration", "6", "--lab-dir", lab.dir, "--fault", "split-brain:1",
                   "--full-data-validation")
    assert run.code == 1, run
    r = run.report
    (fault,) = r["faults"]
    assert fault["exit_code"] == 0 and "still a writable primary" in fault["output"]
    assert "sessions did not spread" not in fault["output"]
    assert r["verdict"] == "fail"
    assert r["anomalies"]["split_brain_writes"] > 0
    example = r["anomalies"]["split_brain_examples"][0]
    assert example["acknowledged_at"] > example["newer_primary_since"]
    assert any("split brain writes" in reason for reason in r["verdict_reasons"])
    # whichever primary reconciliation reached, the other one's writes are missing on it
    assert r["rpo"]["lost_acknowledged_ops"] > 0 or r["anomalies"]["phantom_rows"] > 0


def test_lost_deletes_are_resurrected_rows(make_lab, run_ptor):
    """An async standby stops while the load goes on; then it is promoted: the deletes
    acknowledged meanwhile are undone, so rows they deleted are back."""
    lab = make_lab("async")
    failover = (lab_command(lab, "stop-node", "node2") + " && sleep 3 && "
                + lab_command(lab, "failover"))
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "3",
                   "--insert-percent", "40", "--update-percent", "20",
                   "--delete-percent", "40", "--warmup-duration", "2", "--failover-after",
                   "0", "--observe-after", "1", "--duration", "40",
                   "--full-data-validation", "--failover-command", failover)
    assert run.code == 1, run
    r = run.report
    lost = r["rpo"]["lost_by_kind"]
    assert lost["delete"] > 0
    # a lost delete whose row's earlier version was kept shows as the row being back; one
    # whose insert was lost with it (a key born and deleted after the cut) leaves no row
    assert 0 < r["anomalies"]["resurrected_rows"] <= lost["delete"]
    example = r["anomalies"]["resurrected_examples"][0]
    assert example["deleted_by_seq"] > example["row_last_seq"]
    assert r["anomalies"]["holes"] == 0 and r["anomalies"]["split_brain_writes"] == 0


def test_a_frozen_primary_never_hangs_the_drill(make_lab, run_ptor):
    """The primary's processes are SIGSTOPped (statements never return, its kernel keeps
    TCP alive, so neither statement_timeout nor keepalives end them) and the standby is
    promoted: each worker's op is cut after statement-timeout + rto-conn-timeout, ends in
    doubt, and the workers go on on the new primary."""
    workers = 3
    lab = make_lab("sync")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers",
                   str(workers), "--warmup-duration", "1", "--duration", "30",
                   "--observe-after", "1", "--statement-timeout", "2", "--rto-conn-timeout",
                   "1", "--lab-dir", lab.dir, "--fault", "hang-primary:1",
                   "--full-data-validation", timeout=120)
    assert run.code == 0, run
    r = run.report
    assert "froze node1" in r["faults"][0]["output"]
    # the probe's SELECT 1 was cut after rto-conn-timeout (1 s), before the workers' ops
    # (cut at statement-timeout + rto-conn-timeout, 2 + 1 s)
    assert 0.9 <= r["rto"]["detection_seconds"] < 2.0
    assert 0.9 <= r["windows"][0]["probe"]["first_failure"] - r["faults"][0]["started_at"] < 2.0
    assert r["rto"]["recovered"] and r["rto"]["write_seconds"] < 10.0
    assert r["ops"]["indeterminate"] == workers  # one frozen op per worker
    resolved = r["indeterminate"]
    assert resolved["applied"] + resolved["not_applied"] == workers
    assert r["servers"]["primary_after"]["port"] == lab.nodes["node2"].port
    # the lock's session on the frozen node looked alive; the lock followed the primary
    assert r["lock"]["retaken"] >= 1 and r["lock"]["lost_to"] is None
    assert r["rpo"]["lost_acknowledged_ops"] == 0 and r["verdict"] == "pass"
    # the lab promoted node2 while the clients still waited on the frozen node: the
    # outage's phases follow one another from the first client error (the promotion's
    # read "-1.846 s") and add up to the fault's time to the first acknowledged write
    a, fault = r["anatomy"], r["faults"][0]
    promoted = next(e for e in a["events"] if e["name"] == "standby promoted")
    assert fault["started_at"] < promoted["at"] <= fault["ended_at"] + 0.2, (promoted, fault)
    assert promoted["seconds_after_fault"] < a["detection_seconds"]
    assert a["promotion_seconds"] == 0.0
    # the probe failed at its 1 s bound, the workers' ops at theirs (3 s): held between
    assert 1.5 <= a["held_seconds"] <= 2.5, a
    assert a["detection_seconds"] + a["promotion_seconds"] + a["held_seconds"] + \
        a["routing_seconds"] + a["first_commit_seconds"] == \
        pytest.approx(r["rto"]["injection_to_first_ok_seconds"], abs=1e-6)
    assert f"node2 at 127.0.0.1:{lab.nodes['node2'].port} " in " ".join(r["account"])
    assert f"became the primary {promoted['seconds_after_fault']:.2f} s after the fault, " \
        "before any client saw an error" in " ".join(r["account"])
    # the workers' ops in flight were held until the bound this test set (2 s + 1 s), as
    # the ledger's own rows show, while the probe's new connection wrote sooner: said so
    with sqlite3.connect(os.path.join(r["run_dir"], "ledger.sqlite")) as ledger:
        held = [end - start for start, end in ledger.execute(
            "SELECT t_start, t_end FROM ledger_op WHERE outcome = 'indeterminate'")]
    assert len(held) == workers and min(held) >= 2.9, held
    assert r["rto"]["probe_seconds"] + 1.0 <= r["rto"]["write_seconds"], r["rto"]
    assert "the workers' writes in flight were held on the old primary until their bound, " \
        "statement-timeout 2 s plus rto-conn-timeout 1 s, cut them" in " ".join(r["account"])
