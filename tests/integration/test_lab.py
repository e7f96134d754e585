"""The lab starts real servers and stops exactly what it started."""

import psutil

from ptor_harness.lab import cli as lab_cli
from ptor_harness.lab import load_lab
from ptor_harness.lab.pg import port_free

from .conftest import free_port_base, lab_dir


def test_up_status_failover_down(capsys):
    directory = lab_dir() + "/lab"
    base = free_port_base()
    assert lab_cli.main(["up", "--dir", directory, "--port-base", str(base)]) == 0
    out = capsys.readouterr().out
    assert "target_session_attrs=read-write" in out and f"port={base},{base + 1}" in out
    lab = load_lab(directory)
    pids = [n.pid for n in lab.nodes.values()]
    assert all(psutil.pid_exists(p) for p in pids)
    rows = {r["node"]: r for r in lab.status()}
    assert rows["node1"]["replication"] == "standby streaming/sync"
    assert rows["node2"]["in_recovery"] is True
    assert lab_cli.main(["failover", "--dir", directory]) == 0
    rows = {r["node"]: r for r in load_lab(directory).status()}
    assert rows["node1"]["running"] is False and rows["node1"]["role"] == "failed"
    assert rows["node2"]["in_recovery"] is False and rows["node2"]["timeline"] == 2
    assert lab_cli.main(["start-node", "--dir", directory, "node1"]) == 3  # refuses 2 primaries
    assert lab_cli.main(["down", "--dir", directory, "--wipe"]) == 0
    for pid in pids:
        assert not psutil.pid_exists(pid) or \
            psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert all(port_free(base + i) for i in range(3))


def test_status_of_missing_lab_is_an_error(capsys):
    assert lab_cli.main(["status", "--dir", lab_dir() + "/none"]) == 3
    assert "no lab in" in capsys.readouterr().err
