"""The streaming lab: a primary, one streaming standby and a separate repo server.

Ports: node1 = base, node2 = base + 1, repo = base + 2, all on 127.0.0.1. `sync` mode makes
the standby synchronous (`synchronous_standby_names`), `async` leaves it asynchronous.
There is no failover manager: the lab itself plays one when a fault asks for it (promote
the standby, then rejoin the old primary as a standby with pg_rewind, or a fresh clone
when pg_rewind cannot), so a drill can fail over and back.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

from .base import Lab, wait_until
from .pg import LabError, Node
from .pooler import route_writes

STANDBY_NAME = "standby"
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "hot_standby": "on",
    "wal_log_hints": "on",
    "wal_keep_size": "'512MB'",
    "synchronous_commit": "on",
    "shared_buffers": "128MB",
    "max_connections": "300",
    # A promote request that arrives while the standby waits for WAL from a dead primary
    # otherwise sleeps out this interval (5 s by default) before promoting.
    "wal_retrieve_retry_interval": "'100ms'",
    "log_min_messages": "warning",
    "logging_collector": "off",
}


def postgres_settings(lab_dir: str) -> dict:
    return dict(SETTINGS, unix_socket_directories=f"'{os.path.join(lab_dir, 'sock')}'")


class StreamingLab(Lab):
    """A primary/standby pair plus a repo server."""

    stack = "streaming"
    node_names = ("node1", "node2")

    @classmethod
    def up(cls, lab_dir: str, port_base: int = 6041, mode: str = "sync") -> StreamingLab:
        if mode not in ("sync", "async"):
            raise LabError(f"mode must be sync or async, not {mode!r}")
        lab_dir = os.path.abspath(lab_dir)
        ports = {"node1": (port_base, "primary"), "node2": (port_base + 1, "standby"),
                 "repo": (port_base + 2, "repo")}
        made = cls.prepare_dir(lab_dir, [p for p, _ in ports.values()])
        lab = cls(lab_dir, cls.new_state(lab_dir, port_base, mode, ports, made))
        lab.start_built()
        return lab

    def build(self) -> None:
        settings = postgres_settings(self.dir)
        primary, standby, repo = self.nodes["node1"], self.nodes["node2"], self.nodes["repo"]
        primary.initdb(settings)
        primary.start()
        self.save()
        self.clone(standby, primary)
        standby.start()
        self.save()
        repo.initdb(settings)
        repo.start()
        self.save()
        self.attach_standby(primary)

    def direct_dsn(self) -> str:
        """Multi-host DSN over both data nodes: libpq finds whichever is writable."""
        ports = ",".join(str(n.port) for n in self.data_nodes())
        return (f"host=127.0.0.1,127.0.0.1 port={ports} dbname=postgres "
                f"user={self.user.name} target_session_attrs=read-write connect_timeout=2")

    # --- replication plumbing --------------------------------------------------------------

    def clone(self, standby: Node, source: Node) -> None:
        """Make `standby` a fresh streaming copy of `source` (pg_basebackup)."""
        if os.path.exists(standby.datadir):
            shutil.rmtree(standby.datadir)
        standby.make_datadir()
        self.user.run([standby.tool("pg_basebackup"), "-h", "127.0.0.1", "-p",
                       str(source.port), "-U", self.user.name, "-D", standby.datadir,
                       "-X", "stream", "-c", "fast", "--no-sync"], cwd=self.dir)
        self.make_standby(standby, source)

    def make_standby(self, standby: Node, source: Node) -> None:
        """pg_basebackup and pg_rewind copy the source's auto.conf: rewrite it whole."""
        standby.write_auto_conf({"primary_conninfo": f"'host=127.0.0.1 port={source.port} "
                                 f"user={self.user.name} application_name={STANDBY_NAME}'"})
        signal_file = os.path.join(standby.datadir, "standby.signal")
        open(signal_file, "w").close()
        self.user.chown(signal_file)

    def attach_standby(self, primary: Node) -> None:
        """Make the standby synchronous (sync mode) and wait until it streams."""
        if self.state["mode"] == "sync":
            primary.query(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            primary.query("SELECT pg_reload_conf()")
        self.wait_replication(primary, "sync" if self.state["mode"] == "sync" else "async")

    def wait_replication(self, primary: Node, sync_state: str, timeout: float = 30) -> None:
        wait_until(f"the standby to stream ({sync_state})", lambda: primary.query(
            "SELECT 1 FROM pg_stat_replication WHERE application_name = %s "
            "AND state = 'streaming' AND sync_state = %s", (STANDBY_NAME, sync_state)),
            timeout, 0.05)

    def promote(self, node: Node) -> None:
        """Promote `node`; a standby that is not running is started first."""
        if not node.running():
            node.start()
        # A promoted standby that inherited synchronous_standby_names would block writes.
        node.query("ALTER SYSTEM RESET synchronous_standby_names")
        node.query("SELECT pg_reload_conf()")
        node.promote()
        route_writes(self, node)

    def rejoin(self, old: Node, new: Node) -> str:
        """Bring a former primary back as a standby of `new`: pg_rewind, else (it failed,
        or the rewound node would not start) a fresh clone."""
        # pg_rewind reads the source's timeline from its control file, which a promoted
        # node updates only with its end-of-recovery checkpoint: under load that may not
        # have finished, and the rewound node then asked for a minimum recovery point on
        # the old timeline and refused to start (seen here after a failback under load)
        new.query("CHECKPOINT")
        old.clear_stale_lock()  # pg_rewind runs the crashed node in single-user mode first
        done = self.user.run([old.tool("pg_rewind"), "-D", old.datadir,
                              f"--source-server={new.dsn()}"], cwd=self.dir, check=False,
                             timeout=120)
        how = "pg_rewind"
        if done.returncode == 0:
            self.make_standby(old, new)
            try:
                old.start()
            except LabError:
                how = "a fresh clone (the rewound node did not start)"
        else:
            how = "a fresh clone"
        if how != "pg_rewind":
            self.clone(old, new)
            old.start()
        self.attach_standby(new)
        return how

    # --- faults ----------------------------------------------------------------------------

    def failover(self, sig: int = signal.SIGKILL, rejoin: bool = False) -> str:
        """Stop the primary with `sig` and promote the standby; optionally rejoin the old
        primary as the new standby (so a drill can fail back later)."""
        old_name, new_name = self.named("primary"), self.named("standby")
        if old_name is None or new_name is None:
            raise LabError("the lab has no primary/standby pair to fail over")
        old, new = self.nodes[old_name], self.nodes[new_name]
        old.kill(sig)
        self.set_role(old_name, "failed")
        self.save()
        started = time.monotonic()
        self.promote(new)
        promoted = time.monotonic() - started
        self.set_role(new_name, "primary")
        self.save()
        line = f"stopped {old_name} ({signal.Signals(sig).name}), promoted {new_name} in " \
               f"{promoted:.2f} s"
        if rejoin:
            how = self.rejoin(old, new)
            self.set_role(old_name, "standby")
            self.save()
            line += f", {old_name} rejoined as standby by {how}"
        return line

    def kill_primary(self) -> str:
        return self.failover(signal.SIGKILL, rejoin=True)

    def stop_primary(self) -> str:
        return self.failover(signal.SIGQUIT, rejoin=True)

    def switchover(self) -> str:
        """Planned: fast shutdown (all WAL reaches the standby), promote, rejoin."""
        return self.failover(signal.SIGINT, rejoin=True)

    def hang_primary(self) -> str:
        """Freeze the primary (SIGSTOP of the postmaster and every backend: sessions stay
        open, statements never return, the kernel still answers TCP) and promote the
        standby. The frozen node stays frozen, marked failed, until `down`."""
        old_name, new_name = self.named("primary"), self.named("standby")
        if old_name is None or new_name is None:
            raise LabError("the lab has no primary/standby pair")
        frozen = self.nodes[old_name].freeze()
        self.set_role(old_name, "failed")
        self.save()
        self.promote(self.nodes[new_name])
        self.set_role(new_name, "primary")
        self.save()
        return f"froze {old_name} ({frozen} processes stopped), promoted {new_name}"

    def split_brain(self, spread_timeout: float = 15.0) -> str:
        """Promote the standby while the old primary keeps running and writable (no
        fencing), then spread ptor's worker sessions over both: a client whose DSN reaches
        either (libpq's load_balance_hosts=random) writes to two primaries at once. The
        lab stays split until `down`; it exists so ptor's split-brain detection can be
        shown on a real pair."""
        old_name, new_name = self.named("primary"), self.named("standby")
        if old_name is None or new_name is None:
            raise LabError("the lab has no primary/standby pair to split")
        old, new = self.nodes[old_name], self.nodes[new_name]
        # the old primary must not wait for a synchronous standby that is gone
        old.query("ALTER SYSTEM RESET synchronous_standby_names")
        old.query("SELECT pg_reload_conf()")
        self.promote(new)
        self.set_role(new_name, "primary")
        self.set_role(old_name, "split primary")
        self.save()
        sessions = ("SELECT pid FROM pg_stat_activity WHERE application_name LIKE "
                    "'ptor-worker-%%'")
        deadline = time.monotonic() + spread_timeout
        rounds = 0
        while time.monotonic() < deadline:
            on_old, on_new = len(old.query(sessions)), len(new.query(sessions))
            if on_old and on_new:
                return (f"promoted {new_name} with {old_name} still a writable primary; "
                        f"ptor sessions: {on_old} on {old_name}, {on_new} on {new_name} "
                        f"after {rounds} round(s) of reconnects")
            crowded = old if on_old else new  # everyone on one side: make them reconnect
            crowded.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "application_name LIKE 'ptor-worker-%%'")
            rounds += 1
            time.sleep(0.3)
        return f"promoted {new_name} with {old_name} still a writable primary; ptor's " \
               "sessions did not spread over both"

    def kill_standby_then_primary(self) -> str:
        """Crash the standby, 1 s later the primary; then start the standby as it is (it
        has only what it received before its crash) and promote it: what the primary
        committed alone is lost unless it waited for the standby (sync)."""
        standby = self.named("standby")
        if standby is None:
            raise LabError("the lab has no standby")
        self.nodes[standby].kill(signal.SIGKILL)
        time.sleep(1.0)
        return f"crashed the standby {standby}, 1 s later: " + self.failover(
            signal.SIGKILL, rejoin=True)

    def restart_cluster(self) -> str:
        """Every data node down at once (immediate shutdown), then up again: the primary
        first, then the standby, which streams again."""
        primary, standby = self.named("primary"), self.named("standby")
        if primary is None or standby is None:
            raise LabError("the lab has no primary/standby pair")
        started = time.monotonic()
        for name in (primary, standby):
            self.nodes[name].kill(signal.SIGQUIT)
        self.nodes[primary].start()
        self.nodes[standby].start()
        self.save()
        self.wait_replication(self.nodes[primary],
                              "sync" if self.state["mode"] == "sync" else "async")
        return f"stopped {primary} and {standby} (immediate), started them again; " \
               f"{standby} streaming after {time.monotonic() - started:.1f} s"

    def stop_node(self, name: str, crash: bool = True) -> None:
        if name not in self.nodes:
            raise LabError(f"no node {name!r}; nodes: {', '.join(self.nodes)}")
        self.nodes[name].kill(signal.SIGKILL if crash else signal.SIGQUIT)
        self.save()

    def start_node(self, name: str) -> None:
        if name not in self.nodes:
            raise LabError(f"no node {name!r}; nodes: {', '.join(self.nodes)}")
        if self.role(name) == "failed":
            raise LabError(f"{name} is a failed primary; starting it as it is would make a "
                           "second primary")
        self.nodes[name].start()
        self.save()
