"""The pg_auto_failover lab: a monitor and two data nodes, each under its own
`pg_autoctl run` that the lab starts and restarts; plus a separate repo server.

Ports: monitor = base, node1 = base + 1, node2 = base + 2, repo = base + 3. Replication is
synchronous (pg_auto_failover's default with two nodes). The monitor's health checks are
tuned for a lab (about 6 s to fail over instead of about 51 s with the defaults). Every
pg_autoctl call runs as the lab user with its state, config, runtime directory and unix
sockets kept inside the lab directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psycopg2

from .base import Lab, find_program, wait_until
from .pg import LabError, query_once
from .streaming import postgres_settings

PACKAGES = "postgresql-15-auto-failover pg-auto-failover-cli"
FAST_MONITOR = (
    "ALTER SYSTEM SET pgautofailover.health_check_period = 1000",
    "ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000",
    "ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1",
    "ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500",
    "ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 3000",
    "ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 3000",
    "SELECT pg_reload_conf()",
)
DBNAME = "appdb"
# How long kill-manager leaves a node without its pg_autoctl: the tuned unhealthy timeout
# (3 s) plus the demote timeout (3 s), and room for the monitor's next health checks.
MANAGER_DOWN_SECONDS = 8.0
# How long a primary crashed while its standby was away stays down with the stale standby
# back and running: longer than the monitor's failover (3 s unhealthy + 3 s demote timeout)
NO_CANDIDATE_HOLD_SECONDS = 15.0


class Rebuilds:
    """When to hurry a node that rejoins by copying the primary.

    A crashed node rejoins with pg_rewind, and when that fails (pg_autoctl 2.0 can start
    it while the postgres it ran for crash recovery still holds the lock file: seen under
    load) with pg_basebackup, which pg_autoctl runs without a fast checkpoint: the copy
    waits for a spread checkpoint of the primary, up to 0.9 of checkpoint_timeout (4.5 min
    after a drill dirtied the cache). A CHECKPOINT asked of the primary finishes that one
    at once. So a node still catching up after CATCHING_UP_SECONDS gets one, and another
    every HURRY_EVERY seconds while it is: a checkpoint costs a settled lab nothing."""

    CATCHING_UP_SECONDS = 5.0
    HURRY_EVERY = 10.0

    def __init__(self) -> None:
        self.since: dict = {}
        self.last: float = float("-inf")

    def hurry(self, states: dict, now: float):
        """The primary to ask for a CHECKPOINT now, given the monitor's `states` (name ->
        (reported, goal)); else None."""
        catching_up = {name for name, pair in states.items() if "catchingup" in pair}
        self.since = {name: self.since.get(name, now) for name in catching_up}
        primary = next((name for name, (reported, _) in sorted(states.items())
                        if reported in ("primary", "wait_primary")), None)
        waited = max((now - since for since in self.since.values()), default=0.0)
        if primary is None or waited < self.CATCHING_UP_SECONDS or \
                now - self.last < self.HURRY_EVERY:
            return None
        self.last = now
        return primary


def pg_autoctl() -> str:
    return find_program("pg_autoctl", PACKAGES)


class AutoFailoverLab(Lab):
    """monitor + node1 + node2 under pg_autoctl, and a repo server."""

    stack = "auto-failover"
    dbname = DBNAME
    node_names = ("node1", "node2")

    @classmethod
    def up(cls, lab_dir: str, port_base: int = 6010, mode: str = "sync") -> AutoFailoverLab:
        if mode != "sync":
            raise LabError("the auto-failover lab is synchronous (pg_auto_failover's default "
                           "with two nodes)")
        pg_autoctl()
        lab_dir = os.path.abspath(lab_dir)
        ports = {"monitor": (port_base, "monitor"), "node1": (port_base + 1, "primary"),
                 "node2": (port_base + 2, "standby"), "repo": (port_base + 3, "repo")}
        made = cls.prepare_dir(lab_dir, [p for p, _ in ports.values()])
        lab = cls(lab_dir, cls.new_state(lab_dir, port_base, mode, ports, made))
        lab.start_built()
        return lab

    # --- environment ---------------------------------------------------------------------

    @property
    def env(self) -> dict:
        xdg = os.path.join(self.dir, "xdg")
        sock = os.path.join(self.dir, "sock")
        return {"PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "XDG_CONFIG_HOME": f"{xdg}/config", "XDG_DATA_HOME": f"{xdg}/data",
                "XDG_RUNTIME_DIR": f"{xdg}/run", "PG_REGRESS_SOCK_DIR": sock, "PGHOST": sock}

    def autoctl(self, *args: str, timeout: float = 120):
        return self.user.run([pg_autoctl(), *args], cwd=self.dir, env=self.env,
                             timeout=timeout)

    @property
    def monitor_uri(self) -> str:
        return (f"postgres://autoctl_node@127.0.0.1:{self.nodes['monitor'].port}/"
                "pg_auto_failover?sslmode=disable")

    def monitor_query(self, sql: str) -> list:
        monitor = self.nodes["monitor"]
        return query_once(psycopg2.connect(
            host=os.path.join(self.dir, "sock"), port=monitor.port, dbname="pg_auto_failover",
            user=self.user.name, connect_timeout=3, application_name="ptor-lab"), sql)

    def states(self) -> dict:
        """node name -> (reported state, goal state), as the monitor sees them."""
        return {name: (reported, goal) for name, reported, goal in self.monitor_query(
            "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node")}

    def manager(self, name: str):
        return self.keeper(name)

    def keeper(self, name: str):
        node = self.nodes[name]
        # pg_autoctl keeps its PID file under XDG_RUNTIME_DIR, by the data directory's path
        pidfile = os.path.join(self.dir, "xdg", "run", "pg_autoctl",
                               node.datadir.lstrip("/"), "pg_autoctl.pid")
        return self.daemon(name + "-keeper", [pg_autoctl(), "run", "--pgdata", node.datadir],
                           env=self.env, node=node, pidfile=pidfile)

    # --- build ---------------------------------------------------------------------------

    def build(self) -> None:
        self.own("xdg")
        for sub in ("xdg", "xdg/config", "xdg/data", "xdg/run"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o700, exist_ok=True)
            self.user.chown(os.path.join(self.dir, sub))
        monitor = self.nodes["monitor"]
        self.autoctl("create", "monitor", "--pgdata", monitor.datadir, "--pgport",
                     str(monitor.port), "--hostname", "127.0.0.1", "--auth", "trust",
                     "--no-ssl")
        self.autoctl("config", "set", "--pgdata", monitor.datadir,
                     "postgresql.listen_addresses", "127.0.0.1")
        self.daemon("monitor-keeper", [pg_autoctl(), "run", "--pgdata", monitor.datadir],
                    env=self.env).start()
        wait_until("the monitor", lambda: self.monitor_query("SELECT 1"), 60)
        for statement in FAST_MONITOR:
            self.monitor_query(statement)
        for name in self.node_names:
            node = self.nodes[name]
            self.autoctl("create", "postgres", "--pgdata", node.datadir, "--pgport",
                         str(node.port), "--name", name, "--hostname", "127.0.0.1",
                         "--listen", "127.0.0.1", "--pghost", os.path.join(self.dir, "sock"),
                         "--auth", "trust", "--no-ssl", "--dbname", DBNAME, "--username",
                         self.user.name, "--monitor", self.monitor_uri)
            self.keeper(name).start()
            wait_until(f"{name} to accept connections",
                       lambda node=node: node.query("SELECT 1", dbname=DBNAME), 60)
        self.wait_healthy(90)
        repo = self.nodes["repo"]
        repo.initdb(postgres_settings(self.dir))
        repo.start()
        for name in ("monitor", *self.node_names):
            self.nodes[name].running()  # learn the postmaster PIDs pg_autoctl started
        self.save()

    def wait_healthy(self, timeout: float) -> None:
        """Until one node is primary and the other secondary, both settled. A node that
        stays catching up gets its rebuild hurried (see Rebuilds)."""
        rebuilds = Rebuilds()

        def healthy():
            states = self.states()
            if sorted(states.values()) == [("primary", "primary"), ("secondary", "secondary")]:
                return True
            primary = rebuilds.hurry(states, time.monotonic())
            if primary is not None:
                self.hurry_copies_of(primary)
            return False
        wait_until("a primary and a secondary", healthy, timeout, 0.2)

    def hurry_copies_of(self, primary: str) -> None:
        """Finish at once the spread checkpoint a copy of `primary` waits for."""
        with contextlib.suppress(Exception):  # a primary still starting: next time
            self.nodes[primary].query("CHECKPOINT", dbname=DBNAME)

    def direct_dsn(self) -> str:
        ports = ",".join(str(n.port) for n in self.data_nodes())
        return (f"host=127.0.0.1,127.0.0.1 port={ports} dbname={DBNAME} "
                f"user={self.user.name} target_session_attrs=read-write connect_timeout=2")

    def primary_name(self) -> str:
        for name, (reported, goal) in self.states().items():
            if goal in ("primary", "wait_primary") or reported in ("primary", "wait_primary"):
                return name
        return self.current_primary().name

    # --- faults --------------------------------------------------------------------------

    def crash_node(self, name: str) -> None:
        """SIGKILL the node's pg_autoctl and its postgres together: a node crash."""
        node = self.nodes[name]
        postmaster = node.pid if node.running() else None
        self.keeper(name).kill(signal.SIGKILL)
        node.pid = postmaster
        node.kill(signal.SIGKILL)

    def recover_node(self, name: str, timeout: float = 90) -> None:
        """Once the other node has taken over, restart this node's pg_autoctl: it rejoins
        as a secondary (pg_rewind) so the drill can fail back later."""
        other = next(n for n in self.node_names if n != name)
        wait_until(f"{other} to become primary", lambda: self.states()[other][0] in (
            "primary", "wait_primary"), timeout, 0.2)
        self.keeper(name).start()
        self.save()

    def kill_primary(self) -> str:
        name = self.primary_name()
        other = next(n for n in self.node_names if n != name)
        if not self.nodes[other].running():
            return self.kill_primary_without_candidate(name, other)
        self.crash_node(name)
        started = time.monotonic()
        self.recover_node(name)
        return (f"killed pg_autoctl and postgres of {name}; the monitor failed over in "
                f"{time.monotonic() - started:.1f} s; {name}'s pg_autoctl restarted")

    def kill_primary_without_candidate(self, name: str, other: str) -> str:
        """The primary crashes while its standby is away (e.g. after stop-sync-standby):
        the standby's pg_autoctl is started again at once, so a standby that lacks the
        commits acknowledged since it went away is there to be promoted. The monitor must
        not promote it (pg_auto_failover's guard against data loss). After
        NO_CANDIDATE_HOLD_SECONDS, the crashed node's pg_autoctl is restarted: it comes
        back as the primary, with every commit it acknowledged, and the standby catches up.
        What the monitor did meanwhile is in the output; a promotion is for the drill's
        verdict to judge (--expect no-promotion)."""
        self.crash_node(name)
        self.keeper(other).start()
        seen: list[str] = []
        deadline = time.monotonic() + NO_CANDIDATE_HOLD_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # the monitor busy: ask again
                reported, goal = self.states()[other]
                if not seen or seen[-1] != f"{reported}/{goal}":
                    seen.append(f"{reported}/{goal}")
            time.sleep(0.2)
        self.keeper(name).start()
        wait_until(f"a primary again after {name} restarted",
                   lambda: any(r in ("primary", "wait_primary")
                               for r, _ in self.states().values()), 90, 0.2)
        self.save()
        now = ", ".join(f"{n} {r}/{g}" for n, (r, g) in sorted(self.states().items()))
        return (f"killed pg_autoctl and postgres of {name} while {other} was away, then "
                f"started {other}'s pg_autoctl; over {NO_CANDIDATE_HOLD_SECONDS:g} s the "
                f"monitor had {other} {' -> '.join(seen) or 'unanswered'}; {name}'s "
                f"pg_autoctl restarted: {now}")

    def stop_primary(self) -> str:
        name = self.primary_name()
        self.nodes[name].kill(signal.SIGQUIT)
        return f"immediate shutdown of {name}'s postgres (pg_autoctl may restart it)"

    def switchover(self) -> str:
        started = time.monotonic()
        self.autoctl("perform", "switchover", "--pgdata", self.nodes["monitor"].datadir,
                     timeout=120)
        return f"pg_autoctl perform switchover returned after " \
               f"{time.monotonic() - started:.1f} s"

    def kill_manager(self) -> str:
        """SIGKILL the primary node's pg_autoctl, postgres left running. The monitor
        checks postgres itself, so it may keep the primary; a primary it cannot reach
        fails over. After the monitor's unhealthy timeout and demote timeout have passed
        (about 8 s with the lab's tuning), restart the killed pg_autoctl so the node
        reports again (and rejoins, if the monitor failed over)."""
        name = self.primary_name()
        node = self.nodes[name]
        spare = (node.pid,) if node.running() else ()
        self.keeper(name).kill(signal.SIGKILL, spare=spare)
        time.sleep(MANAGER_DOWN_SECONDS)
        states = self.states()
        self.keeper(name).start()
        return f"killed pg_autoctl of {name} (postgres left running); after " \
               f"{MANAGER_DOWN_SECONDS:g} s the monitor saw " + \
               ", ".join(f"{n} {r}/{g}" for n, (r, g) in sorted(states.items())) + \
               f"; {name}'s pg_autoctl restarted"

    def status(self) -> list[dict]:
        rows = super().status()
        try:
            states = self.states()
        except Exception:
            states = {}
        for row in rows:
            if row["node"] in states:
                row["role"] = "/".join(states[row["node"]])
        return rows

    def wait_settled(self, timeout: float = 90) -> None:
        self.wait_healthy(timeout)

