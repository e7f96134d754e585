"""pgbouncer (Debian's) in front of the streaming lab: clients connect only to the pooler.

Fenced (the lab's promote step repoints pgbouncer and reloads it), writes come back and
the RTO includes pgbouncer's reconnect. Unfenced (`--pooler-fencing none`), pgbouncer stays
on the demoted node, which rejoins as a standby: every session lands on a standby. ptor must
then fail the drill, report the stale routing with its duration, stop without hanging, and
still settle every in-doubt op and the loss count, reading the truth from the new primary
the node observer found (the endpoint leads to no primary).
"""

import os

import pytest

from ptor_harness import lock
from ptor_harness.lab import pooler
from ptor_harness.lab.base import wait_until
from ptor_harness.lab.streaming import StreamingLab

from .conftest import free_port_base, lab_dir, remove_lab
from .pooler_checks import check_stuck_on_the_demoted_node


def pooled_lab(fencing: str, pool_mode: str = "session") -> StreamingLab:
    lab = StreamingLab.up(os.path.join(lab_dir(), "lab"), free_port_base(4), "sync")
    try:
        pooler.add(lab, pool_mode, fencing)
    except BaseException:
        remove_lab(lab)
        raise
    return lab


def kill_primary_drill(lab, run_ptor, *extra: str):
    return run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "3",
                    "--warmup-duration", "1", "--observe-after", "2", "--lab-dir", lab.dir,
                    "--fault", "kill-primary:1", "--full-data-validation", *extra)


def test_fenced_pooler_follows_the_promotion(run_ptor):
    for pool_mode in ("session", "transaction"):
        lab = pooled_lab("repoint", pool_mode)
        try:
            port = lab.state["pooler"]["port"]
            assert lab.primary_dsn().startswith(f"host=127.0.0.1 port={port} ")
            assert pooler.target(lab) == lab.nodes["node1"].port
            run = kill_primary_drill(lab, run_ptor, "--duration", "60")
            assert run.code == 0, (run, [c for c in (run.report or {}).get("checks", [])
                                         if c["status"] != "pass"])
            r = run.report
            assert r["verdict"] == "pass" and r["rto"]["recovered"] is True
            assert 0 < r["rto"]["write_seconds"] < 10
            assert r["rpo"]["lost_acknowledged_ops"] == 0
            assert r["validation"]["reconciled_on"] == "endpoint"
            assert r["servers"]["primary_after"]["port"] == lab.nodes["node2"].port
            assert pooler.target(lab) == lab.nodes["node2"].port  # repointed and reloaded
            assert r["anatomy"]["stale_routing"]["standby_sessions"] == 0
        finally:
            remove_lab(lab)


def test_unfenced_pooler_is_stale_routing_and_fails(run_ptor):
    lab = pooled_lab("none")
    try:
        run = kill_primary_drill(lab, run_ptor, "--duration", "12")
        check_stuck_on_the_demoted_node(run, lab, lab.nodes["node1"], lab.nodes["node2"])
    finally:
        remove_lab(lab)


def test_the_drill_lock_holds_and_lets_go_through_transaction_pooling():
    """Behind pgbouncer in transaction mode, consecutive statements of one client may run on
    different server sessions, and a session's state outlives the client that set it. The
    drill lock must still keep a second ptor out while it is held (whichever server
    session the second one's statements land on) and be free once its holder is gone."""
    lab = pooled_lab("repoint", "transaction")
    try:
        dsn = lab.primary_dsn()
        held = lock.acquire(dsn, "primary", "ptor", "run-a", 5, 5)
        try:
            # held in a transaction left open, which holds back no vacuum (no snapshot)
            assert lab.current_primary().query(
                "SELECT state, backend_xmin FROM pg_stat_activity WHERE application_name "
                "= 'ptor-lock run-a'") == [("idle in transaction", None)]
            for attempt in range(20):
                with pytest.raises(lock.LockHeld, match="run run-a"):
                    lock.acquire(dsn, "primary", "ptor", f"run-b{attempt}", 5, 5)
        finally:
            held.close()
        # pgbouncer ends the server session a vanished client left in a transaction as soon
        # as it notices the client is gone (LabError if the lock outlives its holder)
        wait_until("the lock to be free once its holder is gone",
                   lambda: lock.acquire(dsn, "primary", "ptor", "run-c", 5, 5), 10).close()
    finally:
        remove_lab(lab)
