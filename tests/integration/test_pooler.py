"""pgbouncer (Debian's) in front of the streaming lab: clients connect only to the pooler.

Fenced (the lab's promote step repoints pgbouncer and reloads it), writes come back and
the RTO includes pgbouncer's reconnect. Unfenced (`--pooler-fencing none`), pgbouncer stays
on the demoted node, which rejoins as a standby: every session lands on a standby. ptor must
then fail the drill, report the stale routing with its duration, stop without hanging, and
still settle every in-doubt op and the loss count, reading the truth from the new primary
the node observer found (the endpoint leads to no primary).
"""

import os
import sys

import psycopg2
import pytest

from ptor_harness import db, lock, servers
from ptor_harness.lab import pooler
from ptor_harness.lab.base import wait_until
from ptor_harness.lab.streaming import StreamingLab
from ptor_harness.ledger import LedgerSpec
from ptor_harness.ops import OK

from .conftest import free_port_base, lab_dir, remove_lab
from .groundtruth import changes_of, keep_decodable_history, lost_ops, switch_point
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


def test_no_setting_of_ptor_stays_on_a_pooled_server_session():
    """Behind pgbouncer in transaction mode a SET runs on whichever server session the
    pooler picked and stays there for the pool's next clients: ptor's statement_timeout
    would bound the statements of the user's own applications after ptor has gone. ptor
    sets it only on a connection that is its server session's own."""
    lab = pooled_lab("repoint", "transaction")
    try:
        for _ in range(5):
            db.connect(lab.primary_dsn(), "ptor-test", 5, statement_timeout=7).close()
        other = psycopg2.connect(lab.primary_dsn())  # another client of the same pool
        other.autocommit = True
        try:
            for _ in range(10):
                with other.cursor() as cur:
                    cur.execute("SHOW statement_timeout")
                    assert cur.fetchone()[0] == "0"
        finally:
            other.close()
        direct = db.connect(lab.direct_dsn(), "ptor-test", 5, statement_timeout=7)
        try:
            with direct.cursor() as cur:
                cur.execute("SHOW statement_timeout")
                assert cur.fetchone()[0] == "7s"
        finally:
            direct.close()
    finally:
        remove_lab(lab)


# The failover of the next test, run by ptor as its --failover-command: the standby is
# promoted while the old primary stays writable, then pgbouncer is repointed and reloaded.
# pgbouncer closes its server connections to the old primary as each is released, so a
# client between transactions goes on on the promoted node without an error.
REPOINT_WITHOUT_FENCING = """
import sys, time
from ptor_harness.lab import load_lab, pooler
lab = load_lab(sys.argv[1])
old, new = lab.nodes["node1"], lab.nodes["node2"]
for node in (old, new):  # neither waits for a synchronous standby any more
    node.query("ALTER SYSTEM RESET synchronous_standby_names")
    node.query("SELECT pg_reload_conf()")
new.promote()
promoted = time.time()
time.sleep(1)
pooler.route_writes(lab, new)
lab.set_role("node2", "primary")
lab.set_role("node1", "split primary")
lab.save()
print(f"promoted node2 at {promoted!r}; node1 still writable; pgbouncer repointed")
"""


@pytest.mark.parametrize("ops_per_transaction", [1, 4])
def test_a_repointed_transaction_pooler_moves_clients_and_each_op_keeps_its_server(
        run_ptor, tmp_path, ops_per_transaction):
    """Behind pgbouncer in transaction mode a client's connection outlives its server: after
    the repoint the workers' next transactions run on the promoted node with no error and no
    reconnect, so the identity read when they connected names the wrong server. Each op
    returns its server's start time and a worker that sees it change reads the identity
    again (a new session). Checked against the old primary's WAL: every acknowledged op
    that started after the promotion is placed on the server that committed it, the loss is
    exactly the old primary's acknowledged commits past the switch point, no op is taken
    for a hole, and the split-brain writes are exactly those the old primary acknowledged
    after a client was first served by the promoted node. With 4 ops per transaction too:
    a transaction's ops are pinned to one server, and each lost one is counted once."""
    lab = pooled_lab("repoint", "transaction")
    try:
        # workers ask each op's server only through a pooler (the lab's direct DSN: not)
        for dsn, pooled in ((lab.primary_dsn(), True), (lab.direct_dsn(), False)):
            conn = db.connect(dsn, "ptor-test", 5)
            try:
                assert servers.behind_pooler(conn) is pooled, dsn
            finally:
                conn.close()
        keep_decodable_history(lab)
        script = tmp_path / "repoint.py"
        script.write_text(REPOINT_WITHOUT_FENCING)
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init",
                       "--parallel-workers", "3", "--warmup-duration", "1",
                       "--failover-after", "1", "--observe-after", "3", "--duration", "20",
                       "--full-data-validation", "--expect", "any", "--failover-command",
                       f"{sys.executable} {script} {lab.dir}",
                       "--ops-per-transaction", str(ops_per_transaction))
        r = run.report
        assert r is not None and r["validation"]["completed"] is True, run
        assert r["faults"][0]["exit_code"] == 0, r["faults"]
        promoted = float(r["faults"][0]["output"].split(" at ")[1].split(";")[0])
        old, new = lab.nodes["node1"], lab.nodes["node2"]
        assert r["servers"]["primary_after"]["port"] == new.port
        # the premise: no worker saw an error; they moved inside their connections
        assert r["ops"]["failed"] == 0 and r["ops"]["indeterminate"] == 0, r["ops"]
        spec = LedgerSpec(r["run_id"], None, "ptor", os.path.join(r["run_dir"],
                                                                   "ledger.sqlite"),
                          durable=True)
        reader = spec.open()
        try:
            truth = lost_ops(changes_of(old), switch_point(new, 2), reader.ops_by_seq)
            identities = reader.identities()
            ops = [op for w in range(3) for op in reader.ops_by_seq(w)]
        finally:
            reader.close()
        port_of = {(i.worker, i.session): i.port for i in identities}
        on_old = {(op.worker, op.seq) for op in truth}
        checked = 0
        for op in ops:
            if op.outcome != OK or op.t_start <= promoted or (op.kind != "I" and not op.rows):
                continue
            expected = old.port if (op.worker, op.seq) in on_old else new.port
            assert port_of.get((op.worker, op.session)) == expected, op
            checked += 1
        moved = [i for i in identities if i.port == new.port and not i.in_recovery]
        assert {i.worker for i in moved} == {0, 1, 2}  # every worker followed the pooler
        assert checked > 1000
        acknowledged = [op for op in truth if op.outcome == OK]
        rpo = r["rpo"]
        assert rpo["lost_acknowledged_ops"] == len(acknowledged) > 0
        assert rpo["lost_acknowledged_transactions"] == len(
            {(op.worker, (op.seq - 1) // ops_per_transaction) for op in acknowledged})
        assert r["anomalies"]["partial_transactions"] == 0
        assert rpo["unverifiable_ops"] == 0
        assert r["anomalies"]["holes"] == 0 and r["anomalies"]["phantom_rows"] == 0
        since = min(i.at for i in moved)
        assert r["anomalies"]["split_brain_writes"] == sum(
            1 for op in acknowledged if op.t_end > since)
        assert run.code == 1 and r["verdict"] == "fail"
    finally:
        remove_lab(lab)
