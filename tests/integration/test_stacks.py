"""Drills on real HA stacks: pg_auto_failover (monitor + 2 nodes) and Patroni + etcd +
HAProxy. One stack per module-scoped fixture: the kill-primary drill leaves the crashed node
rejoined as a standby, so the switchover drill reuses the same stack.

RTO bounds, from runs on this 2-core machine and LAB.md's measurements:
- pg_auto_failover kill-primary: 5.4-6.5 s (tuned monitor: unhealthy after 3 s, then the
  demote timeout of 3 s); bound 20 s leaves room for a loaded CI machine.
- Patroni kill-primary: 5.1-5.6 s (leader TTL 5 s, loop_wait 1 s); bound 15 s.
- switchover: 1.3 s (pg_auto_failover) and 2.7 s (Patroni); bound 10 s.
"""


import os
import sqlite3

import pytest

from ptor_harness import db, servers
from ptor_harness.lab import pooler

from .anatomy_checks import (
    CANONICAL,
    StandbyWatcher,
    check_against_own_observations,
    check_held_read_only,
    check_in_order,
    check_rejoin,
)
from .conftest import free_port_base, lab_dir, remove_lab
from .pooler_checks import check_stuck_on_the_demoted_node

BOUNDS = {("auto-failover", "kill-primary"): 20.0, ("patroni", "kill-primary"): 15.0,
          ("auto-failover", "switchover"): 10.0, ("patroni", "switchover"): 10.0,
          # Patroni restarts a postgres stopped under it in place: about 3.4 s here.
          ("patroni", "stop-primary"): 10.0,
          # the leader key expires (ttl 5 s) and pa2 is promoted: about 4-5 s here.
          ("patroni", "kill-manager"): 15.0}


def drill(lab, run_ptor, fault, moves_to_other=True):
    """A drill with `fault` 1 s into the load; checks the verdict, the figures and that the
    primary ended where the stack must have put it: on the other node, or (when Patroni
    restarts its postgres in place) on the same node with a new timeline."""
    lab.wait_settled(120)
    old = lab.current_primary()
    new = next(n for n in lab.data_nodes() if n.name != old.name) if moves_to_other else old
    # a kill is watched 15 s on, long enough for the crashed node's rejoin (pg_rewind or
    # a new clone) and the restored synchronous standby; pg_auto_failover's rejoin goes
    # through its monitor's states, which on a busy machine took longer than 15 s once
    # (writes back at +6.3 s, no rejoin by +21 s): 30 s there
    observe_after = ("30" if lab.stack == "auto-failover" else "15") \
        if fault == "kill-primary" else "1.5"
    with StandbyWatcher(new, old) as watcher:
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--repo-pgdsn", lab.repo_dsn(),
                       "--init", "--parallel-workers", "3", "--warmup-duration", "1",
                       "--duration", "60", "--observe-after", observe_after, "--lab-dir",
                       lab.dir, "--fault", f"{fault}:1", "--full-data-validation",
                       "--max-write-rto", str(BOUNDS[(lab.stack, fault)]))
    r = run.report
    split = watcher.two_primaries()
    if split is not None and r is not None and r["rpo"]["lost_acknowledged_ops"]:
        check_split_brain_loss(run, split)  # the stack lost writes: ptor must fail the drill
        return r
    assert run.code == 0, run
    assert r["verdict"] == "pass"
    assert 0 < r["rto"]["write_seconds"] < BOUNDS[(lab.stack, fault)]
    assert r["rto"]["recovered"] is True
    assert r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["validation"]["completed"] and r["validation"]["mismatched_rows"] == 0
    assert r["validation"]["rows_checked"] > 0
    (record,) = r["faults"]
    assert record["name"] == fault and record["exit_code"] == 0 and not record["error"]
    assert record["detection_seconds"] is not None
    before, after = r["servers"]["primary_before"], r["servers"]["primary_after"]
    assert before["port"] == old.port and after["port"] == new.port
    assert after["timeline"] > before["timeline"]
    moves = {(c["from"], c["to"]) for c in r["servers"]["identity_changes"]}
    assert moves == {(before["label"], after["label"])}
    if fault == "kill-primary":  # the node observer watched the lab's nodes
        check_in_order(r, CANONICAL)
        check_against_own_observations(r, new)
        check_rejoin(r, watcher)
        check_held_read_only(r, watcher)
        # one server, one name: the lag curve's lanes are the lab's nodes, not the names
        # their WAL receivers gave the primary ("pgautofailover_standby_2")
        nodes = {n.name for n in lab.data_nodes()}
        assert set(r["nodes"]["replay_lag_bytes"]) <= nodes, r["nodes"]["replay_lag_bytes"]
        assert (r["anatomy"]["old_primary"], r["anatomy"]["new_primary"]) == (old.name,
                                                                              new.name)
    return r


