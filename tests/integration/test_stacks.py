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

import pytest

from ptor_harness.lab.autofailover import AutoFailoverLab
from ptor_harness.lab.patroni import PatroniLab

from .conftest import free_port_base, lab_dir, remove_lab

BOUNDS = {("auto-failover", "kill-primary"): 20.0, ("patroni", "kill-primary"): 15.0,
          ("auto-failover", "switchover"): 10.0, ("patroni", "switchover"): 10.0}


@pytest.fixture(scope="module")
def auto_failover_lab():
    lab = AutoFailoverLab.up(os.path.join(lab_dir(), "lab"), free_port_base(4))
    yield lab
    remove_lab(lab)


@pytest.fixture(scope="module")
def patroni_lab():
    lab = PatroniLab.up(os.path.join(lab_dir(), "lab"), free_port_base(9))
    yield lab
    remove_lab(lab)


def drill(lab, run_ptor, fault):
    lab.wait_settled(120)
    old = lab.current_primary()
    new = next(n for n in lab.data_nodes() if n.name != old.name)
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--repo-pgdsn", lab.repo_dsn(),
                   "--init", "--parallel-workers", "3", "--warmup-duration", "1",
                   "--duration", "60", "--observe-after", "1.5", "--lab-dir", lab.dir,
                   "--fault", f"{fault}:1", "--full-data-validation", "--max-write-rto",
                   str(BOUNDS[(lab.stack, fault)]))
    assert run.code == 0, run
    r = run.report
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
    return r


@pytest.mark.parametrize("fault", ["kill-primary", "switchover"])
def test_auto_failover(auto_failover_lab, run_ptor, fault):
    drill(auto_failover_lab, run_ptor, fault)


@pytest.mark.parametrize("fault", ["kill-primary", "switchover"])
def test_patroni_behind_haproxy(patroni_lab, run_ptor, fault):
    r = drill(patroni_lab, run_ptor, fault)
    assert r["scenario"]["primary_pgdsn"].startswith(
        f"host=127.0.0.1 port={patroni_lab.state['port_base']} ")  # through HAProxy


def test_failover_and_failback_in_one_drill(make_lab, run_ptor):
    lab = make_lab("sync")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "3",
                   "--warmup-duration", "1", "--duration", "60", "--observe-after", "1.5",
                   "--lab-dir", lab.dir, "--fault", "kill-primary:1, switchover:4",
                   "--full-data-validation")
    assert run.code == 0, run
    r = run.report
    assert r["rto"]["outage_windows"] == 2 and len(r["windows"]) == 2
    assert [f["name"] for f in r["faults"]] == ["kill-primary", "switchover"]
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
