"""Drills on repmgr + repmgrd (Debian's postgresql-15-repmgr): automatic failover with
repmgr's own promote and rejoin, asynchronous (repmgr's default) and synchronous.

Loss on the asynchronous lab is held against ground truth ptor does not compute: the old
primary's own WAL past the switch point in the new primary's timeline history
(groundtruth.py). RTO bounds, from runs on this 2-core machine: a crash is detected after
two 1 s reconnect attempts and promoted after repmgr's 1 s promote check, writes back after
1.5-3.5 s (sync: once the old primary rejoined); bound 20 s for a loaded CI machine.
"""

import os

import pytest

from ptor_harness.lab import pooler
from ptor_harness.lab.repmgr import RepmgrLab

from .anatomy_checks import (
    CANONICAL,
    QUORUM_STAGES,
    check_against_own_observations,
    check_in_order,
)
from .conftest import free_port_base, lab_dir, remove_lab
from .groundtruth import (
    check_against_truth,
    failover_command,
    keep_decodable_history,
    truth_and_report,
)
from .pooler_checks import check_stuck_on_the_demoted_node

BOUND = 20.0


@pytest.fixture(scope="module")
def sync_lab():
    lab = RepmgrLab.up(os.path.join(lab_dir(), "lab"), free_port_base(3), "sync")
    yield lab
    remove_lab(lab)


@pytest.fixture
def async_lab():
    lab = RepmgrLab.up(os.path.join(lab_dir(), "lab"), free_port_base(3), "async")
    yield lab
    remove_lab(lab)


def drill(lab, run_ptor, fault: str, *extra: str):
    lab.wait_settled(120)
    return run_ptor("--primary-pgdsn", lab.primary_dsn(), "--repo-pgdsn", lab.repo_dsn(),
                    "--init", "--parallel-workers", "3", "--warmup-duration", "1",
                    "--duration", "60", "--observe-after", "2", "--lab-dir", lab.dir,
                    "--fault", f"{fault}:1", "--full-data-validation", "--max-write-rto",
                    str(BOUND), *extra)


def check_moved(r: dict, old, new) -> None:
    before, after = r["servers"]["primary_before"], r["servers"]["primary_after"]
    assert (before["port"], after["port"]) == (old.port, new.port)
    assert after["timeline"] == before["timeline"] + 1
    (record,) = r["faults"]
    assert record["exit_code"] == 0 and not record["error"], record
    assert f"{old.name} rejoined as a standby" in record["output"]


@pytest.mark.parametrize("fault", ["kill-primary", "stop-primary", "switchover"])
def test_sync_failover_loses_nothing(sync_lab, run_ptor, fault):
    old = sync_lab.current_primary()
    new = next(n for n in sync_lab.data_nodes() if n.name != old.name)
    run = drill(sync_lab, run_ptor, fault)
    assert run.code == 0, run
    r = run.report
    assert r["verdict"] == "pass"
    assert 0 < r["rto"]["write_seconds"] < BOUND and r["rto"]["recovered"] is True
    assert r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["validation"]["completed"] and r["validation"]["mismatched_rows"] == 0
    check_moved(r, old, new)
    if fault != "switchover":  # a crash: the node observer saw every stage, in order
        check_in_order(r, CANONICAL, QUORUM_STAGES)  # two nodes: the quorum is the old one
        check_against_own_observations(r, new)
        assert (r["anatomy"]["old_primary"], r["anatomy"]["new_primary"]) == (old.name,
                                                                              new.name)
    sync_lab.wait_settled(60)
    assert new.query("SELECT sync_state FROM pg_stat_replication")[0][0] == "quorum"


def test_killing_repmgrd_alone_fails_nothing_over(sync_lab, run_ptor):
    """repmgrd's standbys watch the primary's postgres, not its repmgrd: with only the
    primary's repmgrd killed (restarted 6 s later) nothing may fail over."""
    primary = sync_lab.current_primary()
    run = drill(sync_lab, run_ptor, "kill-manager", "--expect", "no-failover", "--duration",
                "10")
    assert run.code == 0, run
    r = run.report
    assert r["verdict"] == "pass" and r["windows"] == []
    assert r["servers"]["primary_after"]["port"] == primary.port
    assert r["expectation"]["observed"]["primary_changed"] is False
    (record,) = r["faults"]
    assert f"the primary was {primary.name}" in record["output"]
    sync_lab.wait_settled(60)


