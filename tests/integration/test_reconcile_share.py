"""A share of the reconciliation in a process of its own (drill/reconcile_share.py) gives the
findings the coordinator's one pass gives, on a real drill's ledger and a real primary whose
rows the test then damages (lost acknowledged writes in every worker, holes, a phantom row,
more examples than the report keeps); a share that cannot import the snapshot (it reached
a standby) leaves its workers to the coordinator, with the same findings."""

import glob
import os
import time

from ptor_harness import schema
from ptor_harness.drill.reconcile_share import (
    SHARE_FROM_OPS,
    ReconcileShare,
    ShareCheck,
    start_share,
)
from ptor_harness.ledger import LedgerSpec
from ptor_harness.verify.validation import confirm_primary, reconcile_run

WORKERS = 4


def findings(spec, ledger, node, identities, dsn=None, full=False, ops=SHARE_FROM_OPS):
    """Reconcile the run against `node`: in-process, or with the higher workers in a share
    that connects to `dsn`."""
    confirmed = confirm_primary([("endpoint", node.dsn())], "ptor", 2.0,
                                time.monotonic() + 10, 5.0)
    share = None
    try:
        if dsn is not None:
            share = start_share(confirmed.conn, ShareCheck(
                spec, dsn, 2.0, 5.0, "ptor", [2, 3], spec.run_id, 64, full, identities,
                confirmed.identity, False, 2), ops)
        found = reconcile_run(confirmed.conn, ledger, "ptor", WORKERS, spec.run_id, 64, full,
                              identities, confirmed.identity, ops_per_transaction=2,
                              share=share)
    finally:
        confirmed.conn.close()
    return found, share


def test_a_share_of_the_workers_beside_the_coordinator_finds_what_one_pass_finds(
        make_lab, run_ptor, caplog):
    lab = make_lab("async")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers",
                   str(WORKERS), "--warmup-duration", "0", "--ops-per-worker", "1500",
                   "--duration", "60", "--ops-per-transaction", "2", "--expect", "any")
    assert run.code == 0, run
    primary, standby = lab.nodes["node1"], lab.nodes["node2"]
    for worker in range(WORKERS):  # rows whose acknowledged writes are now lost: holes
        table = schema.worker_table("ptor", worker)
        primary.query(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                      "ORDER BY id LIMIT 4)")
    primary.query(f"INSERT INTO {schema.worker_table('ptor', 3)} (id, last_seq, payload, "
                  "written_at) VALUES (999999, 1, 'x', now())")  # a phantom, in the share
    (path,) = glob.glob(os.path.join(run.out_dir, "*", "ledger.sqlite"))
    spec = LedgerSpec(run.report["run_id"], None, "ptor", path, True)
    ledger = spec.open()
    try:
        identities = ledger.identities()
        one_pass, _ = findings(spec, ledger, primary, identities)
        shared, share = findings(spec, ledger, primary, identities, primary.dsn())
        assert share is not None and share.child.process.exitcode == 0
        assert shared.as_dict() == one_pass.as_dict()
        full_pass, _ = findings(spec, ledger, primary, identities, full=True)
        full_shared, _ = findings(spec, ledger, primary, identities, primary.dsn(), full=True)
        assert full_shared.as_dict() == full_pass.as_dict()
        # the share reached a standby: no snapshot there; its workers are reconciled here
        fallback, share = findings(spec, ledger, primary, identities, standby.dsn())
        assert share is not None and fallback.as_dict() == one_pass.as_dict()
        assert "the share of the reconciliation beside the coordinator's failed" in caplog.text
        # a small ledger gets no share
        assert findings(spec, ledger, primary, identities, primary.dsn(),
                        ops=SHARE_FROM_OPS - 1)[1] is None
        # nor does a drill of one worker, which the share would take whole
        lone = ShareCheck(spec, primary.dsn(), 2.0, 5.0, "ptor", [0], spec.run_id, 64, False,
                          identities, None, False, 2)
        assert start_share(None, lone, SHARE_FROM_OPS) is None
    finally:
        ledger.close()
    f = one_pass
    in_order = [example["worker"] for example in f.lost_examples]
    assert f.lost_total >= 4 * WORKERS and in_order == sorted(in_order), f.lost_examples
    assert len(f.lost_examples) == 10 and f.holes > 0 and f.phantom_rows == 1
    assert f.lost_transactions > 0 and f.rows_checked > 0
    assert f.phantom_examples == [{"worker": 3, "key": 999999, "last_seq": 1}]
    assert isinstance(share, ReconcileShare)
