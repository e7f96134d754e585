"""The lab starts real servers and stops exactly what it started."""

import json
import os
import subprocess
import sys

import psutil

from ptor_harness.lab import cli as lab_cli
from ptor_harness.lab import load_lab
from ptor_harness.lab.pg import port_free

from .conftest import free_port_base, lab_processes


def test_up_status_failover_down(capsys, scratch_dir):
    directory = scratch_dir + "/lab"
    base = free_port_base()
    assert lab_cli.main(["up", "--dir", directory, "--port-base", str(base)]) == 0
    out = capsys.readouterr().out
    assert "target_session_attrs=read-write" in out and f"port={base},{base + 1}" in out
    lab = load_lab(directory)
    pids = [n.pid for n in lab.nodes.values()]
    assert all(psutil.pid_exists(p) for p in pids)
    rows = {r["node"]: r for r in lab.status()}
    assert rows["node1"]["replication"] == "standby streaming/sync"
    reader, writer = os.pipe()
    os.close(reader)  # nobody reads: `ptor-lab status | head -0`
    closed = subprocess.run([sys.executable, "-m", "ptor_harness.lab.cli", "status", "--dir",
                             directory], stdout=writer, stderr=subprocess.PIPE, text=True,
                            timeout=60, check=False)
    os.close(writer)
    assert closed.returncode == 0 and closed.stderr == "", closed.stderr
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
    assert lab_processes(directory) == []


def test_status_of_missing_lab_is_an_error(capsys, scratch_dir):
    assert lab_cli.main(["status", "--dir", scratch_dir + "/none"]) == 3
    assert "no lab in" in capsys.readouterr().err


def test_demo_is_a_passing_drill_that_leaves_nothing_behind(capsys, tmp_path):
    """README's main command (`bash .ci/demo` runs `ptor-lab demo`): a lab, a drill with a
    kill of the primary, the report, and the lab gone afterwards."""
    base = free_port_base()
    reports = tmp_path / "not-yet"  # a fresh clone has no report folder: the demo makes it
    assert lab_cli.main(["demo", "--port-base", str(base), "--workers", "2",
                         "--report-dir", str(reports)]) == 0
    out = capsys.readouterr().out
    assert "verdict                            PASS" in out
    # it ends by naming its run folder and picture
    run_dir = json.loads((reports / "demo-streaming.json").read_text())["run_dir"]
    assert f"ptor-lab: run folder {run_dir}" in out
    assert f"ptor-lab: picture {run_dir}/timeline.png" in out
    assert f"ptor-lab: the drill in one page to open or attach: {run_dir}/report.html" in out
    assert os.path.getsize(os.path.join(run_dir, "timeline.png")) > 10000
    lab_line = next(line for line in out.splitlines() if "starting the streaming lab" in line)
    lab_dir = lab_line.rsplit(" in ", 1)[1]
    report = json.loads((reports / "demo-streaming.json").read_text())
    assert report["verdict"] == "pass" and report["rto"]["write_seconds"] > 0
    assert report["rpo"]["lost_acknowledged_ops"] == 0
    assert report["validation"]["mode"] == "full" and report["validation"]["completed"]
    (fault,) = report["faults"]  # the lab's kill-primary, run as the failover command
    assert fault["name"] == "failover-command" and fault["exit_code"] == 0
    assert fault["command"].endswith(f"fault --dir {lab_dir} kill-primary")
    assert "promoted node2" in fault["output"]
    assert report["servers"]["primary_after"]["port"] == base + 1
    assert not os.path.exists(lab_dir) and lab_processes(lab_dir) == []
    # the temporary folder the demo made around its lab went too, and nothing else
    assert not os.path.exists(os.path.dirname(lab_dir))
    assert all(port_free(base + i) for i in range(3))


def test_nodes_is_the_repmgr_labs_alone(capsys, scratch_dir):
    assert lab_cli.main(["up", "--dir", scratch_dir + "/lab", "--nodes", "3"]) == 3
    assert "--nodes is for the repmgr lab" in capsys.readouterr().err
    assert not os.path.exists(scratch_dir + "/lab/lab.json")


def test_repmgr_demo_passes_and_leaves_nothing_behind(capsys, tmp_path):
    """`ptor-lab demo --stack repmgr --mode sync`: repmgrd fails over, nothing is lost."""
    assert lab_cli.main(["demo", "--stack", "repmgr", "--mode", "sync", "--port-base",
                         str(free_port_base()), "--workers", "2", "--report-dir",
                         str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "verdict                            PASS" in out
    report = json.loads((tmp_path / "demo-repmgr.json").read_text())
    assert report["servers"]["primary_after"]["timeline"] == 2
    lab_dir = next(line for line in out.splitlines()
                   if "starting the repmgr lab" in line).rsplit(" in ", 1)[1]
    assert not os.path.exists(lab_dir) and lab_processes(lab_dir) == []
