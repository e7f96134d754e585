"""Loss that must be counted exactly: an async standby falls behind, then becomes the primary.

ptor's default 50/30/20 mix goes on against the new primary, so many keys whose versions
were lost are overwritten or deleted there before the final state is read: only the version
chain and the worker's order show those losses. Ground truth is not ptor's: the old
primary's own WAL, decoded from its data directory started on its own (groundtruth.py),
past the switch point in the new primary's timeline history.
"""

import os

import pytest

from ptor_harness.ledger import LedgerSpec
from ptor_harness.ops import KIND_NAMES, OK

from .conftest import lab_command, ledger_args
from .groundtruth import commits_of, keep_decodable_history, lost_ops, switch_point


@pytest.mark.parametrize("ledger, repo_mode", [("sqlite", "sync"), ("sqlite", "async"),
                                               ("postgresql", "sync")])
def test_async_failover_loss_equals_the_old_primarys_wal(make_lab, run_ptor, ledger,
                                                         repo_mode):
    workers = 4
    lab = make_lab("async")
    keep_decodable_history(lab)
    failover = (lab_command(lab, "stop-node", "node2") + " && sleep 3 && "
                + lab_command(lab, "failover"))
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init",
                   "--parallel-workers", str(workers), "--warmup-duration", "1",
                   "--failover-after", "1", "--observe-after", "3", "--duration", "40",
                   "--full-data-validation", "--failover-command", failover,
                   *ledger_args(lab, ledger, repo_mode))
    assert run.code == 1, run  # acknowledged data was lost: the drill fails
    r = run.report
    assert r["verdict"] == "fail" and r["validation"]["completed"] is True

    new = lab.nodes["node2"]
    after = r["servers"]["primary_after"]
    assert after["port"] == new.port and after["timeline"] == 2
    switch = switch_point(new, after["timeline"])
    spec = LedgerSpec(r["run_id"], lab.repo_dsn() if ledger == "postgresql" else None,
                      "ptor", os.path.join(r["run_dir"], "ledger.sqlite"), durable=True)
    reader = spec.open()
    try:
        truth = lost_ops(commits_of(lab.nodes["node1"]), switch, reader.ops_by_seq)
    finally:
        reader.close()
    acknowledged = [op for op in truth if op.outcome == OK]
    in_doubt = [op for op in truth if op.in_doubt]
    by_kind = {name: sum(1 for op in acknowledged if op.kind == kind)
               for kind, name in KIND_NAMES.items()}
    rpo = r["rpo"]
    print(f"\n[{ledger}/{repo_mode}] WAL past the switch point: {len(truth)} commits of "
          f"ptor ops, {len(acknowledged)} acknowledged ({by_kind}), {len(in_doubt)} in "
          f"doubt; ptor: lost {rpo['lost_acknowledged_ops']} {rpo['lost_by_kind']} by "
          f"{rpo['lost_by_evidence']}, unverifiable {rpo['unverifiable_ops']}, ops ok "
          f"{r['ops']['ok']}, in doubt {r['ops']['indeterminate']}")
    assert len(acknowledged) > 1000, "the drill must lose thousands of acknowledged ops"
    assert rpo["lost_acknowledged_ops"] == len(acknowledged)
    assert rpo["lost_by_kind"] == by_kind
    # the default mix overwrites lost versions after the failover: the final state alone
    # would have missed these
    assert rpo["lost_by_evidence"]["version_chain"] > 0
    assert rpo["lost_by_evidence"]["worker_order"] > 0
    assert r["indeterminate"]["not_applied"] >= len(in_doubt)
    assert r["anomalies"]["holes"] == 0 and r["anomalies"]["phantom_rows"] == 0
    # the RPO window spans the lost acknowledgements: the 3 s the standby was away, which
    # began as the failover command started (stop-node) and ended with the kill
    first, last = min(op.t_end for op in acknowledged), max(op.t_end for op in acknowledged)
    assert (rpo["first_lost_ack_at"], rpo["last_lost_ack_at"]) == (first, last)
    assert rpo["window_seconds"] == pytest.approx(last - first) and last - first >= 2.5
    assert -1.5 < rpo["first_lost_before_fault_seconds"] < 0.5
    assert rpo["last_lost_before_fault_seconds"] <= -2.5
