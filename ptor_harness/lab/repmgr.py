"""The repmgr lab: two or three PostgreSQL nodes under repmgr, with repmgrd on each doing
automatic failover, plus a separate repo server.

Ports: node1 = base, node2 = base + 1, (node3 = base + 2,) repo = base + nodes. repmgr's
default replication is asynchronous; `sync` mode sets `synchronous_standby_names` to
`ANY 1 (<every other node>)` on each node, so whichever node is primary waits for one
standby (and a promoted node waits until a standby is back: repmgr does not change it).
repmgrd is tuned for a lab (LAB.md: 1 s monitoring, 2 reconnect attempts 1 s apart: a
failover after about 1.5 s instead of about 60 s with the defaults). Nodes run with
`wal_level = logical`, so the WAL of a crashed primary can be decoded afterwards (the
ground truth of what a failover lost).

A crashed primary rejoins with `repmgr node rejoin --force-rewind` (pg_rewind), as repmgr's
users do. `repmgr standby switchover` drives the other node over SSH, which a loopback lab
does not have, so the lab's switchover runs the same steps itself: a fast shutdown of the
primary (every WAL record reaches the standby), `repmgr standby promote`, `node rejoin`.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

from .base import Lab, wait_until
from .pg import LabError, Node, bindir
from .pooler import hook_path, route_writes
from .streaming import postgres_settings

PACKAGES = "postgresql-15-repmgr"
REPMGR_DB = "repmgr"
# repmgrd's checks, tuned for a lab (LAB.md): unreachable after 2 attempts 1 s apart
TUNING = {"monitor_interval_secs": "1", "reconnect_attempts": "2", "reconnect_interval": "1",
          "promote_check_interval": "1", "primary_visibility_consensus": "false",
          "standby_disconnect_on_failover": "false", "failover": "'automatic'",
          "log_level": "'INFO'", "connection_check_type": "'ping'"}
# How long kill-manager leaves the primary's repmgrd down: several of its standby peers'
# monitoring intervals, so a wrong failover would have happened by then.
MANAGER_DOWN_SECONDS = 6.0


def repmgr_tool(bin_dir: str, name: str) -> str:
    """repmgr's own binary beside PostgreSQL's (not Debian's wrapper script, so a running
    repmgrd is recognised by its executable), or LabError naming the package."""
    path = os.path.join(bin_dir, name)
    if not os.path.exists(path):
        raise LabError(f"{name} is not installed; on Debian: apt-get install -y "
                       f"--no-install-recommends {PACKAGES}")
    return path


class RepmgrLab(Lab):
    """node1..nodeN under repmgr + repmgrd, and a repo server."""

    stack = "repmgr"

    @classmethod
    def up(cls, lab_dir: str, port_base: int = 6030, mode: str = "async",
           nodes: int = 2) -> RepmgrLab:
        if mode not in ("sync", "async"):
            raise LabError(f"mode must be sync or async, not {mode!r}")
        if nodes not in (2, 3):
            raise LabError(f"the repmgr lab has 2 or 3 nodes, not {nodes}")
        repmgr_tool(bindir(), "repmgrd")
        lab_dir = os.path.abspath(lab_dir)
        ports = {f"node{i + 1}": (port_base + i, "primary" if i == 0 else "standby")
                 for i in range(nodes)}
        ports["repo"] = (port_base + nodes, "repo")
        made = cls.prepare_dir(lab_dir, [p for p, _ in ports.values()])
        lab = cls(lab_dir, cls.new_state(lab_dir, port_base, mode, ports, made))
        lab.start_built()
        return lab

    def adopt(self, state: dict) -> None:
        super().adopt(state)
        self.node_names = tuple(sorted(n for n in state["nodes"] if n.startswith("node")))

    # --- configuration -------------------------------------------------------------------

    def node_id(self, name: str) -> int:
        return int(name[len("node"):])

    def conf_path(self, name: str) -> str:
        return os.path.join(self.dir, "data", f"{name}-repmgr.conf")

    def conninfo(self, node: Node) -> str:
        return (f"host=127.0.0.1 port={node.port} user={self.user.name} dbname={REPMGR_DB} "
                "connect_timeout=2")

    def tool(self, name: str) -> str:
        return repmgr_tool(self.bin, name)

    def write_conf(self, name: str) -> None:
        node = self.nodes[name]
        conf = self.conf_path(name)
        repmgr = f"{self.tool('repmgr')} -f {conf} --log-to-file"
        hook = hook_path(self)
        settings = dict(TUNING, **{
            "node_id": str(self.node_id(name)), "node_name": f"'{name}'",
            "conninfo": f"'{self.conninfo(node)}'", "data_directory": f"'{node.datadir}'",
            "pg_bindir": f"'{self.bin}'", "log_file": f"'{self.repmgrd(name).logfile}'",
            "repmgrd_pid_file": f"'{self.repmgrd_pidfile(name)}'",
            # repmgr's documented pooler pattern: the promotion repoints pgbouncer
            "promote_command": f"'{repmgr} standby promote && {{ test ! -x {hook} || "
                               f"{hook} {node.port}; }}'",
            "follow_command": f"'{repmgr} standby follow --upstream-node-id=%n'",
            "service_start_command": f"'{node.tool('pg_ctl')} -D {node.datadir} -l "
                                     f"{node.logfile} -w -t 60 start'",
            "service_stop_command": f"'{node.tool('pg_ctl')} -D {node.datadir} -m fast -w "
                                    "stop'"})
        with open(conf, "w") as out:
            out.write("".join(f"{key}={value}\n" for key, value in settings.items()))
        self.user.chown(conf)

    def repmgr(self, name: str, *args: str, check: bool = True, timeout: float = 120):
        return self.user.run([self.tool("repmgr"), "-f", self.conf_path(name), *args],
                             cwd=self.dir, check=check, timeout=timeout)

    def manager(self, name: str):
        return self.repmgrd(name)

    def repmgrd(self, name: str):
        return self.daemon(f"{name}-repmgrd", [self.tool("repmgrd"), "-f",
                                               self.conf_path(name), "--daemonize=false"],
                           pidfile=self.repmgrd_pidfile(name))

    def repmgrd_pidfile(self, name: str) -> str:
        return os.path.join(self.dir, "sock", name + "-repmgrd.pid")

    def settings(self) -> dict:
        return dict(postgres_settings(self.dir), shared_preload_libraries="'repmgr'",
                    wal_level="logical")

    def make_synchronous(self) -> None:
        """Sync mode, once every standby streams (before, the primary's own setup commits
        would wait forever): each node's own name never matches its own walsenders, so
        `ANY 1 (every node)` means "any other node". ALTER SYSTEM writes each node's
        postgresql.auto.conf, which a rejoin keeps (--config-files)."""
        for name in self.node_names:
            node = self.nodes[name]
            node.query(f"ALTER SYSTEM SET synchronous_standby_names = {self.quorum()}")
            node.query("SELECT pg_reload_conf()")

    def quorum(self) -> str:
        return "'ANY 1 (" + ", ".join(self.node_names) + ")'"
    # --- build ---------------------------------------------------------------------------

    def build(self) -> None:
        first, *others = self.node_names
        primary = self.nodes[first]
        for name in self.node_names:
            self.write_conf(name)
        primary.initdb(self.settings())
        primary.start()
        self.save()
        primary.query(f"CREATE DATABASE {REPMGR_DB}")
        primary.query(f"ALTER ROLE {self.user.name} IN DATABASE {REPMGR_DB} SET search_path "
                      f"TO repmgr, \"$user\", public")
        self.repmgr(first, "primary", "register")
        for name in others:
            node = self.nodes[name]
            self.repmgr(name, "-h", "127.0.0.1", "-p", str(primary.port), "-U",
                        self.user.name, "-d", REPMGR_DB, "standby", "clone",
                        "--fast-checkpoint")
            self.set_port(node)
            node.start()
            self.save()
            self.wait_attached(primary, name)
            self.repmgr(name, "standby", "register", "--wait-sync=60")
        repo = self.nodes["repo"]
        repo.initdb(postgres_settings(self.dir))
        repo.start()
        self.save()
        if self.state["mode"] == "sync":
            self.make_synchronous()
        for name in self.node_names:
            self.repmgrd(name).start()
        self.wait_settled(60)

    @staticmethod
    def wait_attached(primary: Node, name: str, timeout: float = 60) -> None:
        """Until the new standby streams from the primary: `repmgr standby register`
        refuses a node whose WAL sender is still starting ("node "node2" attached in
        state "startup" ... local node not attached to primary node 1", seen once in the
        suite with a core kept busy)."""
        wait_until(f"{name} to stream from {primary.name}",
                   lambda: primary.query("SELECT 1 FROM pg_stat_replication WHERE "
                                         "application_name = %s AND state = 'streaming'",
                                         (name,)) != [], timeout, 0.1)

    def set_port(self, node: Node) -> None:
        """A clone (or a rewind) copies the source's postgresql.auto.conf, port included:
        keep what repmgr wrote there (primary_conninfo) and set the node's own port."""
        path = os.path.join(node.datadir, "postgresql.auto.conf")
        with open(path) as conf:
            kept = [line for line in conf.read().splitlines()
                    if not line.replace(" ", "").startswith("port=")]
        with open(path, "w") as conf:
            conf.write("\n".join(kept + [f"port = {node.port}"]) + "\n")
        self.user.chown(path)

    def direct_dsn(self) -> str:
        """Multi-host DSN over the data nodes: libpq finds whichever is writable."""
        hosts = ",".join("127.0.0.1" for _ in self.node_names)
        ports = ",".join(str(n.port) for n in self.data_nodes())
        return (f"host={hosts} port={ports} dbname={self.dbname} user={self.user.name} "
                "target_session_attrs=read-write connect_timeout=2")

    # --- health --------------------------------------------------------------------------

    def settled(self) -> bool:
        """One running primary that every other node streams from, and repmgrd running
        on every node (by the PIDs the state file has now: a fault run by another process
        restarts repmgrd)."""
        self.reload()
        primary = self.current_primary()
        streaming = {name for name, in primary.query(
            "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")}
        others = {n for n in self.node_names if n != primary.name}
        return others <= streaming and all(self.repmgrd(n).running()
                                           for n in self.node_names)

    def wait_settled(self, timeout: float = 90) -> None:
        wait_until("one primary, every standby streaming, repmgrd on every node",
                   self.settled, timeout, 0.1)
        self.record_roles()

    def record_roles(self) -> None:
        primary = self.current_primary().name
        for name in self.node_names:
            self.set_role(name, "primary" if name == primary else "standby")
        self.save()

    # --- faults --------------------------------------------------------------------------

    def crash_node(self, name: str) -> None:
        """SIGKILL the node's repmgrd and its postgres together: a node crash."""
        node = self.nodes[name]
        self.repmgrd(name).kill(signal.SIGKILL, tree=False)
        node.kill(signal.SIGKILL)
        self.set_role(name, "failed")
        self.save()

    def registered_primary(self, node: Node) -> str:
        """The primary as repmgr's metadata on `node` has it (repmgr updates it once a
        promotion is complete; rejoining before that is refused)."""
        rows = node.query("SELECT node_name FROM repmgr.nodes WHERE type = 'primary' AND "
                          "active", dbname=REPMGR_DB)
        return rows[0][0] if len(rows) == 1 else ""

    def wait_promoted(self, old: str, timeout: float = 60) -> Node:
        """Until repmgrd has promoted another node, and recorded it."""
        def promoted():
            node = self.current_primary()
            return node if node.name != old and self.registered_primary(node) == node.name \
                else None
        return wait_until("repmgrd to promote a standby", promoted, timeout, 0.05)

    def rejoin(self, name: str, new: Node) -> str:
        """`repmgr node rejoin --force-rewind` against the new primary (pg_rewind; repmgr
        starts the node through service_start_command), else a fresh `standby clone`;
        then the node's repmgrd again. Returns how it rejoined."""
        node = self.nodes[name]
        self.repmgrd(name).kill(signal.SIGKILL, tree=False)  # a stopped node's own repmgrd
        node.kill(signal.SIGKILL)
        node.clear_stale_lock()
        # pg_rewind reads the source's control file: a just-promoted source must have
        # checkpointed on its new timeline, or the rewound node cannot replay to it
        new.query("CHECKPOINT")
        done = self.repmgr(name, "node", "rejoin", "-d", self.conninfo(new),
                           "--force-rewind", "--config-files=postgresql.auto.conf",
                           check=False, timeout=180)
        how = "repmgr node rejoin --force-rewind"
        if done.returncode != 0:
            node.kill(signal.SIGKILL)
            shutil.rmtree(node.datadir, ignore_errors=True)
            self.repmgr(name, "-h", "127.0.0.1", "-p", str(new.port), "-U", self.user.name,
                        "-d", REPMGR_DB, "standby", "clone", "--fast-checkpoint")
            self.set_port(node)  # the source's auto.conf: its synchronous_standby_names too
            node.start()
            self.wait_attached(new, name)
            self.repmgr(name, "standby", "register", "--force", "--wait-sync=60")
            how = "a fresh repmgr standby clone (node rejoin failed)"
        node.running()  # learn the postmaster PID repmgr started
        # repmgrd reads the node's registration from the node itself, a standby replaying
        # the new primary: started before the rejoin's update has replayed there, it finds
        # itself "registered as a primary but running as a standby" and ends, and the lab
        # never settles (seen with three nodes on a busy machine)
        wait_until(f"{name}'s registration as a standby to replay on it",
                   lambda: node.query("SELECT type FROM repmgr.nodes WHERE node_name = %s",
                                      (name,), dbname=REPMGR_DB) == [("standby",)], 60, 0.1)
        self.repmgrd(name).start()
        self.follow(new)
        self.wait_settled(60)
        return how

    def follow(self, primary: Node, patience: float = 10) -> None:
        """A third node's repmgrd follows the new primary by itself; one that was busy
        (following the previous primary when this one failed) ends up cascading from a
        standby or from nothing: make it follow, as its operator would."""
        siblings = {n for n in self.node_names if n != primary.name}

        def streaming() -> set:
            return {n for n, in primary.query("SELECT application_name FROM "
                                              "pg_stat_replication WHERE state = 'streaming'")}
        try:
            wait_until("the standbys to stream from the new primary",
                       lambda: siblings <= streaming(), patience, 0.2)
        except LabError:
            for name in siblings - streaming():
                self.repmgr(name, "standby", "follow",
                            f"--upstream-node-id={self.node_id(primary.name)}", check=False)

    def fail_over(self, sig: int, what: str) -> str:
        old = self.current_primary().name
        if sig == signal.SIGKILL:
            self.crash_node(old)
        else:
            self.nodes[old].kill(sig)
        started = time.monotonic()
        new = self.wait_promoted(old)
        promoted = time.monotonic() - started
        how = self.rejoin(old, new)
        return (f"{what} {old}; repmgrd promoted {new.name} after {promoted:.1f} s; {old} "
                f"rejoined as a standby by {how}")

    def kill_primary(self) -> str:
        return self.fail_over(signal.SIGKILL, "killed repmgrd and postgres of")

    def stop_primary(self) -> str:
        return self.fail_over(signal.SIGQUIT, "immediate shutdown of postgres on")

    def switchover(self) -> str:
        """A planned switchover, repmgr's steps without SSH: fast shutdown of the primary,
        promote the most advanced standby, rejoin the old primary, siblings follow."""
        old = self.current_primary().name
        candidate = next(n for n in self.node_names if n != old)
        started = time.monotonic()
        self.repmgrd(old).kill(signal.SIGKILL, tree=False)
        self.nodes[old].kill(signal.SIGINT)
        self.set_role(old, "failed")
        self.save()
        self.repmgr(candidate, "standby", "promote")
        new = self.nodes[candidate]
        route_writes(self, new)
        for sibling in self.node_names:
            if sibling not in (old, candidate):
                self.repmgr(sibling, "standby", "follow", f"--upstream-node-id="
                            f"{self.node_id(candidate)}")
        promoted = time.monotonic() - started
        how = self.rejoin(old, new)
        return (f"switched over from {old} to {candidate} in {promoted:.1f} s (fast "
                f"shutdown, repmgr standby promote); {old} rejoined as a standby by {how}")

    def kill_manager(self) -> str:
        """SIGKILL the primary's repmgrd, postgres left running: its standbys still see
        the primary, so nothing may fail over. Restarted after MANAGER_DOWN_SECONDS."""
        name = self.current_primary().name
        self.repmgrd(name).kill(signal.SIGKILL, tree=False)
        time.sleep(MANAGER_DOWN_SECONDS)
        primary = self.current_primary().name
        self.repmgrd(name).start()
        return (f"killed repmgrd of {name} (postgres left running); after "
                f"{MANAGER_DOWN_SECONDS:g} s the primary was {primary}; repmgrd restarted")

    def stop_node(self, name: str, crash: bool = True) -> None:
        """Crash one node (its repmgrd too), as a fault step of a user's own command."""
        if name not in self.node_names:
            raise LabError(f"no data node {name!r}; nodes: {', '.join(self.node_names)}")
        if crash:
            self.crash_node(name)
        else:
            self.nodes[name].kill(signal.SIGQUIT)
            self.save()

    def start_node(self, name: str) -> None:
        """Start one stopped node as it is (its repmgrd too, if crashed with it)."""
        if name not in self.node_names:
            raise LabError(f"no data node {name!r}; nodes: {', '.join(self.node_names)}")
        if self.role(name) == "failed":
            raise LabError(f"{name} is a failed primary; starting it as it is would make a "
                           "second primary")
        self.nodes[name].start()
        if not self.repmgrd(name).running():
            self.repmgrd(name).start()
        self.save()
