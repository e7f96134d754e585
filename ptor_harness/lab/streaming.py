"""The streaming lab: a primary, one streaming standby and a separate repo server.

Ports: node1 = base, node2 = base + 1, repo = base + 2, all on 127.0.0.1. `sync` mode makes
the standby synchronous (`synchronous_standby_names`), `async` leaves it asynchronous. The
lab's state (ports, roles, postmaster PIDs) lives in `<dir>/lab.json`, so every ptor-lab
command, and ptor's --failover-command, can act on the same lab.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from typing import Optional

from .pg import LabError, LabUser, Node, bindir, port_free

STATE = "lab.json"
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


class StreamingLab:
    """A primary/standby pair plus a repo server, driven through its state file."""

    stack = "streaming"

    def __init__(self, lab_dir: str, state: dict) -> None:
        self.dir = os.path.abspath(lab_dir)
        self.state = state
        self.user = LabUser(state.get("user"))
        self.bin = state["bindir"]
        self.nodes = {name: Node(name, self.dir, info["port"], self.user, self.bin,
                                 info.get("pid"))
                      for name, info in state["nodes"].items()}

    # --- state ---------------------------------------------------------------------------

    @classmethod
    def load(cls, lab_dir: str) -> StreamingLab:
        path = os.path.join(lab_dir, STATE)
        try:
            with open(path) as src:
                state = json.load(src)
        except FileNotFoundError:
            raise LabError(f"no lab in {lab_dir} (no {STATE}); start one with "
                           f"ptor-lab up --dir {lab_dir}") from None
        return cls(lab_dir, state)

    def save(self) -> None:
        for name, node in self.nodes.items():
            self.state["nodes"][name]["pid"] = node.pid
        path = os.path.join(self.dir, STATE)
        with open(path + ".tmp", "w") as out:
            json.dump(self.state, out, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)

    def role(self, name: str) -> str:
        return self.state["nodes"][name]["role"]

    def set_role(self, name: str, role: str) -> None:
        self.state["nodes"][name]["role"] = role

    def named(self, role: str) -> Optional[str]:
        for name, info in self.state["nodes"].items():
            if info["role"] == role:
                return name
        return None

    # --- DSNs ----------------------------------------------------------------------------

    def primary_dsn(self) -> str:
        """Multi-host DSN over both data nodes: libpq finds whichever is writable."""
        ports = ",".join(str(self.nodes[n].port) for n in ("node1", "node2"))
        return (f"host=127.0.0.1,127.0.0.1 port={ports} dbname=postgres "
                f"user={self.user.name} target_session_attrs=read-write connect_timeout=2")

    def repo_dsn(self) -> str:
        return self.nodes["repo"].dsn()

    # --- life ----------------------------------------------------------------------------

    @classmethod
    def up(cls, lab_dir: str, port_base: int = 6041, mode: str = "sync") -> StreamingLab:
        if mode not in ("sync", "async"):
            raise LabError(f"mode must be sync or async, not {mode!r}")
        lab_dir = os.path.abspath(lab_dir)
        if os.path.exists(os.path.join(lab_dir, STATE)):
            raise LabError(f"a lab already exists in {lab_dir}; run ptor-lab down --dir "
                           f"{lab_dir} --wipe first")
        for port in (port_base, port_base + 1, port_base + 2):
            if not port_free(port):
                raise LabError(f"port {port} on 127.0.0.1 is in use; choose another "
                               "--port-base")
        user = LabUser()
        os.makedirs(lab_dir, exist_ok=True)
        os.chmod(lab_dir, 0o755)
        user.check_reachable(lab_dir)
        for sub in ("sock", "logs"):
            os.makedirs(os.path.join(lab_dir, sub), exist_ok=True)
            user.chown(os.path.join(lab_dir, sub))
        state = {
            "stack": cls.stack, "mode": mode, "user": user.name, "bindir": bindir(),
            "port_base": port_base, "created_at": time.time(),
            "nodes": {"node1": {"port": port_base, "role": "primary"},
                      "node2": {"port": port_base + 1, "role": "standby"},
                      "repo": {"port": port_base + 2, "role": "repo"}},
        }
        lab = cls(lab_dir, state)
        lab.save()
        try:
            lab.build()
        except BaseException:
            lab.down()
            os.remove(os.path.join(lab_dir, STATE))  # logs stay for a post-mortem
            raise
        return lab

    def build(self) -> None:
        settings = dict(SETTINGS, unix_socket_directories=f"'{os.path.join(self.dir, 'sock')}'")
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
        if self.state["mode"] == "sync":
            primary.query(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            primary.query("SELECT pg_reload_conf()")
            self.wait_replication(primary, "sync")
        else:
            self.wait_replication(primary, "async")

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
        standby.write_auto_conf({"primary_conninfo": f"'host=127.0.0.1 port={source.port} "
                                 f"user={self.user.name} application_name={STANDBY_NAME}'"})
        signal_file = os.path.join(standby.datadir, "standby.signal")
        open(signal_file, "w").close()
        self.user.chown(signal_file)

    def wait_replication(self, primary: Node, sync_state: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rows = primary.query("SELECT sync_state FROM pg_stat_replication "
                                 "WHERE application_name = %s AND state = 'streaming'",
                                 (STANDBY_NAME,))
            if rows and rows[0][0] == sync_state:
                return
            if time.monotonic() > deadline:
                raise LabError(f"the standby did not reach {sync_state} streaming in "
                               f"{timeout:g} s")
            time.sleep(0.05)

    # --- faults --------------------------------------------------------------------------

    def failover(self) -> dict:
        """Crash the primary (SIGKILL its postmaster) and promote the standby.

        A standby that is not running is started first, so a drill can stop the standby,
        let the primary run ahead, and then fail over to the stale copy (data loss drills).
        """
        old = self.named("primary")
        new = self.named("standby")
        if old is None or new is None:
            raise LabError("the lab has no primary/standby pair to fail over")
        t0 = time.time()
        self.nodes[old].kill(signal.SIGKILL)
        self.set_role(old, "failed")
        self.save()
        killed = time.time()
        standby = self.nodes[new]
        if not standby.running():
            standby.start()
        # A promoted standby that inherited synchronous_standby_names would block writes.
        standby.query("ALTER SYSTEM RESET synchronous_standby_names")
        standby.query("SELECT pg_reload_conf()")
        standby.promote()
        self.set_role(new, "primary")
        self.save()
        return {"killed": old, "promoted": new, "kill_seconds": killed - t0,
                "promote_seconds": time.time() - killed}

    def stop_node(self, name: str, crash: bool = True) -> None:
        if name not in self.nodes:
            raise LabError(f"no node {name!r}; nodes: {', '.join(self.nodes)}")
        self.nodes[name].kill(signal.SIGKILL if crash else signal.SIGQUIT)
        self.save()

    def start_node(self, name: str) -> None:
        node = self.nodes[name]
        if self.role(name) == "failed":
            raise LabError(f"{name} is a failed primary; starting it as it is would make a "
                           "second primary")
        node.start()
        self.save()

    # --- views ---------------------------------------------------------------------------

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
                    if not rec and name != "repo":
                        reps = node.query("SELECT application_name, state, sync_state FROM "
                                          "pg_stat_replication")
                        row["replication"] = ", ".join(f"{a} {s}/{y}" for a, s, y in reps) \
                            or "no standby"
                except Exception as exc:
                    row["replication"] = f"unreachable: {str(exc).strip()[:60]}"
            rows.append(row)
        return rows

    def down(self, wipe: bool = False) -> None:
        """Stop every server this lab started (by recorded PID); optionally delete it all."""
        for node in self.nodes.values():
            node.stop()
        self.save()
        if wipe:
            shutil.rmtree(self.dir, ignore_errors=True)