def check_split_brain_loss(run, split: tuple[float, float]) -> None:
    """The test's own watcher saw both nodes answer as primaries at once (seen once here:
    a pg_auto_failover switchover on a busy machine, the old primary acknowledging writes
    at full speed for 3.3 s after the standby's promotion, 23,760 of them lost). The
    cluster lost data, so the only right verdict is fail, with every lost write
    acknowledged after the switchover began and before the old primary stopped answering
    as one (half a second for the acknowledgement to reach its client); ptor's own
    observer saw the two primaries too."""
    r = run.report
    assert run.code == 1 and r["verdict"] == "fail", run
    assert any("acknowledged op" in why and " lost " in why for why in r["verdict_reasons"])
    began, ended = r["faults"][0]["started_at"], split[1]
    assert began <= r["rpo"]["first_lost_ack_at"] <= r["rpo"]["last_lost_ack_at"] <= ended + 0.5
    assert r["anatomy"]["two_primaries"], r["anatomy"]


@pytest.mark.parametrize("fault", ["kill-primary", "switchover"])
def test_auto_failover(auto_failover_lab, run_ptor, fault):
    drill(auto_failover_lab, run_ptor, fault)


def test_auto_failover_survives_losing_its_keeper(auto_failover_lab, run_ptor):
    """pg_auto_failover's monitor checks postgres itself: with only the primary's
    pg_autoctl killed (and restarted 8 s later) it keeps the primary, and no client sees
    an outage. ptor says so instead of inventing an RTO."""
    lab = auto_failover_lab
    lab.wait_settled(120)
    primary = lab.current_primary()
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "2",
                   "--warmup-duration", "1", "--duration", "12", "--lab-dir", lab.dir,
                   "--fault", "kill-manager:1", "--expect", "no-failover")
    assert run.code == 0, run
    r = run.report
    assert r["verdict"] == "pass" and r["windows"] == [] and r["rto"]["write_seconds"] == 0
    assert "faults were injected but no client saw an outage" in r["warnings"]
    assert r["expectation"]["observed"] == {"primary_changed": False, "write_outage": False,
                                            "longest_outage_seconds": None,
                                            "not_recovered": False}
    (record,) = r["faults"]
    assert record["ended_at"] - record["started_at"] >= 8  # the keeper stayed down 8 s
    assert f"{primary.name} primary/primary" in record["output"]
    assert r["servers"]["primary_after"]["port"] == primary.port
    assert r["rpo"]["lost_acknowledged_ops"] == 0
    lab.wait_settled(60)  # the restarted keeper reports again


