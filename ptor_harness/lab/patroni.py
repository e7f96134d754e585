"""The Patroni lab: one etcd member, two Patroni nodes (synchronous mode; with --mode async,
asynchronous replication), maximum_lag_on_failover at Patroni's default of 1 MiB, HAProxy in
front routing only to the leader (HTTP check on Patroni's REST API, sessions shut down on a
marked-down server, as in the original ptor's documented haproxy.cfg); plus a repo server.

Ports from the base: HAProxy +0, pa1 postgres +1, pa2 postgres +2, pa1 REST +3, pa2 REST +4,
etcd client +5, etcd peer +6, HAProxy stats +7, repo +8. Leader TTL 5 s, loop_wait 1 s,
retry_timeout 2 s (about 5 s to fail over after a node crash).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

from .base import Lab, find_program, wait_until
from .pg import DATA, LabError
from .streaming import postgres_settings

PACKAGES = "patroni etcd-server haproxy"

PATRONI_YML = """\
scope: {scope}
namespace: /{scope}/
name: {name}
restapi: {{listen: 127.0.0.1:{rest}, connect_address: 127.0.0.1:{rest}}}
etcd3: {{hosts: 127.0.0.1:{etcd}, protocol: http}}
bootstrap:
  dcs:
    ttl: 5
    loop_wait: 1
    retry_timeout: 2
    maximum_lag_on_failover: 1048576
    synchronous_mode: {synchronous_mode}
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters: {{wal_level: replica, hot_standby: "on", wal_log_hints: "on",
                   max_wal_senders: 10, max_replication_slots: 10, synchronous_commit: "on",
                   max_connections: 300, wal_keep_size: 512MB}}
  initdb: [{{encoding: UTF8}}, {{locale: C.UTF-8}}]
postgresql:
  listen: 127.0.0.1:{port}
  connect_address: 127.0.0.1:{port}
  data_dir: {datadir}
  bin_dir: {bindir}
  pgpass: {pgpass}
  authentication:
    superuser: {{username: {user}, password: {user}}}
    replication: {{username: replicator, password: rep}}
    rewind: {{username: {user}, password: {user}}}
  parameters: {{unix_socket_directories: '{sock}', shared_buffers: 64MB,
               wal_retrieve_retry_interval: 100ms, log_line_prefix: '%m [%p] %b '}}
  pg_hba: [local all all trust, host replication replicator 127.0.0.1/32 trust,
           host all all 127.0.0.1/32 trust]
watchdog: {{mode: "off", safety_margin: -1}}
tags: {{nofailover: false, noloadbalance: false, clonefrom: false, nosync: false}}
"""

HAPROXY_CFG = """\
global
    maxconn 400
defaults
    mode tcp
    retries 2
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s
listen stats
    mode http
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /
listen pg_primary
    bind 127.0.0.1:{port}
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fastinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions
    server pa1 127.0.0.1:{pa1} maxconn 300 check port {pa1_rest}
    server pa2 127.0.0.1:{pa2} maxconn 300 check port {pa2_rest}
