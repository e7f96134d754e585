"""The metrics pass in a process of its own (drill/metrics_pass.py) gives what the pass in the
coordinator gives, on a real drill's ledger; a child that cannot read the ledger leaves the
pass to the coordinator, with the same result."""

import glob
import os

from ptor_harness.drill.metrics_pass import CHILD_FROM_OPS, MetricsPass, ledger_metrics
from ptor_harness.ledger import LedgerSpec


def figures(metrics) -> tuple:
    """Everything the report takes from RunMetrics, in comparable form."""
    return ({w: vars(s) for w, s in metrics.workers.items()},
            {second: (b[0], b[1], b[2], b[3].packed()) for second, b in metrics.seconds.items()},
            metrics.windows(), metrics.latency.packed())


def test_the_metrics_pass_beside_the_reconciliation_matches_the_one_in_process(
        make_lab, run_ptor, tmp_path, caplog):
    lab = make_lab("async")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "3",
                   "--warmup-duration", "0", "--ops-per-worker", "3000", "--duration", "60",
                   "--ops-per-transaction", "2", "--expect", "any")
    assert run.code == 0, run
    run_id = run.report["run_id"]
    (path,) = glob.glob(os.path.join(run.out_dir, "*", "ledger.sqlite"))
    spec = LedgerSpec(run_id, None, "ptor", path, True)
    ledger = spec.open()
    try:
        expected = figures(ledger_metrics(ledger, 3, 2))
        beside = MetricsPass(spec, ledger, 3, 2, CHILD_FROM_OPS)
        assert beside.child is not None  # a ledger this large gets a process of its own
        assert figures(beside.result()) == expected
        assert beside.child.process.exitcode == 0
        # a child that cannot open the ledger (a folder where its file should be)
        broken = LedgerSpec(run_id, None, "ptor", str(tmp_path), True)
        failed = MetricsPass(broken, ledger, 3, 2, CHILD_FROM_OPS)
        assert figures(failed.result()) == expected
        assert "the metrics pass beside the reconciliation failed" in caplog.text
        assert "cannot be used" in caplog.text  # the child's reason, passed on
        small = MetricsPass(broken, ledger, 3, 2, CHILD_FROM_OPS - 1)
        assert small.child is None and figures(small.result()) == expected
    finally:
        ledger.close()
    assert sum(s["ok"] for s in expected[0].values()) == run.report["ops"]["ok"] > 0