@pytest.mark.parametrize("name", ["async-crash", "async-behind"])
def test_async_loss_equals_the_old_primarys_wal(async_lab, run_ptor, name):
    """A crash of an asynchronous primary loses what was in flight (often nothing); a
    standby that was away 3 s before the crash and then promoted loses thousands."""
    steps = {"async-crash": "stop-node node1",
             "async-behind": "stop-node node2 --immediate; sleep 3; stop-node node1; "
                             "start-node node2"}[name]
    keep_decodable_history(async_lab)
    run, acknowledged, in_doubt = truth_and_report(
        async_lab, run_ptor, "sqlite", False, "--primary-pgdsn", async_lab.primary_dsn(),
        "--parallel-workers", "4", "--failover-command", failover_command(async_lab, steps))
    check_against_truth(f"repmgr {name}", run, acknowledged, in_doubt)
    if name == "async-behind":
        assert len(acknowledged) > 1000, "the drill must lose thousands of acknowledged ops"
        assert run.report["rpo"]["lost_by_evidence"]["version_chain"] > 0


def test_three_nodes_the_third_follows_the_new_primary(run_ptor):
    """With three nodes, repmgrd elects the most advanced standby and the other one
    follows it (repmgr's follow_command): after the drill both stream from the new
    primary, and the quorum `ANY 1` kept every acknowledged write."""
    lab = RepmgrLab.up(os.path.join(lab_dir(), "lab"), free_port_base(4), "sync", nodes=3)
    try:
        assert lab.node_names == ("node1", "node2", "node3")
        run = drill(lab, run_ptor, "kill-primary")
        assert run.code == 0, run
        r = run.report
        assert r["verdict"] == "pass" and r["rpo"]["lost_acknowledged_ops"] == 0
        new = next(n for n in lab.data_nodes()
                   if n.port == r["servers"]["primary_after"]["port"])
        assert new.name != "node1"
        lab.wait_settled(60)
        standbys = {name for name, in new.query(
            "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")}
        assert standbys == set(lab.node_names) - {new.name}
    finally:
        remove_lab(lab)


def test_pgbouncer_is_repointed_by_repmgrs_promote_command(sync_lab, run_ptor):
    """repmgr's documented pooler pattern: promote_command promotes, then rewrites
    pgbouncer's target and reloads it. Clients see only pgbouncer."""
    pooler.add(sync_lab, "session", "repoint")
    try:
        old = sync_lab.current_primary()
        new = next(n for n in sync_lab.data_nodes() if n.name != old.name)
        assert pooler.target(sync_lab) == old.port
        run = drill(sync_lab, run_ptor, "kill-primary")
        assert run.code == 0, run
        r = run.report
        assert r["scenario"]["primary_pgdsn"].startswith(
            f"host=127.0.0.1 port={sync_lab.state['pooler']['port']} ")
        assert r["verdict"] == "pass" and r["rpo"]["lost_acknowledged_ops"] == 0
        check_moved(r, old, new)
        assert pooler.target(sync_lab) == new.port  # by repmgrd's promote_command
    finally:
        pooler.remove(sync_lab)


def test_unfenced_pgbouncer_leaves_clients_on_the_demoted_node(sync_lab, run_ptor):
    """No repointing (`--pooler-fencing none`): repmgrd promotes the standby, the crashed
    node rejoins as a standby, and pgbouncer still leads there."""
    pooler.add(sync_lab, "session", "none")
    try:
        sync_lab.wait_settled(120)
        old = sync_lab.current_primary()
        new = next(n for n in sync_lab.data_nodes() if n.name != old.name)
        run = run_ptor("--primary-pgdsn", sync_lab.primary_dsn(), "--init",
                       "--parallel-workers", "3", "--warmup-duration", "1", "--duration",
                       "12", "--lab-dir", sync_lab.dir, "--fault", "kill-primary:1",
                       "--full-data-validation")
        check_stuck_on_the_demoted_node(run, sync_lab, old, new)
    finally:
        pooler.remove(sync_lab)


def test_the_repo_server_stops_and_starts_on_a_stack_with_a_manager(sync_lab):
    """`ptor-lab stop-node repo` / `start-node repo` on every stack (the repo is no
    manager's): a drill whose ledger goes away, then `ptor reconcile` once it is back.
    Before, only the streaming lab took them ("no data node 'repo'" here)."""
    import subprocess
    import sys

    import psycopg2

    from .conftest import ptor_env

    def lab_cli(*args):
        return subprocess.run([sys.executable, "-m", "ptor_harness.lab.cli", *args, "--dir",
                               sync_lab.dir, "repo"], capture_output=True, text=True,
                              env=ptor_env(), timeout=120, check=False)

    stopped = lab_cli("stop-node", "--immediate")
    assert stopped.returncode == 0 and stopped.stdout == "stopped repo\n", stopped.stderr
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(sync_lab.repo_dsn(), connect_timeout=2).close()
    started = lab_cli("start-node")
    assert started.returncode == 0 and started.stdout == "started repo\n", started.stderr
    psycopg2.connect(sync_lab.repo_dsn(), connect_timeout=5).close()
