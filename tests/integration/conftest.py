"""Fixtures that start real PostgreSQL labs on loopback, and run ptor as a user would."""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import psutil
import pytest

from ptor_harness.lab.pg import port_free
from ptor_harness.lab.streaming import StreamingLab

pytestmark = pytest.mark.integration
_used_bases: set = set()


def free_port_base(span: int = 3) -> int:
    """A base port with `span` free ports on 127.0.0.1, not handed out before here."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000, 10)
        if base not in _used_bases and all(port_free(base + i) for i in range(span)):
            _used_bases.add(base)
            return base
    raise RuntimeError("no free ports on 127.0.0.1")


def lab_dir(under: str = "/tmp") -> str:
    """A directory the unprivileged lab user can reach (pytest's tmp_path is root-only)."""
    path = tempfile.mkdtemp(prefix="ptor-test-lab-", dir=under)
    os.chmod(path, 0o755)
    return path


def lab_processes(directory: str) -> list:
    """Live (not zombie) processes whose command line or working directory lies in
    `directory`: what a lab left running."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        where = " ".join(info["cmdline"] or []) + " " + (info["cwd"] or "")
        if directory in where:
            found.append((info["pid"], " ".join(info["cmdline"] or [])))
    return found


def remove_lab(lab) -> None:
    """Stop the lab (as its state file records it now), check that nothing it started is
    left running, and remove it with the temporary directory around it."""
    lab.down(wipe=True)
    shutil.rmtree(os.path.dirname(lab.dir), ignore_errors=True)
    assert lab_processes(lab.dir) == []


@pytest.fixture
def scratch_dir():
    """A temporary directory the lab user can reach, removed afterwards."""
    path = lab_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def auto_failover_lab():
    """A pg_auto_failover lab shared by a module's tests (each drill leaves it healthy)."""
    from ptor_harness.lab.autofailover import AutoFailoverLab

    lab = AutoFailoverLab.up(os.path.join(lab_dir(), "lab"), free_port_base(4))
    yield lab
    remove_lab(lab)


@pytest.fixture(scope="module")
def patroni_lab():
    """A Patroni + etcd + HAProxy lab shared by a module's tests."""
    from ptor_harness.lab.patroni import PatroniLab

    lab = PatroniLab.up(os.path.join(lab_dir(), "lab"), free_port_base(9))
    yield lab
    remove_lab(lab)


@pytest.fixture
def make_lab():
    labs = []

    def make(mode: str = "sync", under: str = "/tmp") -> StreamingLab:
        """A streaming lab; `under` a folder on other storage (/dev/shm: memory-fast)."""
        lab = StreamingLab.up(os.path.join(lab_dir(under), "lab"), free_port_base(), mode)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        remove_lab(lab)


def crew(proc) -> list:
    """A drill's processes in the order its coordinator started them (the recorder, the
    probe, the workers, the observer): the children of its fork server, which forks
    them one at a time as asked."""
    (server,) = [c for c in psutil.Process(proc.pid).children()
                 if "multiprocessing.forkserver" in " ".join(c.cmdline())]
    return sorted(server.children(), key=lambda c: c.pid)


def ptor_env() -> dict:
    env = dict(os.environ)
    for var in list(env):
        if var in ("PRIMARY_PGDSN", "REPO_PGDSN") or var.startswith("PTOR_"):
            env.pop(var)
    return env


class Run:
    """One `ptor` invocation: its exit code, output and JSON report."""

    def __init__(self, proc: subprocess.CompletedProcess, report_path: str, out_dir: str):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.out_dir = out_dir
        self.report = None
        if os.path.exists(report_path):
            with open(report_path) as src:
                self.report = json.load(src)

    def __repr__(self) -> str:
        return f"<ptor exit {self.code}\n{self.stdout}\n{self.stderr}>"


@pytest.fixture
def run_ptor(tmp_path):
    def run(*args: str, timeout: float = 240) -> Run:
        report_path = str(tmp_path / f"report-{len(list(tmp_path.iterdir()))}.json")
        out_dir = str(tmp_path / "runs")
        command = [args[0]] if args and args[0] in ("reconcile", "history", "campaign") \
            else []
        argv = [sys.executable, "-m", "ptor_harness.cli", *command, "--report-dir", out_dir,
                "--report-json", report_path, *args[len(command):]]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=ptor_env(), stdin=subprocess.DEVNULL, check=False)
        return Run(proc, report_path, out_dir)

    return run


def lab_command(lab: StreamingLab, *args: str) -> str:
    """A shell command that runs ptor-lab on this lab (for --failover-command)."""
    return " ".join([sys.executable, "-m", "ptor_harness.lab.cli", args[0], "--dir", lab.dir,
                     *args[1:]])


def ledger_args(lab: StreamingLab, ledger: str, repo_mode: str) -> list:
    """Flags that pick the ledger backend ("sqlite" / "postgresql") and the repo mode."""
    args = ["--repo-pgdsn", lab.repo_dsn()] if ledger == "postgresql" else []
    return args + (["--async-repo-mode"] if repo_mode == "async" else [])
