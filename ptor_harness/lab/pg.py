"""PostgreSQL servers for the lab: binaries, the unprivileged lab user, one node's life.

PostgreSQL refuses to run as root. When the lab runs as root it creates (once) a system
user `ptorlab` and runs every server program as that user; otherwise it runs them as the
current user. A node's postmaster PID is recorded when it starts, and stopping a node
signals that PID only after checking it is still that node's postmaster.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from typing import Optional

import psutil
import psycopg2

from ..retry import Retry, RetryExhausted
from .processes import alive, clear_stale_pidfile, first_pid, wait_gone

LAB_USER = "ptorlab"


class LabError(Exception):
    """A lab step failed; the message says which and why, in one sentence."""


def bindir() -> str:
    """The newest PostgreSQL server binaries on this machine (Debian layout first)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    if candidates:
        return os.path.dirname(candidates[-1])
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    raise LabError("PostgreSQL server programs (initdb, pg_ctl) are not installed; on "
                   "Debian: apt-get install -y postgresql")


class LabUser:
    """Who runs the servers: `ptorlab` when we are root, else ourselves."""

    def __init__(self, name: Optional[str] = None) -> None:
        if os.geteuid() == 0:
            self.name = name or LAB_USER
            self.ensure()
        else:
            self.name = pwd.getpwuid(os.geteuid()).pw_name
        entry = pwd.getpwnam(self.name)
        self.uid, self.gid, self.home = entry.pw_uid, entry.pw_gid, entry.pw_dir

    @property
    def switching(self) -> bool:
        return os.geteuid() == 0

    def ensure(self) -> None:
        try:
            pwd.getpwnam(self.name)
            return
        except KeyError:
            pass
        done = subprocess.run(["useradd", "--system", "--create-home", "--home-dir",
                               f"/var/lib/{self.name}", "--shell", "/bin/sh", self.name],
                              capture_output=True, text=True, check=False)
        if done.returncode not in (0, 9):  # 9: created meanwhile by someone else
            raise LabError(f"could not create the lab user {self.name}: "
                           f"{done.stderr.strip()}")

    def run(self, argv: list[str], cwd: str, check: bool = True, timeout: float = 120,
            env: Optional[dict] = None) -> subprocess.CompletedProcess:
        """Run a program as the lab user; a failure becomes LabError with its stderr."""
        kwargs: dict = {}
        if self.switching:
            kwargs = {"user": self.uid, "group": self.gid, "extra_groups": []}
        full_env = dict(os.environ, HOME=self.home, USER=self.name, LOGNAME=self.name)
        full_env.pop("PGPASSWORD", None)
        full_env.update(env or {})
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=full_env, check=False, stdin=subprocess.DEVNULL, **kwargs)
        if check and done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise LabError(f"{os.path.basename(argv[0])} failed: {' | '.join(tail)}")
        return done

    def chown(self, path: str) -> None:
        if self.switching:
            os.chown(path, self.uid, self.gid)

    def check_reachable(self, path: str) -> None:
        """The lab user must be able to walk down to `path` (e.g. not under /root)."""
        if not self.switching:
            return
        current = os.path.abspath(path)
        while True:
            parent = os.path.dirname(current)
            if parent == current:
                return
            current = parent
            mode = os.stat(current).st_mode
            if not mode & 0o001:
                raise LabError(f"the lab user {self.name} cannot enter {current}; choose a "
                               "lab directory outside it (for example under /tmp)")


def query_once(conn, sql: str, params: tuple = ()) -> list:
    """One statement on a connection opened for it (autocommit), then closed: how the lab
    asks its servers, the monitor and the pooler's console."""
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def port_users(port: int) -> str:
    """Who has a TCP socket on `port` of this host, for an error that says why the port is
    taken: "pid 123 (pgbouncer) LISTEN", or the sockets' states when no process owns them
    any more (TIME_WAIT and the like)."""
    try:
        sockets = [c for c in psutil.net_connections(kind="tcp")
                   if c.laddr and c.laddr.port == port]
    except (psutil.Error, OSError):
        return "unknown"
    seen = []
    for sock in sockets:
        name = ""
        if sock.pid:
            with contextlib.suppress(psutil.Error):
                name = f"pid {sock.pid} ({psutil.Process(sock.pid).name()}) "
        seen.append(f"{name}{sock.status}")
    counted = {what: seen.count(what) for what in seen}
    return ", ".join(f"{what} x{n}" if n > 1 else what for what, n in counted.items()) \
        or "no socket now"


def wait_port_free(port: int, timeout: float) -> bool:
    """Until `port` can be bound (a daemon just stopped may take a moment to let go of
    it), at most `timeout` seconds."""
    try:
        return Retry(timeout, 0.1, accept=bool)(lambda: port_free(port))
    except RetryExhausted:
        return False


# The lab user's own folder inside a lab: data directories, and whatever the managers
# create next to them. The lab's folder itself, and its state file, stay root's.
DATA = "data"


