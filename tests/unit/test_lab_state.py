"""ptor-lab acts, as root, only on a state file root wrote, and only on processes that run
the program the lab started."""

import json
import os
import socket
import subprocess
import sys
import time

import psutil
import pytest

from ptor_harness.lab import read_state
from ptor_harness.lab.pg import LabError, port_free, port_users, wait_port_free
from ptor_harness.lab.processes import runs_program

GOOD = {"stack": "streaming", "mode": "sync", "user": "ptorlab", "bindir": "/usr/bin",
        "port_base": 6041, "created_at": 1.0, "daemons": {},
        "nodes": {"node1": {"port": 6041, "role": "primary", "pid": None}}}


def lab_with(tmp_path, state, text=None):
    lab = tmp_path / "lab"
    lab.mkdir()
    os.chmod(lab, 0o755)
    path = lab / "lab.json"
    path.write_text(text if text is not None else json.dumps(state))
    os.chmod(path, 0o644)
    return str(lab), path


def test_a_state_file_ptor_lab_wrote_is_read(tmp_path):
    lab, _ = lab_with(tmp_path, GOOD)
    assert read_state(lab)["nodes"]["node1"]["port"] == 6041


@pytest.mark.parametrize("text", [
    "[]", "not json", '{"stack": "streaming"}', json.dumps(dict(GOOD, stack="rm -rf /")),
    json.dumps(dict(GOOD, nodes={"node1": {"port": "6041"}})),
    json.dumps(dict(GOOD, nodes={"node1": {"port": 6041, "pid": -1}})),
    json.dumps(dict(GOOD, daemons={"x": {"argv": "sh -c boom", "pid": 1}})),
    "[" * 100000 + "]" * 100000,
])
def test_a_hostile_or_broken_state_file_is_one_sentence(tmp_path, text):
    lab, _ = lab_with(tmp_path, None, text)
    with pytest.raises(LabError, match="is not a ptor-lab state file"):
        read_state(lab)


def test_the_cli_refuses_a_broken_state_file_without_a_traceback(tmp_path):
    lab, _ = lab_with(tmp_path, None, '{"stack": 5}')
    done = subprocess.run([sys.executable, "-m", "ptor_harness.lab.cli", "down", "--dir", lab],
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "is not a ptor-lab state file" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="root's own rule: run as root (CI is)")
@pytest.mark.parametrize("what", ["file owner", "folder owner", "folder mode", "file mode"])
def test_root_acts_only_on_a_state_file_root_wrote(tmp_path, what):
    lab, path = lab_with(tmp_path, GOOD)
    if what == "file owner":
        os.chown(path, 1, 1)
    elif what == "folder owner":
        os.chown(lab, 1, 1)
    elif what == "folder mode":
        os.chmod(lab, 0o777)
    else:
        os.chmod(path, 0o666)
    with pytest.raises(LabError, match="refusing .*root acts on this file"):
        read_state(lab)


def test_a_process_is_the_lab_s_only_if_it_runs_the_program():
    """A process whose command line claims to be postgres is not postgres."""
    impostor = subprocess.Popen(["postgres", "30"], executable="/bin/sleep")
    try:
        proc = psutil.Process(impostor.pid)
        deadline = time.monotonic() + 10  # between fork and exec the command line is empty
        while not proc.cmdline() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.cmdline()[0] == "postgres"
        assert not runs_program(proc, "postgres")
        assert not runs_program(proc, "/usr/lib/postgresql/15/bin/postgres")
        assert runs_program(proc, "sleep")
        me = psutil.Process()
        assert runs_program(me, sys.executable)
    finally:
        impostor.kill()
        impostor.wait()


def test_a_taken_port_names_who_holds_it():
    """A lab that cannot have its port says which process listens there."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_free(port) and not wait_port_free(port, 0.2)
        assert f"pid {os.getpid()} (" in port_users(port) and "LISTEN" in port_users(port)
    assert wait_port_free(port, 5) and port_users(port) == "no socket now"


def test_the_cdc_advice_says_whether_the_slot_outlives_a_failover():
    from ptor_harness.lab import cdc

    plain = cdc.advice({"slot": "ptor_cdc", "plugin": "pgoutput", "on": "node1",
                        "copies": "none: a plain slot lives on the primary only"})
    assert plain.startswith("run ptor with --cdc-slot ptor_cdc --cdc-plugin pgoutput (")
    assert "plain slot on node1 only: it will not survive a failover" in plain
    permanent = cdc.advice({"slot": "ptor_cdc", "plugin": "test_decoding", "on": "pa1",
                            "copies": "Patroni's permanent slot: a copy on the replica"})
    assert "--cdc-plugin test_decoding" in permanent and "not survive" not in permanent
    assert "permanent slot made on pa1, a copy on the replica" in permanent
