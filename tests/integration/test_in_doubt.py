"""In-doubt commits made for real, both ways, and every one resolved (see inflight.py)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_in_doubt_ops_are_resolved_applied_and_not_applied(make_lab, run_ptor):
    workers = 4
    lab = make_lab("sync")
    fault = f"cd {ROOT} && {sys.executable} -m tests.integration.inflight {lab.dir} {workers}"
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers",
                   str(workers), "--warmup-duration", "1", "--failover-after", "0.5",
                   "--observe-after", "1", "--duration", "60", "--full-data-validation",
                   "--failover-command", fault)
    assert run.code == 0, run
    r = run.report
    (record,) = r["faults"]
    assert record["exit_code"] == 0, record
    assert f"terminated {workers} sessions blocked on a lock" in record["output"]
    assert f"killed the primary with {workers} commits waiting" in record["output"]
    # one op per worker in each half: terminated mid-statement (rolled back) and killed
    # while its commit, already flushed locally, waited for replication (kept)
    assert r["ops"]["indeterminate"] == 2 * workers
    assert r["indeterminate"] == {"applied": workers, "not_applied": workers,
                                  "superseded": 0, "unrecorded_applied": 0}
    assert r["rpo"]["lost_acknowledged_ops"] == 0 and r["verdict"] == "pass"
    assert r["validation"]["mismatched_rows"] == 0 and r["anomalies"]["phantom_rows"] == 0
