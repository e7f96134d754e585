"""What every lab stack shares: its state file, its PostgreSQL nodes, its daemons, and the
contract for the faults ptor can inject into it.

A stack (streaming, auto-failover, patroni) subclasses `Lab`. Its state (ports, roles,
PIDs) lives in `<dir>/lab.json`, so every `ptor-lab` command and ptor's built-in fault
actions act on the same lab. Every process the lab starts is recorded by PID and stopped
by that PID only after checking it is still the process the lab started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Optional

import psutil

from ..retry import Retry, RetryExhausted
from .actions import FAULT_ACTIONS, split_action
from .pg import DATA, LabError, LabUser, Node, bindir, port_free, port_users
from .processes import alive, clear_stale_pidfile, wait_gone
from .shared_faults import SharedFaults
from .state import STATE, read_state
from .workdir import check_path, own_entry, remove_made, take


def find_program(name: str, packages: str) -> str:
    """The path of an installed program (PATH, then /usr/sbin, where Debian puts haproxy),
    or LabError naming the Debian packages that bring it."""
    found = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}")
                                   else None)
    if not found:
        raise LabError(f"{name} is not installed; on Debian: apt-get install -y "
                       f"--no-install-recommends {packages}")
    return found


class Daemon:
    """A long-running program of the lab (etcd, haproxy, patroni, pg_autoctl run)."""

    def __init__(self, lab: Lab, name: str, argv: list, pid: Optional[int] = None,
                 env: Optional[dict] = None) -> None:
        self.lab = lab
        self.name = name
        self.argv = argv
        self.pid = pid
        self.env = env or {}
        # what a restart must find clean (set by the stack, see Lab.daemon): the node
        # whose postgres the daemon starts, and the PID file the daemon keeps
        self.node: Optional[Node] = None
        self.pidfile: Optional[str] = None

    @property
    def logfile(self) -> str:
        return os.path.join(self.lab.dir, "logs", f"{self.name}.log")

    def running(self) -> bool:
        """Is the recorded PID this daemon: running the program the lab started (its
        executable, not a name on a command line)?"""
        return alive(self.pid, program=self.argv[0])

    def start(self) -> None:
        """Start as the lab user, detached: a shell puts the program in the background
        and exits, so the program is orphaned to init at once. Whoever started it (a test
        process, ptor's fault thread) then never holds it as an unreaped zombie after a
        kill, which would make the restarted manager refuse to run."""
        if self.pid:
            wait_gone(self.pid)
        if self.pidfile:
            clear_stale_pidfile(self.pidfile, self.argv[0])
        if self.node is not None:
            self.node.clear_stale_lock()
        user = self.lab.user
        kwargs: dict = {}
        if user.switching:
            kwargs = {"user": user.uid, "group": user.gid, "extra_groups": []}
        env = dict(os.environ, HOME=user.home, USER=user.name, LOGNAME=user.name,
                   PTOR_LAB_LOG=self.logfile, **self.env)
        env.pop("PGPASSWORD", None)
        launcher = ['/bin/sh', '-c', '"$@" </dev/null >>"$PTOR_LAB_LOG" 2>&1 & echo $!',
                    "ptor-lab-launch", *self.argv]
        done = subprocess.run(launcher, cwd=self.lab.dir, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, env=env, timeout=30,
                              start_new_session=True, check=False, **kwargs)
        if done.returncode != 0 or not done.stdout.strip().isdigit():
            raise LabError(f"could not start {self.name}: {done.stderr.strip()[:200]}")
        self.pid = int(done.stdout.strip())
        self.lab.save()

    def kill(self, sig: int = signal.SIGKILL, wait: float = 15, tree: bool = True,
             spare: tuple = ()) -> None:
        """Signal the daemon (by recorded PID) and, with `tree`, the processes it started
        (except PIDs in `spare`); wait until they are gone (or zombies)."""
        if not self.running():
            return
        try:
            children = [c for c in psutil.Process(self.pid).children(recursive=True)
                        if c.pid not in spare] if tree else []
        except psutil.Error:
            children = []
        if spare:  # a spared process keeps its own children (a postmaster's backends)
            kept = set()
            for pid in spare:
                with contextlib.suppress(psutil.Error):
                    kept |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
            children = [c for c in children if c.pid not in kept]
        for proc in [psutil.Process(self.pid)] + children:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and (
                self.running() or any(alive(c.pid) for c in children)):
            time.sleep(0.02)
        for proc in [self] + children:
            if alive(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)


class Lab(SharedFaults):
    """Base of every lab stack. Subclasses set `stack`, build themselves in `build()`, and
    implement the fault abilities they support (beside the shared ones)."""

    stack = ""
    dbname = "postgres"  # the database ptor's drills use on this stack
    node_names: tuple = ()

    def __init__(self, lab_dir: str, state: dict) -> None:
        self.dir = os.path.abspath(lab_dir)
        self.adopt(state)

    def adopt(self, state: dict) -> None:
        """Take `state` as the lab's: nodes and daemons with their recorded PIDs."""
        self.state = state
        self.user = LabUser(state.get("user"))
        self.bin = state["bindir"]
        self.nodes = {name: Node(name, self.dir, info["port"], self.user, self.bin,
                                 info.get("pid"))
                      for name, info in state["nodes"].items()}
        self.daemons = {name: Daemon(self, name, info["argv"], info.get("pid"),
                                     info.get("env"))
                        for name, info in state.get("daemons", {}).items()}

    # --- state ---------------------------------------------------------------------------

    @classmethod
    def new_state(cls, lab_dir: str, port_base: int, mode: str, ports: dict,
                  made: dict) -> dict:
        """`made`: what prepare_dir made of the folder (workdir.take)."""
        return {"stack": cls.stack, "mode": mode, "user": LabUser().name, "bindir": bindir(),
                "port_base": port_base, "created_at": time.time(), "daemons": {},
                "made": made,
                "nodes": {name: {"port": port, "role": role}
                          for name, (port, role) in ports.items()}}

    def save(self) -> None:
        for name, node in self.nodes.items():
            self.state["nodes"][name]["pid"] = node.pid
        for name, daemon in self.daemons.items():
            self.state["daemons"][name] = {"argv": daemon.argv, "pid": daemon.pid,
                                           "env": daemon.env}
        # a temporary file of an unpredictable name, created exclusively, then renamed
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE}.", dir=self.dir)
        with os.fdopen(fd, "w") as out:
            json.dump(self.state, out, indent=2, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(self.dir, STATE))

    def role(self, name: str) -> str:
        return self.state["nodes"][name]["role"]

    def set_role(self, name: str, role: str) -> None:
        self.state["nodes"][name]["role"] = role

    def named(self, role: str) -> Optional[str]:
        for name, info in self.state["nodes"].items():
            if info["role"] == role:
                return name
        return None

    def daemon(self, name: str, argv: list, env: Optional[dict] = None,
               node: Optional[Node] = None, pidfile: Optional[str] = None) -> Daemon:
        """The lab's daemon of that name (with its recorded PID), created if new; `node`:
        the node whose postgres it starts, `pidfile`: the PID file it keeps (both cleared
        of a killed predecessor's stale PID before it starts)."""
        if name not in self.daemons:
            self.daemons[name] = Daemon(self, name, argv, env=env)
        found = self.daemons[name]
        found.node, found.pidfile = node, pidfile
        return found

    # --- life ----------------------------------------------------------------------------

    @classmethod
    def prepare_dir(cls, lab_dir: str, ports: list) -> dict:
        """Check the folder and the ports; make the folder the lab's (a new one, or an
        empty one taken as it is: workdir.take). Returns the record of what was made."""
        check_path(lab_dir)
        for port in ports:
            if not port_free(port):
                raise LabError(f"port {port} on 127.0.0.1 is in use ({port_users(port)}); "
                               "choose another --port-base")
        user = LabUser()
        made = take(lab_dir, user)
        # the lab user's: managers (pg_autoctl, patroni) create files next to pgdata
        for sub in (DATA, "sock", "logs"):
            os.mkdir(os.path.join(lab_dir, sub))
            user.chown(os.path.join(lab_dir, sub))
            made["entries"].append(sub)
        return made

    def own(self, name: str) -> None:
        """Record an entry the lab just made at the top of its folder (see workdir)."""
        own_entry(self.state, name)
        self.save()

    def start_built(self) -> None:
        """Build the stack; on any failure stop what was started (see abandon)."""
        self.save()
        try:
            self.build()
        except BaseException as exc:
            self.abandon(exc)

    def abandon(self, exc: BaseException) -> None:
        """A lab that could not be built: stop what it started and keep its state file,
        marked, so its folder stays recognisably the lab's (its logs for a post-mortem)
        and `down --wipe` removes what it made; then fail with the reason."""
        self.down()
        self.state["failed"] = True
        self.save()
        if isinstance(exc, LabError):
            raise LabError(f"{exc}; the lab's files stay in {self.dir} for a look: ptor-lab "
                           f"down --dir {self.dir} --wipe removes them") from None
        raise exc

    def build(self) -> None:
        raise NotImplementedError

    def reload(self) -> None:
        """Re-read the state file: a fault fired by another process (ptor's fault thread, a
        `ptor-lab fault`) may have restarted managers under new PIDs since this object was
        built."""
        if os.path.exists(os.path.join(self.dir, STATE)):
            self.adopt(read_state(self.dir))

    def down(self, wipe: bool = False) -> list[str]:
        """Stop every process this lab started (managers first, by the PIDs the state file
        records now); with `wipe`, remove what the lab made (workdir.remove_made). Returns what
        a wipe left in the folder that is not the lab's."""
        self.reload()
        for daemon in self.daemons.values():
            daemon.kill(signal.SIGKILL)
        for node in self.nodes.values():
            node.stop()
        self.save()
        return remove_made(self.dir, self.state) if wipe else []

    # --- what the lab offers ptor --------------------------------------------------------

    def primary_dsn(self) -> str:
        """What clients use: through the lab's pooler when it has one (one host, no
        target_session_attrs: a pooler's clients cannot pick a node), else the stack's own
        way to the primary."""
        pooler = self.state.get("pooler")
        if pooler:
            return (f"host=127.0.0.1 port={pooler['port']} dbname={self.dbname} "
                    f"user={self.user.name} connect_timeout=2")
        return self.direct_dsn()

    def direct_dsn(self) -> str:
        raise NotImplementedError

    def repo_dsn(self) -> str:
        return self.nodes["repo"].dsn()

    def node_dsns(self) -> dict[str, str]:
        """Each data node by name, reached directly (for the node observer)."""
        return {node.name: node.dsn(self.dbname) for node in self.data_nodes()}

    def data_nodes(self) -> list:
        return [self.nodes[n] for n in self.node_names]

    def current_primary(self) -> Node:
        """The data node that is running and not in recovery, asked of the servers."""
        for node in self.data_nodes():
            if node.running():
                try:
                    if node.query("SELECT NOT pg_is_in_recovery()")[0][0]:
                        return node
                except Exception:
                    continue
        raise LabError("no data node of the lab is a running primary")

    def wait_settled(self, timeout: float = 90) -> None:
        """Until one data node is primary and every other streams from it (the stacks
        with a manager add what their manager must report)."""
        def settled() -> bool:
            (streaming,), = self.current_primary().query(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            return streaming >= len(self.node_names) - 1
        wait_until("one primary and every standby streaming", settled, timeout, 0.1)

    @classmethod
    def offers(cls) -> tuple[str, ...]:
        """The fault actions this lab's stack can inject (each is a method of its own)."""
        return tuple(name for name in FAULT_ACTIONS
                     if callable(getattr(cls, name.replace("-", "_"), None)))

    @classmethod
    def cannot(cls, name: str) -> str:
        """One sentence for an action this stack does not offer, naming those it does."""
        return f"the {cls.stack} lab cannot {name}; it offers {', '.join(cls.offers())}"

    def fault(self, action: str) -> str:
        """Inject a fault by name; returns a one-line description of what was done."""
        try:
            name, seconds = split_action(action)
        except ValueError as exc:
            raise LabError(f"{exc}; the {self.stack} lab offers "  # this lab's, not all
                           f"{', '.join(self.offers())}") from None
        if name not in self.offers():
            raise LabError(self.cannot(name))
        method = getattr(self, name.replace("-", "_"))
        return method() if seconds is None else method(seconds)

    def status(self) -> list[dict]:
        rows = []
        for name, node in self.nodes.items():
            row = {"node": name, "port": node.port, "role": self.role(name),
                   "running": node.running(), "pid": node.pid if node.running() else None,
                   "in_recovery": None, "timeline": None, "replication": None}
            if row["running"]:
                try:
                    (rec, tl), = node.query(
                        "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN "
                        "(SELECT received_tli FROM pg_stat_wal_receiver) ELSE ('x' || "
                        "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
                        " END")
                    row["in_recovery"], row["timeline"] = rec, tl
                    if not rec and name in self.node_names:
                        reps = node.query("SELECT application_name, state, sync_state FROM "
                                          "pg_stat_replication")
                        row["replication"] = ", ".join(f"{a} {s}/{y}" for a, s, y in reps) \
                            or "no standby"
                except Exception as exc:
                    row["replication"] = f"unreachable: {str(exc).strip()[:60]}"
            rows.append(row)
        for name, daemon in self.daemons.items():
            pooler = self.state.get("pooler") if name == "pgbouncer" else None
            rows.append({"node": name, "port": pooler["port"] if pooler else None,
                         "role": f"pooler ({pooler['pool_mode']}, fencing "
                                 f"{pooler['fencing']})" if pooler else "daemon",
                         "running": daemon.running(),
                         "pid": daemon.pid if daemon.running() else None})
        return rows


def wait_until(what: str, check, timeout: float, interval: float = 0.1):
    """Poll `check()` until it returns something truthy; LabError after `timeout`."""
    try:  # an exception is a server that is still coming up
        return Retry(timeout, interval, accept=bool)(check)
    except RetryExhausted as exc:
        last_error = exc.last_error
        detail = f" (last error: {str(last_error).strip()[:120]})" if last_error else ""
        raise LabError(f"timed out after {timeout:g} s waiting for {what}{detail}") from None