def test_auto_failover_never_promotes_a_standby_that_lacks_commits(auto_failover_lab,
                                                                    run_ptor):
    """The synchronous standby crashes and stays away while the load goes on (the monitor
    lets the primary go on alone), then the primary crashes and the stale standby comes
    back: pg_auto_failover must not promote it. Writes stay down past --max-outage, the
    outcome --expect no-promotion asks for; the old primary, restarted after the fault's
    hold, holds every acknowledged commit."""
    lab = auto_failover_lab
    lab.wait_settled(120)
    old = lab.current_primary()
    other = next(n for n in lab.data_nodes() if n.name != old.name)
    timeline = old.query("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "2",
                   "--warmup-duration", "1", "--duration", "60", "--lab-dir", lab.dir,
                   "--fault", "stop-sync-standby:1, kill-primary:7", "--expect",
                   "no-promotion", "--max-outage", "8", "--full-data-validation")
    assert run.code == 0, run
    r = run.report
    assert r["verdict"] == "pass", r["verdict_reasons"]
    assert r["rto"]["recovered"] is False and "max-outage" in r["stop_reason"], r["stop_reason"]
    stop, kill = r["faults"]
    assert stop["name"] == "stop-sync-standby" and kill["name"] == "kill-primary"
    assert f"while {other.name} was away" in kill["output"], kill["output"]
    assert f"{other.name} primary" not in kill["output"].split("restarted:")[0]
    assert r["expectation"]["observed"]["primary_changed"] is False
    assert r["rto"]["detection_seconds"] < 1  # measured from the kill, not the first fault
    assert "standby promoted" not in [e["name"] for e in r["anatomy"]["events"]]
    # the truth was read on the old primary, back on its own timeline: nothing lost
    assert r["validation"]["completed"] and r["validation"]["rows_checked"] > 0
    assert r["servers"]["primary_after"]["port"] == old.port
    assert r["rpo"]["lost_acknowledged_ops"] == 0 and r["ops"]["ok"] > 0
    lab.wait_settled(120)
    assert lab.current_primary().name == old.name
    assert old.query("SELECT timeline_id FROM pg_control_checkpoint()")[0][0] == timeline
    assert other.query("SELECT pg_is_in_recovery()")[0][0] is True


@pytest.mark.parametrize("fault", ["kill-primary", "switchover", "kill-manager"])
def test_patroni_behind_haproxy(patroni_lab, run_ptor, fault):
    r = drill(patroni_lab, run_ptor, fault)
    assert r["scenario"]["primary_pgdsn"].startswith(
        f"host=127.0.0.1 port={patroni_lab.state['port_base']} ")  # through HAProxy
    if fault == "kill-manager":  # the old postgres was demoted once its Patroni was back
        patroni_lab.wait_settled(60)
        old = r["servers"]["primary_before"]["port"]
        assert next(n for n in patroni_lab.data_nodes() if n.port == old).query(
            "SELECT pg_is_in_recovery()")[0][0] is True


def test_patroni_restarts_a_stopped_primary_in_place(patroni_lab, run_ptor):
    drill(patroni_lab, run_ptor, "stop-primary", moves_to_other=False)


def blip_drill(lab, run_ptor, seconds: float, fails_over: bool) -> dict:
    """Freeze the primary node (postgres and its manager) for `seconds`: shorter than the
    stack's failover threshold it must not fail over, longer it must."""
    lab.wait_settled(120)
    old = lab.current_primary()
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "2",
                   "--warmup-duration", "1", "--lab-dir", lab.dir, "--fault",
                   f"blip={seconds:g}:1", "--observe-after", "2", "--duration",
                   "60" if fails_over else str(seconds + 5), "--expect",
                   "failover" if fails_over else "no-failover", "--max-write-rto", "30",
                   "--full-data-validation")
    assert run.code == 0, run
    r = run.report
    assert r["verdict"] == "pass" and r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["expectation"]["observed"]["primary_changed"] is fails_over
    assert (r["servers"]["primary_after"]["port"] != old.port) is fails_over
    (record,) = r["faults"]
    assert record["ended_at"] - record["started_at"] >= seconds
    lab.wait_settled(120)  # the frozen node, resumed, is a member again
    return r


@pytest.mark.parametrize("seconds, fails_over", [(1, False), (12, True)])
def test_auto_failover_blip(auto_failover_lab, run_ptor, seconds, fails_over):
    """The tuned monitor marks a node unhealthy after 3 s and waits 3 s more to demote."""
    blip_drill(auto_failover_lab, run_ptor, seconds, fails_over)


