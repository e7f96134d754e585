"""In-doubt commits made for real, both ways, and every one resolved (see inflight.py)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_in_doubt_ops_are_resolved_applied_and_not_applied(make_lab, run_ptor):
    workers = 4
    lab = make_lab("sync")
    run = run_inflight(lab, run_ptor, workers)
    r = run.report
    # one op per worker in each half: terminated mid-statement (rolled back) and killed
    # while its commit, already flushed locally, waited for replication (kept)
    assert r["ops"]["indeterminate"] == 2 * workers
    assert r["indeterminate"] == {"applied": workers, "not_applied": workers,
                                  "superseded": 0, "unrecorded_applied": 0}
    assert r["rpo"]["lost_acknowledged_ops"] == 0 and r["verdict"] == "pass"
    assert r["validation"]["mismatched_rows"] == 0 and r["anomalies"]["phantom_rows"] == 0


def test_a_transaction_is_in_doubt_only_at_its_commit(make_lab, run_ptor):
    """The same faults with 4 ops per transaction: a session terminated before its COMMIT
    was sent rolled its transaction back for certain (failed, every op of it, none in
    doubt); a COMMIT killed while it waited for replication leaves its whole transaction
    in doubt, and every op of it is found applied."""
    workers, ops = 4, 4
    lab = make_lab("sync")
    run = run_inflight(lab, run_ptor, workers, "--ops-per-transaction", str(ops))
    r = run.report
    t = r["transactions"]
    assert t["indeterminate"] == workers and t["failed"] >= workers, t
    assert r["ops"]["indeterminate"] == ops * workers and r["ops"]["failed"] == ops * t["failed"]
    assert r["indeterminate"] == {"applied": ops * workers, "not_applied": 0,
                                  "superseded": 0, "unrecorded_applied": 0}
    assert r["anomalies"]["partial_transactions"] == 0
    assert r["rpo"]["lost_acknowledged_ops"] == 0 and r["verdict"] == "pass"


def run_inflight(lab, run_ptor, workers, *args):
    fault = f"cd {ROOT} && {sys.executable} -m tests.integration.inflight {lab.dir} {workers}"
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers",
                   str(workers), "--warmup-duration", "1", "--failover-after", "0.5",
                   "--observe-after", "1", "--duration", "60", "--full-data-validation",
                   "--failover-command", fault, *args)
    assert run.code == 0, run
    (record,) = run.report["faults"]
    assert record["exit_code"] == 0, record
    assert f"terminated {workers} sessions blocked on a lock" in record["output"]
    assert f"killed the primary with {workers} commits waiting" in record["output"]
    return run