class Node:
    """One PostgreSQL server of the lab: a data directory, a port, a postmaster PID."""

    def __init__(self, name: str, lab_dir: str, port: int, user: LabUser, bin_dir: str,
                 pid: Optional[int] = None) -> None:
        self.name = name
        self.lab_dir = lab_dir
        self.datadir = os.path.join(lab_dir, DATA, name)
        self.port = port
        self.user = user
        self.bin = bin_dir
        self.pid = pid

    @property
    def socket_dir(self) -> str:
        return os.path.join(self.lab_dir, "sock")

    @property
    def logfile(self) -> str:
        return os.path.join(self.lab_dir, "logs", f"{self.name}.log")

    def tool(self, name: str) -> str:
        return os.path.join(self.bin, name)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={self.user.name}"

    def make_datadir(self) -> None:
        """An empty, private data directory owned by the lab user (initdb and
        pg_basebackup fill it; the lab's own directory stays root's)."""
        os.makedirs(self.datadir, mode=0o700)
        os.chmod(self.datadir, 0o700)
        self.user.chown(self.datadir)

    def initdb(self, settings: dict) -> None:
        self.make_datadir()
        self.user.run([self.tool("initdb"), "-D", self.datadir, "-U", self.user.name,
                       "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
                      cwd=self.lab_dir)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")
        self.write_auto_conf({})

    def write_auto_conf(self, settings: dict) -> None:
        """Node-specific settings (port, primary_conninfo) live in postgresql.auto.conf,
        rewritten whole after every clone so nothing inherited from the source survives."""
        lines = [f"port = {self.port}"] + [f"{k} = {v}" for k, v in settings.items()]
        path = os.path.join(self.datadir, "postgresql.auto.conf")
        with open(path, "w") as conf:
            conf.write("\n".join(lines) + "\n")
        self.user.chown(path)

    def running(self) -> bool:
        """Is our postmaster up: the PID we recorded (or its postmaster.pid names) runs
        this lab's own postgres binary on this data directory."""
        postgres = self.tool("postgres")
        if not alive(self.pid, self.datadir, postgres):
            self.pid = self.pid_from_file()
        return alive(self.pid, self.datadir, postgres)

    def clear_stale_lock(self, timeout: float = 15) -> None:
        """Make way for this node's postmaster: PostgreSQL refuses to start while a lock
        file (postmaster.pid in the data directory, `.s.PGSQL.<port>.lock` beside the
        socket) names a PID that still exists. A killed postmaster lingers as a zombie
        until init reaps it: wait that out. And on a busy machine, where PIDs wrap within
        minutes, its PID may since belong to another process of the lab user (a backend
        of the other node), for as long as that lives: remove a lock file that names no
        postmaster of this data directory. Called before the lab or a manager it restarts
        starts this node."""
        old = self.pid or self.pid_from_file()
        if old and not alive(old, self.datadir):
            wait_gone(old, timeout)
        for path in (os.path.join(self.datadir, "postmaster.pid"),
                     os.path.join(self.socket_dir, f".s.PGSQL.{self.port}.lock")):
            clear_stale_pidfile(path, self.tool("postgres"), self.datadir)

    def pid_from_file(self) -> Optional[int]:
        """The postmaster PID a manager started, read from postmaster.pid."""
        return first_pid(os.path.join(self.datadir, "postmaster.pid"))

    def start(self, timeout: float = 60) -> None:
        self.clear_stale_lock()
        self.user.run([self.tool("pg_ctl"), "-D", self.datadir, "-l", self.logfile, "-w",
                       "-t", str(int(timeout)), "start"], cwd=self.lab_dir, timeout=timeout + 10)
        with open(os.path.join(self.datadir, "postmaster.pid")) as pidfile:
            self.pid = int(pidfile.readline().strip())

    def kill(self, sig: int = signal.SIGKILL, wait: float = 30) -> None:
        """Signal our postmaster (by recorded PID) and wait for it to be gone.

        SIGKILL is a crash of the server; SIGQUIT an immediate shutdown. Backends of a
        SIGKILLed postmaster exit on their own once they notice it is gone.
        """
        if not self.running():
            return
        children = []
        try:
            children = psutil.Process(self.pid).children(recursive=True)
            for proc in [psutil.Process(self.pid)] + children:  # a frozen node must hear it
                with contextlib.suppress(psutil.Error):
                    proc.resume()
            os.kill(self.pid, sig)
        except (ProcessLookupError, psutil.NoSuchProcess):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.running():
            time.sleep(0.02)
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
        if sig == signal.SIGKILL:  # make sure no orphaned backend keeps the port or the data
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            # they are not our children, so they linger as zombies until init reaps them:
            # wait for "dead or zombie", not for "gone"
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(alive(c.pid) for c in children):
                time.sleep(0.02)

    def freeze(self) -> int:
        """SIGSTOP the postmaster and every backend: a hung server whose sockets stay open
        and whose kernel still answers TCP. Returns how many processes were stopped."""
        procs = [psutil.Process(self.pid)] + psutil.Process(self.pid).children(recursive=True)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.suspend()
        return len(procs)

    def stop(self) -> None:
        """Immediate shutdown: fast, and enough for a lab that is thrown away."""
        self.kill(signal.SIGQUIT)

    def promote(self) -> None:
        self.user.run([self.tool("pg_ctl"), "-D", self.datadir, "-w", "-t", "60", "promote"],
                      cwd=self.lab_dir)

    def connect(self, timeout: int = 5, dbname: str = "postgres"):
        conn = psycopg2.connect(self.dsn(dbname), connect_timeout=timeout,
                                application_name="ptor-lab")
        conn.autocommit = True
        return conn

    def query(self, sql: str, params: tuple = (), dbname: str = "postgres") -> list:
        return query_once(self.connect(dbname=dbname), sql, params)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.query("SELECT 1")
                return
            except psycopg2.Error as exc:
                if time.monotonic() > deadline:
                    raise LabError(f"{self.name} did not accept connections: {exc}") from None
                time.sleep(0.05)