def test_patroni_short_blip_keeps_the_leader(patroni_lab, run_ptor):
    """The leader key lives 5 s (ttl): a shorter freeze keeps the leader."""
    blip_drill(patroni_lab, run_ptor, 2, False)


def test_patroni_long_blip(run_ptor):
    """A 12 s freeze of the leader: pa-other is promoted and acknowledges writes. Then
    Patroni either goes on with it (nothing lost), or (seen in two of six runs on
    2026-11-26 evening, and once the afternoon before) the thawed old leader ends up
    leader again on its old timeline and the promoted node is rewound: everything
    acknowledged on the newer timeline is gone (22,174 and 21,832 ops, ptor's count equal
    each time to the ledger's acknowledged ops on the newer timeline). The cause, in the
    lab's Patroni logs: the thawed leader renews with a new etcd lease and writes the leader
    key unconditionally from its stale view (Patroni 3.0.2's etcd3 `_update_leader`; upstream
    now compares the key's value first), so the promoted node sees another lock owner and
    demotes itself. ptor must tell which outcome happened:
    pass with 0 lost, or fail with exactly the ops the promoted node acknowledged, the
    reconciliation saying the cluster went back. A lab of its own: the second outcome may
    leave it unsettled for the module's other drills."""
    from ptor_harness.lab.patroni import PatroniLab

    lab = PatroniLab.up(os.path.join(lab_dir(), "lab"), free_port_base(9))
    try:
        old = lab.current_primary()
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers",
                       "2", "--warmup-duration", "1", "--lab-dir", lab.dir, "--fault",
                       "blip=12:1", "--observe-after", "2", "--duration", "60",
                       "--max-write-rto", "30", "--full-data-validation")
        r = run.report
        assert r["expectation"]["observed"]["primary_changed"] is True  # it failed over
        assert r["validation"]["completed"] is True, r["validation"]
        before = r["servers"]["primary_before"]["timeline"]
        newer = ledger_acknowledged_by_timeline(r["run_dir"], before)
        if "went back" not in (r["validation"]["reconciled_on"] or ""):
            assert run.code == 0 and r["verdict"] == "pass", run
            assert r["rpo"]["lost_acknowledged_ops"] == 0
            assert r["servers"]["primary_after"]["port"] != old.port
        else:  # the newer timeline was discarded: all it acknowledged is lost, no more
            assert run.code == 1 and r["verdict"] == "fail", run
            assert r["servers"]["primary_after"]["timeline"] == before
            assert newer > 0 and r["rpo"]["lost_acknowledged_ops"] == newer, (newer, r["rpo"])
    finally:
        remove_lab(lab)


def ledger_acknowledged_by_timeline(run_dir: str, timeline: int) -> int:
    """From the embedded ledger: the ops acknowledged on sessions with a primary of a
    newer timeline than `timeline`."""
    ledger = sqlite3.connect(os.path.join(run_dir, "ledger.sqlite"))
    try:
        (count,) = ledger.execute(
            "SELECT count(*) FROM ledger_op o JOIN ledger_session s ON s.run_id = o.run_id "
            "AND s.worker = o.worker AND s.session = o.session WHERE o.outcome = 'ok' "
            "AND NOT s.in_recovery AND s.timeline > ?", (timeline,)).fetchone()
    finally:
        ledger.close()
    return count


