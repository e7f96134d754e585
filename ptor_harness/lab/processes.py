"""Which process a PID is, and the PID files the lab's programs keep.

The lab stops and restarts processes by the PIDs it recorded, and PIDs are reused: on a
busy machine (pid_max 32768) within minutes. So a PID counts as a process the lab started
only when it runs that program (on that data directory); and a PID file a killed program
left is removed before the program starts again, since PostgreSQL, pg_autoctl and repmgrd
each refuse to start while the PID it names is alive, whoever took it since.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from typing import Optional

import psutil


def runs_program(proc: psutil.Process, program: str) -> bool:
    """Is `proc` running `program`: its executable is that file, or, for a script (Patroni
    is one), the script's interpreter with the script as its first argument? A name on
    the command line proves nothing: any process can claim any argv[0]."""
    try:
        target = os.path.realpath(shutil.which(program) or program)
        exe = os.path.realpath(proc.exe())
        if exe == target:
            return True
        with open(target, "rb") as head:
            line = head.readline(256)
        if not line.startswith(b"#!"):
            return False
        interpreter = os.path.realpath(line[2:].split()[0].decode("utf-8", "replace"))
        args = proc.cmdline()[1:]
        return exe == interpreter and bool(args) and os.path.realpath(args[0]) == target
    except (OSError, IndexError, psutil.Error):
        return False


def alive(pid: Optional[int], datadir: Optional[str] = None,
          program: Optional[str] = None) -> bool:
    """Is `pid` a live (not zombie) process; with `datadir`, that data directory's
    postmaster; with `program`, running that program (see runs_program)?"""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if program is not None and not runs_program(proc, program):
            return False
        if datadir is not None:
            cmdline = " ".join(proc.cmdline())
            return "postgres" in cmdline and os.path.abspath(datadir) in cmdline
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def first_pid(path: str) -> Optional[int]:
    """The PID on the first line of a PID or lock file; None without one."""
    try:
        with open(path) as pidfile:
            return int(pidfile.readline().strip())
    except (OSError, ValueError):
        return None


def remove_stale(path: str, pid: int) -> None:
    """Remove the PID file `path` if it still names `pid` (checked just before: a program
    that started meanwhile has written its own)."""
    if first_pid(path) == pid:
        with contextlib.suppress(OSError):
            os.remove(path)


def clear_stale_pidfile(path: str, program: str, datadir: Optional[str] = None) -> None:
    """Remove a PID or lock file when the PID it names does not run `program` (on
    `datadir`): the program, killed, left it, and a process that took the PID since would
    make the restarted program believe itself already running (postgres, pg_autoctl and
    repmgrd refuse)."""
    pid = first_pid(path)
    if pid is not None and not alive(pid, datadir, program):
        remove_stale(path, pid)


def wait_gone(pid: int, timeout: float = 15) -> None:
    """Wait until a dead process's PID is reaped (or reused by another process).

    Programs that guard against a second instance (postgres, pg_autoctl) check the PID in
    their lock file with kill(pid, 0), which a zombie still passes; restarting them before
    init has reaped the old process makes them refuse to start.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return  # alive again: the PID now belongs to something else
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
