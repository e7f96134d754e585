"""Loss that must be seen: an async standby falls behind, then becomes the primary.

Ground truth is computed independently of ptor: the old primary's data directory is
started on its own afterwards and its rows are diffed with the new primary's.
"""

from ptor_harness.lab.pg import Node

from .conftest import free_port_base, lab_command


def worker_ids(node: Node, workers: int) -> dict:
    return {w: {row[0] for row in node.query(f"SELECT id FROM ptor.worker_{w}")}
            for w in range(workers)}


def test_async_standby_loss_is_reported_and_matches_ground_truth(make_lab, run_ptor):
    workers = 3
    lab = make_lab("async")
    failover = (lab_command(lab, "stop-node", "node2") + " && sleep 3 && "
                + lab_command(lab, "failover"))
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init",
                   "--parallel-workers", str(workers), "--insert-percent", "100",
                   "--update-percent", "0", "--delete-percent", "0",
                   "--warmup-duration", "1", "--failover-after", "1", "--observe-after", "1.5",
                   "--duration", "40", "--full-data-validation",
                   "--failover-command", failover)
    assert run.code == 1, run  # acknowledged data was lost: the drill fails
    r = run.report
    assert r["verdict"] == "fail"
    lost = r["rpo"]["lost_acknowledged_ops"]
    assert lost > 0
    assert r["rpo"]["lost_by_kind"]["insert"] == lost
    assert r["rpo"]["window_seconds"] > 0
    assert r["anomalies"]["holes"] == 0  # a lost suffix, not a hole
    assert r["validation"]["completed"] is True

    # ground truth: bring the old primary's data up on its own and diff
    old = lab.nodes["node1"]
    old.port = free_port_base(1)
    old.write_auto_conf({})
    old.start()
    new = lab.nodes["node2"]
    old_ids, new_ids = worker_ids(old, workers), worker_ids(new, workers)
    diff = sum(len(old_ids[w] - new_ids[w]) for w in range(workers))
    in_doubt = r["ops"]["indeterminate"]
    assert diff > 0
    print(f"ground truth diff={diff} in_doubt={in_doubt} reported lost={lost}")
    assert diff - in_doubt <= lost <= diff, (diff, in_doubt, lost)