@pytest.mark.parametrize("back", ["switchover", "stop-primary"])
def test_failover_and_failback_in_one_drill(make_lab, run_ptor, back):
    """A crash, then back under load. The failback by stop-primary once left the rewound
    node unable to start (pg_rewind had read the promoted node's control file before its
    end-of-recovery checkpoint): writes never came back. The lab now checkpoints first."""
    lab = make_lab("sync")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "3",
                   "--warmup-duration", "1", "--duration", "60", "--observe-after", "1.5",
                   "--lab-dir", lab.dir, "--fault", f"kill-primary:1, {back}:4",
                   "--full-data-validation")
    assert run.code == 0, run
    r = run.report
    assert r["rto"]["outage_windows"] == 2 and len(r["windows"]) == 2
    assert [f["name"] for f in r["faults"]] == ["kill-primary", back]
    assert "rejoined as standby" in r["faults"][1]["output"]
    first, second = r["faults"]
    assert second["started_at"] >= first["ended_at"]
    for fault, window in zip(r["faults"], r["windows"]):
        assert fault["detection_seconds"] is not None
        assert window["first_failure"] >= fault["started_at"]
    node1, node2 = lab.nodes["node1"].port, lab.nodes["node2"].port
    ports = [(c["from"].split()[0], c["to"].split()[0]) for c in
             r["servers"]["identity_changes"]]
    assert ports[0] == (f"127.0.0.1:{node1}", f"127.0.0.1:{node2}")
    assert ports[-1] == (f"127.0.0.1:{node2}", f"127.0.0.1:{node1}")
    assert r["servers"]["primary_after"]["port"] == node1
    assert r["servers"]["primary_after"]["timeline"] == 3
    assert r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["validation"]["mismatched_rows"] == 0
    # the failback's own anatomy, beside the failover's: the lab's node1 (where the drill
    # ended, above) promoted again, node2 the old primary
    assert r["anatomy"]["new_primary"] == "node2"
    (later,) = r["anatomy"]["later_outages"]
    assert (later["fault"], later["fault_at"]) == (back, second["started_at"])
    assert (later["old_primary"], later["new_primary"]) == ("node2", "node1")
    assert later["detection_seconds"] == second["detection_seconds"]
    promoted = next(e for e in later["events"] if e["name"] == "standby promoted")
    assert promoted["source"] == "observer: node1" and promoted["at"] >= second["started_at"]
    assert later["promotion_seconds"] is not None and later["promotion_seconds"] >= 0
    assert f"Failover anatomy of the later fault {back} at +" in run.stdout


def test_patroni_behind_pgbouncer_and_haproxy(patroni_lab, run_ptor):
    """pgbouncer in front of HAProxy (Patroni users' layout): HAProxy routes, pgbouncer
    reconnects through it; nothing repoints the pooler."""
    pooler.add(patroni_lab, "transaction", "repoint")
    try:
        assert pooler.target(patroni_lab) == patroni_lab.front_port()
        # a worker makes each op name its server only where a connection can change
        # servers: through pgbouncer, not through HAProxy (a TCP proxy)
        for dsn, pooled in ((patroni_lab.primary_dsn(), True),
                            (patroni_lab.direct_dsn(), False)):
            conn = db.connect(dsn, "ptor-test", 5)
            try:
                assert servers.behind_pooler(conn) is pooled, dsn
            finally:
                conn.close()
        r = drill(patroni_lab, run_ptor, "kill-primary")
        assert r["scenario"]["primary_pgdsn"].startswith(
            f"host=127.0.0.1 port={patroni_lab.state['pooler']['port']} ")
        assert pooler.target(patroni_lab) == patroni_lab.front_port()
    finally:
        pooler.remove(patroni_lab)


def test_patroni_unfenced_pgbouncer_leaves_clients_on_the_demoted_node(patroni_lab, run_ptor):
    """pgbouncer on the primary's own port, never repointed (`--pooler-fencing none`):
    Patroni promotes the other node and restarts the crashed one as a replica; the
    pooler's sessions land there."""
    lab = patroni_lab
    lab.wait_settled(120)
    old = lab.current_primary()
    new = next(n for n in lab.data_nodes() if n.name != old.name)
    pooler.add(lab, "session", "none")
    try:
        assert pooler.target(lab) == old.port  # not HAProxy's
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers",
                       "3", "--warmup-duration", "1", "--duration", "20", "--lab-dir",
                       lab.dir, "--fault", "kill-primary:1", "--full-data-validation")
        check_stuck_on_the_demoted_node(run, lab, old, new)
    finally:
        pooler.remove(lab)