"""


def program(name: str) -> str:
    return find_program(name, PACKAGES)


class PatroniLab(Lab):
    """etcd + pa1 + pa2 (Patroni) + HAProxy, and a repo server."""

    stack = "patroni"
    node_names = ("pa1", "pa2")

    @classmethod
    def up(cls, lab_dir: str, port_base: int = 6020, mode: str = "sync") -> PatroniLab:
        if mode not in ("sync", "async"):
            raise LabError(f"the patroni lab runs in sync or async mode, not {mode!r}")
        for name in ("patroni", "patronictl", "etcd", "haproxy"):
            program(name)
        lab_dir = os.path.abspath(lab_dir)
        ports = {"pa1": (port_base + 1, "primary"), "pa2": (port_base + 2, "standby"),
                 "repo": (port_base + 8, "repo")}
        made = cls.prepare_dir(lab_dir, [port_base + i for i in range(9)])
        state = cls.new_state(lab_dir, port_base, mode, ports, made)
        state["scope"] = f"ptor{port_base}"
        lab = cls(lab_dir, state)
        lab.start_built()
        return lab

    def port(self, offset: int) -> int:
        return self.state["port_base"] + offset

    def rest(self, name: str) -> int:
        return self.port(3 if name == "pa1" else 4)

    def config_path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.yml")

    def write(self, path: str, text: str) -> None:
        """A configuration file of the lab's, recorded as the lab's (see workdir)."""
        if os.path.dirname(path) == self.dir:
            self.own(os.path.basename(path))
        with open(path, "w") as out:
            out.write(text)
        self.user.chown(path)

    def build(self) -> None:
        etcd_port = self.port(5)
        etcd_dir = os.path.join(self.dir, DATA, "etcd")  # etcd creates it: the lab user's
        scope = self.state["scope"]
        self.daemon("etcd", [
            program("etcd"), "--name", f"{scope}-etcd", "--data-dir", etcd_dir,
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{self.port(6)}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.port(6)}",
            "--initial-cluster", f"{scope}-etcd=http://127.0.0.1:{self.port(6)}",
            "--initial-cluster-state", "new", "--initial-cluster-token", scope]).start()
        wait_until("etcd", lambda: self.http(etcd_port, "/health").get("health") == "true", 30)
        cfg = os.path.join(self.dir, "haproxy.cfg")
        self.write(cfg, HAPROXY_CFG.format(stats=self.port(7), port=self.port(0),
                                           pa1=self.port(1), pa2=self.port(2),
                                           pa1_rest=self.port(3), pa2_rest=self.port(4)))
        self.daemon("haproxy", [program("haproxy"), "-db", "-f", cfg]).start()
        for name in self.node_names:
            node = self.nodes[name]
            self.write(self.config_path(name), PATRONI_YML.format(
                scope=scope, name=name, rest=self.rest(name), etcd=etcd_port, port=node.port,
                synchronous_mode="true" if self.state["mode"] == "sync" else "false",
                datadir=node.datadir, bindir=self.bin, user=self.user.name,
                pgpass=os.path.join(self.dir, DATA, f"{name}.pgpass"),  # Patroni writes it
                sock=os.path.join(self.dir, "sock")))
            self.manager(name).start()
            if name == "pa1":
                wait_until("pa1 to lead", lambda: self.leader() == "pa1", 60, 0.2)
        self.wait_settled(60)
        repo = self.nodes["repo"]
        repo.initdb(postgres_settings(self.dir))
        repo.start()
        wait_until("a write through HAProxy", lambda: self.write_through_proxy(), 30)
        for name in self.node_names:
            self.nodes[name].running()  # learn the postmaster PIDs Patroni started
        self.save()

    def manager(self, name: str):
        return self.daemon(name + "-patroni", [program("patroni"), self.config_path(name)],
                           node=self.nodes[name])

    def front_port(self) -> int:
        """HAProxy's write port: where a pooler in front of this lab leads."""
        return self.port(0)

    def direct_dsn(self) -> str:
        """Through HAProxy, as the original tool's Patroni users ran it."""
        return (f"host=127.0.0.1 port={self.port(0)} dbname=postgres user={self.user.name} "
                "connect_timeout=2")

    # --- Patroni's view ------------------------------------------------------------------

    @staticmethod
    def http(port: int, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return json.loads(answer.read().decode())

    def members(self) -> list[dict]:
        for name in self.node_names:
            try:
                return self.http(self.rest(name), "/cluster").get("members", [])
            except OSError:
                continue
        return []

    def leader(self):
        for member in self.members():
            if member.get("role") == "leader" and member.get("state") == "running":
                return member["name"]
        return None

    def wait_settled(self, timeout: float = 60) -> None:
        """Until there is a running leader and a streaming standby (synchronous in sync
        mode)."""
        role = "sync_standby" if self.state["mode"] == "sync" else "replica"

        def settled():
            roles = {(m.get("role"), m.get("state")) for m in self.members()}
            return ("leader", "running") in roles and (
                (role, "streaming") in roles or (role, "running") in roles)
        wait_until(f"a leader and a streaming {role.replace('_', ' ')}", settled, timeout, 0.2)

    def write_through_proxy(self) -> bool:
        import psycopg2

        conn = psycopg2.connect(self.direct_dsn())
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS ptor_lab_probe (id int)")
            return True
        finally:
            conn.close()

    # --- faults --------------------------------------------------------------------------

    def _leader_or_fail(self) -> str:
        name = self.leader()
        if name is None:
            raise LabError("the patroni lab has no running leader")
        return name

    def kill_primary(self) -> str:
        """SIGKILL Patroni and postgres of the leader together (a node crash); once the
        other node leads, restart the crashed node's Patroni so it rejoins (pg_rewind)."""
        name = self._leader_or_fail()
        other = next(n for n in self.node_names if n != name)
        self.manager(name).kill(signal.SIGKILL)
        self.nodes[name].kill(signal.SIGKILL)
        started = time.monotonic()
        wait_until(f"{other} to lead", lambda: self.leader() == other, 60, 0.1)
        took = time.monotonic() - started
        self.manager(name).start()
        return f"killed Patroni and postgres of {name}; {other} leads after {took:.1f} s; " \
               f"{name}'s Patroni restarted"

    def stop_primary(self) -> str:
        name = self._leader_or_fail()
        self.nodes[name].kill(signal.SIGQUIT)
        return f"immediate shutdown of {name}'s postgres (Patroni restarts it)"

    def switchover(self) -> str:
        name = self._leader_or_fail()
        other = next(n for n in self.node_names if n != name)
        started = time.monotonic()
        self.user.run([program("patronictl"), "-c", self.config_path(name), "switchover",
                       "--leader", name, "--candidate", other, "--force"], cwd=self.dir)
        return f"patronictl switchover {name} -> {other} returned after " \
               f"{time.monotonic() - started:.1f} s"

    def kill_manager(self) -> str:
        """SIGKILL the leader's Patroni, postgres left running. Without a watchdog the
        leader key expires and the other node is promoted while the old postgres still
        runs as a primary (HAProxy routes only to the new leader). Once the other node
        leads (or after 20 s), restart the killed Patroni, which demotes and rewinds its
        postgres so the lab is a healthy pair again."""
        name = self._leader_or_fail()
        other = next(n for n in self.node_names if n != name)
        node = self.nodes[name]
        spare = (node.pid,) if node.running() else ()
        self.manager(name).kill(signal.SIGKILL, spare=spare)
        started = time.monotonic()
        try:
            wait_until(f"{other} to lead", lambda: self.leader() == other, 20, 0.1)
            what = f"{other} leads after {time.monotonic() - started:.1f} s"
        except LabError:
            what = f"{name} still leads after 20 s"
        self.manager(name).start()
        return f"killed Patroni of {name} (postgres left running); {what}; " \
               f"{name}'s Patroni restarted"

    def status(self) -> list[dict]:
        rows = super().status()
        roles = {m["name"]: f"{m.get('role')}/{m.get('state')}" for m in self.members()}
        for row in rows:
            if row["node"] in roles:
                row["role"] = roles[row["node"]]
        return rows
