"""--ops-per-transaction on real servers: a lost transaction is counted once, its ops each,
and the count equals the old primary's WAL (groundtruth.py), where one COMMIT record holds
the rows of all the ops one ptor transaction changed."""

from collections import defaultdict

from ptor_harness.ops import INSERT, KIND_NAMES, OK

from .groundtruth import (
    changes_of,
    drill,
    failover_command,
    keep_decodable_history,
    lost_changes,
    switch_point,
)

OPS = 4


def test_lost_transactions_equal_the_commits_of_the_old_primarys_wal(make_lab, run_ptor):
    """An async pair under the default mix, 4 ops per transaction: the standby is stopped
    3 s while the load goes on, then the primary is killed and the stale standby
    promoted (as in test_data_loss.py)."""
    lab = make_lab("async")
    keep_decodable_history(lab)
    run, spec = drill(lab, run_ptor, "sqlite", False, "--primary-pgdsn", lab.primary_dsn(),
                      "--parallel-workers", "4", "--ops-per-transaction", str(OPS),
                      "--failover-command",
                      failover_command(lab, "stop-node node2; sleep 3; failover"))
    reader = spec.open()
    try:
        named = lost_changes(changes_of(lab.nodes["node1"]), switch_point(lab.nodes["node2"], 2),
                             reader.ops_by_seq)
        ledger = {w: list(reader.ops_by_seq(w)) for w in range(4)}
    finally:
        reader.close()
    r = run.report
    rpo = r["rpo"]
    # the WAL's transactions past the switch point, each with the ledger ops it holds
    by_xid = defaultdict(list)
    for change, op in named:
        by_xid[change.xid].append(op)
    acknowledged = {}
    in_doubt = 0
    for xid, ops in by_xid.items():
        # one COMMIT holds the ops of one ptor transaction (worker, (seq - 1) // OPS),
        # sharing one outcome
        (unit,) = {(op.worker, (op.seq - 1) // OPS) for op in ops}
        (outcome,) = {op.outcome for op in ops}
        if outcome == OK:
            acknowledged[unit] = ops
        else:
            assert outcome is None or outcome == "indeterminate", (xid, ops)
            in_doubt += 1
    lost_ops = [op for ops in acknowledged.values() for op in ops]
    print(f"\n[transactions] WAL past the switch point: {len(by_xid)} transactions of ptor, "
          f"{len(acknowledged)} acknowledged ({len(lost_ops)} ops), {in_doubt} in doubt; "
          f"ptor: lost {rpo['lost_acknowledged_transactions']} transactions, "
          f"{rpo['lost_acknowledged_ops']} ops; transactions {r['transactions']}")
    assert len(acknowledged) > 200, "the drill must lose hundreds of transactions"
    assert rpo["lost_acknowledged_transactions"] == len(acknowledged)
    assert rpo["lost_acknowledged_ops"] == len(lost_ops)
    assert rpo["lost_by_kind"] == {name: sum(1 for op in lost_ops if op.kind == kind)
                                   for kind, name in KIND_NAMES.items()}
    # the lost ops are exactly those of the lost transactions that changed a row: the
    # ledger's other ops of each transaction matched nothing (an update or delete of a
    # key whose row was gone), none of them in the WAL
    for (worker, index), ops in acknowledged.items():
        members = [op for op in ledger[worker] if (op.seq - 1) // OPS == index]
        assert len(members) == OPS and {op.outcome for op in members} == {OK}, members
        changed = {op.seq for op in members if op.kind == INSERT or op.rows}
        assert changed == {op.seq for op in ops}, (members, ops)
    assert r["anomalies"]["partial_transactions"] == 0
    assert r["anomalies"]["holes"] == 0 and r["anomalies"]["phantom_rows"] == 0
    # the account names the transactions the clients were told committed, as the WAL has
    assert f"{len(lost_ops):,} acknowledged writes ({len(acknowledged):,} transactions of " \
        f"{OPS} ops) are lost" in " ".join(r["account"])
    # every op of a transaction shares its outcome (an op after a failed one is never
    # sent, and failed too), so each count of ops is OPS times that of transactions
    t = r["transactions"]
    assert t["ops_per_transaction"] == OPS and t["failed"] + t["indeterminate"] > 0, t
    for outcome in ("ok", "failed", "indeterminate"):
        assert t[outcome] * OPS == r["ops"][outcome], (t, r["ops"])
    assert (run.code, r["verdict"]) == (1, "fail"), run
