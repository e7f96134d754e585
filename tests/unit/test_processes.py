"""A PID file left by a killed program is cleared only when its PID runs something else."""

import os
import shutil
import subprocess

from ptor_harness.lab.processes import clear_stale_pidfile, remove_stale


def a_pidfile(tmp_path, pid: int) -> str:
    path = str(tmp_path / "daemon.pid")
    with open(path, "w") as out:
        out.write(f"{pid}\n/some/dir\n")
    return path


def test_a_pid_taken_by_another_program_is_cleared(tmp_path):
    path = a_pidfile(tmp_path, os.getpid())  # alive, but a Python, not the daemon
    clear_stale_pidfile(path, shutil.which("sleep"))
    assert not os.path.exists(path)


def test_a_pid_still_running_the_program_is_kept(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        path = a_pidfile(tmp_path, sleeper.pid)
        clear_stale_pidfile(path, shutil.which("sleep"))
        assert os.path.exists(path)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_file_rewritten_meanwhile_is_kept(tmp_path):
    path = a_pidfile(tmp_path, 4242)
    remove_stale(path, 4343)  # the program that started meanwhile wrote its own PID
    with open(path) as kept:
        assert kept.read().startswith("4242\n")
    remove_stale(path, 4242)
    assert not os.path.exists(path)
    clear_stale_pidfile(path, "sleep")  # none left: nothing to do
