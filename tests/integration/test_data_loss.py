"""Loss that must be counted exactly, in every way a failover loses data.

ptor's default 50/30/20 mix goes on against the new primary, so many keys whose versions
were lost are overwritten or deleted there before the final state is read: only the version
chain and the worker's order show those losses. Ground truth is not ptor's: the old
primary's own WAL, decoded from its data directory (started on its own after a crash), past
the switch point in the new primary's timeline history (groundtruth.py).
"""

import os

import pytest

from ptor_harness.ledger import LedgerSpec
from ptor_harness.ops import OK

from .conftest import lab_command
from .groundtruth import (
    check_against_truth,
    commits_of,
    failover_command,
    keep_decodable_history,
    lost_ops,
    placeable,
    switch_point,
    truth_and_report,
)

BEHIND = "stop-node node2; sleep 3; failover"  # an async standby falls behind, then wins
# name: (lab mode, failover steps, ledger, async repo mode, lost commits expected)
SCENARIOS = {
    "async-behind": ("async", BEHIND, "sqlite", False, "many"),
    "async-behind-async-repo": ("async", BEHIND, "sqlite", True, "many"),
    "async-behind-pg-repo": ("async", BEHIND, "postgresql", False, "many"),
    # the repo goes away too: async repo mode spills, then replays
    "async-behind-spill": ("async", "stop-node repo; " + BEHIND + "; start-node repo",
                           "postgresql", True, "many"),
    # an async primary crashes under load (repmgr's default): what was in flight to the
    # standby is lost, often nothing
    "async-crash": ("async", "failover", "sqlite", False, "any"),
    "sync-crash": ("sync", "failover", "sqlite", False, "none"),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_lost_count_equals_the_old_primarys_wal(make_lab, run_ptor, name):
    mode, steps, ledger, async_repo, expected = SCENARIOS[name]
    lab = make_lab(mode)
    keep_decodable_history(lab)
    run, acknowledged, in_doubt = truth_and_report(
        lab, run_ptor, ledger, async_repo, "--primary-pgdsn", lab.primary_dsn(),
        "--parallel-workers", "4", "--failover-command", failover_command(lab, steps))
    check_against_truth(name, run, acknowledged, in_doubt)
    rpo = run.report["rpo"]
    if expected == "none":
        assert not acknowledged and rpo["window_seconds"] == 0
    if expected != "many":
        return
    assert len(acknowledged) > 1000, "the drill must lose thousands of acknowledged ops"
    if async_repo and ledger == "postgresql":
        assert run.report["recorder"]["spilled_rows"] > 0
    # the default mix overwrites lost versions after the failover: the final state alone
    # would have missed these
    assert rpo["lost_by_evidence"]["version_chain"] > 0
    assert rpo["lost_by_evidence"]["worker_order"] > 0
    # the RPO window spans the lost acknowledgements: the 3 s the standby was away, which
    # began as the failover command started and ended with the kill
    first, last = min(op.t_end for op in acknowledged), max(op.t_end for op in acknowledged)
    assert (rpo["first_lost_ack_at"], rpo["last_lost_ack_at"]) == (first, last)
    assert rpo["window_seconds"] == pytest.approx(last - first) and last - first >= 2.5
    assert -1.5 < rpo["first_lost_before_fault_seconds"] < 0.5
    assert rpo["last_lost_before_fault_seconds"] <= -2.5
    # the anatomy says why: the standby stopped streaming after the command began and
    # before writes failed, as the primary's samples saw it (within their resolution of
    # the first acknowledgement the WAL says the standby never had), and none streamed
    # from then on; the account says so
    anatomy = run.report["anatomy"]
    stopped = [e for e in anatomy["events"] if e["name"] == "standby stopped streaming"
               and e["seconds_after_fault"] >= 0]
    assert stopped, anatomy["events"]
    assert stopped[-1]["after"] - 0.2 <= first <= stopped[-1]["at"] + 0.2, (stopped, first)
    assert anatomy["no_standby_since"] == stopped[-1]["at"]
    assert "when writes began to fail, no standby was streaming" in " ".join(
        run.report["account"])


def test_a_delete_heavy_load_is_counted_exactly(make_lab, run_ptor):
    """Half inserts, half deletes: most keys lost in the failover were inserted and deleted
    on the old primary after the cut, so no row shows either, and the final state and the
    version chain place few of the losses. The worker's order places them (seen: 8,564 of
    9,046), or, where it leaves a deleted key open at the cut, the other workers' ops on
    that server by time (commit order); what nothing places is listed. The count still
    equals the old primary's WAL."""
    lab = make_lab("async")
    keep_decodable_history(lab)
    run, acknowledged, in_doubt = truth_and_report(
        lab, run_ptor, "sqlite", False, "--primary-pgdsn", lab.primary_dsn(),
        "--parallel-workers", "4", "--insert-percent", "50", "--update-percent", "0",
        "--delete-percent", "50", "--failover-command", failover_command(lab, BEHIND))
    check_against_truth("delete-heavy", run, acknowledged, in_doubt)
    evidence = run.report["rpo"]["lost_by_evidence"]
    assert len(acknowledged) > 1000
    assert evidence["worker_order"] + evidence["commit_order"] > evidence["final_state"], \
        evidence


def test_split_brain_loss_equals_the_old_primarys_wal(make_lab, run_ptor):
    """The standby is promoted while the old primary stays writable and the workers'
    sessions spread over both: what the old primary acknowledged after the promotion is
    not in the new primary's history. The drill's own check may reach either primary, so
    `ptor reconcile` then checks the run against the new one."""
    lab = make_lab("sync")
    keep_decodable_history(lab)
    drill = run_ptor("--primary-pgdsn", lab.primary_dsn() + " load_balance_hosts=random",
                     "--init", "--parallel-workers", "4", "--warmup-duration", "1",
                     "--duration", "6", "--lab-dir", lab.dir, "--fault", "split-brain:1")
    assert drill.code == 1 and drill.report["anomalies"]["split_brain_writes"] > 0, drill
    # the node observer saw both nodes answer as primary at once, for as long as it lasted
    both = drill.report["anatomy"]["two_primaries"]
    assert both and all(sorted(x["nodes"]) == ["node1", "node2"] for x in both), both
    assert sum(x["seconds"] for x in both) > 1.0, both
    new = lab.nodes["node2"]
    later = run_ptor("reconcile", "--run", drill.report["run_id"], "--primary-pgdsn",
                     new.dsn(), "--full-data-validation")
    r = later.report
    assert r["servers"]["primary_after"]["port"] == new.port, later
    reader = LedgerSpec(r["run_id"], None, "ptor", os.path.join(r["run_dir"], "ledger.sqlite"),
                        durable=True).open()
    try:
        truth = lost_ops(commits_of(lab.nodes["node1"]), switch_point(new, 2),
                         reader.ops_by_seq)
    finally:
        reader.close()
    acknowledged = [op for op in truth if op.outcome == OK]
    print(f"\n[split-brain] old primary committed {len(truth)} ptor ops after the "
          f"promotion, {len(acknowledged)} acknowledged; ptor reconcile: lost "
          f"{r['rpo']['lost_acknowledged_ops']} by {r['rpo']['lost_by_evidence']}, "
          f"unverifiable {r['rpo']['unverifiable_ops']}, "
          f"split-brain writes {r['anomalies']['split_brain_writes']}")
    assert acknowledged, "the old primary acknowledged writes after the promotion"
    assert r["rpo"]["lost_acknowledged_ops"] == len(placeable(r["rpo"], acknowledged))
    assert r["anomalies"]["split_brain_writes"] == drill.report["anomalies"][
        "split_brain_writes"]


def test_cancelled_sync_waits_are_the_cause_of_every_loss(make_lab, run_ptor):
    """A synchronous pair whose standby goes away: commits wait for it, and cancel requests
    end the waits (as a driver's query timeout or a pooler would); PostgreSQL acknowledges
    each with its warning that the commit is local only. Then the primary is killed and the
    stale standby promoted. The count equals the old primary's WAL, and every lost op
    carries that cause, which ptor captured from the acknowledgement. The lab's own
    faults stop the standby and cancel the waits (what `--fault stop-sync-standby,
    cancel-sync-waits=2.5` does in a drill)."""
    lab = make_lab("sync")
    keep_decodable_history(lab)
    command = " && ".join([lab_command(lab, "fault", "stop-sync-standby"),
                           lab_command(lab, "fault", "cancel-sync-waits=2.5"),
                           lab_command(lab, "failover")])
    run, acknowledged, in_doubt = truth_and_report(
        lab, run_ptor, "sqlite", False, "--primary-pgdsn", lab.primary_dsn(),
        "--parallel-workers", "4", "--failover-command", command)
    check_against_truth("sync-cancelled", run, acknowledged, in_doubt)
    rpo = run.report["rpo"]
    assert len(acknowledged) > 100, "the cancelled waits must have acknowledged commits"
    assert rpo["lost_by_cause"]["sync_wait_cancelled"] == rpo["lost_acknowledged_ops"]
    assert all(e["cause"] == "sync_wait_cancelled" for e in rpo["examples"])


def test_synchronous_commit_off_beside_a_synchronous_standby(make_lab, run_ptor):
    """With synchronous_commit off a commit is acknowledged before its WAL is even written,
    so a crash loses the last acknowledged commits although a synchronous standby streams:
    they never reached the primary's disk, nor the standby. Ground truth, by the test's
    own SQL (an insert-only load: one row per op, never touched again): every acknowledged
    INSERT in the ledger whose row the new primary does not hold. ptor must count exactly
    those, and put them down to the setting (they read "not explained, since a
    synchronous standby was streaming")."""
    import sqlite3

    lab = make_lab("sync")
    old = lab.nodes[lab.named("primary")]
    for setting in ("synchronous_commit = off", "wal_writer_delay = '10s'",
                    "wal_writer_flush_after = '1GB'"):  # so the crash finds WAL unwritten
        old.query(f"ALTER SYSTEM SET {setting}")
    old.query("SELECT pg_reload_conf()")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "4",
                   "--warmup-duration", "1", "--duration", "4", "--observe-after", "1",
                   "--insert-percent", "100", "--update-percent", "0", "--delete-percent",
                   "0", "--lab-dir", lab.dir, "--fault", "kill-primary:1.5")
    r = run.report
    assert r["servers"]["synchronous_commit"] == "off", r["servers"]
    assert r["anatomy"]["replication_at_fault"][0]["sync_state"] == "sync"
    lab.reload()  # the fault moved the primary
    new = lab.nodes[lab.named("primary")]
    assert new.port != old.port and new.port == r["servers"]["primary_after"]["port"]
    db = sqlite3.connect(os.path.join(r["run_dir"], "ledger.sqlite"))
    try:
        acknowledged = set(db.execute("SELECT worker, key FROM ledger_op WHERE outcome = 'ok' "
                                      "AND kind = 'I'"))
    finally:
        db.close()
    held = {(w, key) for w in range(4)
            for (key,) in new.query(f"SELECT id FROM ptor.worker_{w}")}
    missing = acknowledged - held
    print(f"\n[synchronous_commit off] {len(acknowledged)} acknowledged inserts, "
          f"{len(missing)} missing on the new primary; ptor: "
          f"{r['rpo']['lost_acknowledged_ops']} lost, by cause {r['rpo']['lost_by_cause']}")
    assert missing, "the crash must lose the commits whose WAL was never written"
    assert r["rpo"]["lost_acknowledged_ops"] == len(missing)
    assert r["rpo"]["lost_by_cause"]["synchronous_commit_off"] == len(missing)
    assert run.code == 1 and r["verdict"] == "fail"
    assert "since synchronous_commit was off" in " ".join(r["account"])
