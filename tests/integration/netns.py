"""A PostgreSQL server behind a network the test owns: a network namespace joined to this
one by a veth pair, so a partition (the link going down) can be made and healed without
touching any other traffic. Needs root (CI runs as root) and iproute2's `ip`.

The server runs inside the namespace as the lab user and listens on the namespace's end
of the veth pair; ptor connects to that address from here. Taking the namespace's end of
the link down drops every packet silently both ways, as a cut cable or a partitioned
switch does: established sessions hang and new connects time out.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import subprocess

from ptor_harness.lab.pg import LabUser, Node, bindir
from ptor_harness.lab.streaming import postgres_settings


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


class PartitionedServer:
    """One standalone PostgreSQL server in a network namespace of its own."""

    def __init__(self, lab_dir: str, port: int) -> None:
        tag = secrets.token_hex(3)
        self.netns = f"ptor-{tag}"
        self.host_if, self.ns_if = f"pt{tag}h", f"pt{tag}n"
        net = f"10.{random.randrange(200, 250)}.{random.randrange(256)}"
        first = random.randrange(0, 252, 4)
        self.host_addr, self.addr = f"{net}.{first + 1}", f"{net}.{first + 2}"
        self.lab_dir = lab_dir
        self.port = port
        os.makedirs(os.path.join(lab_dir, "sock"))
        os.makedirs(os.path.join(lab_dir, "logs"))
        self.user = LabUser()
        for sub in ("sock", "logs"):
            self.user.chown(os.path.join(lab_dir, sub))
        self.node = Node("primary", lab_dir, port, self.user, bindir())
        self.created = False

    def up(self) -> PartitionedServer:
        ip("netns", "add", self.netns)
        self.created = True
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        ip("link", "set", self.ns_if, "netns", self.netns)
        ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        self.in_ns("ip", "addr", "add", f"{self.addr}/30", "dev", self.ns_if)
        self.in_ns("ip", "link", "set", self.ns_if, "up")
        self.in_ns("ip", "link", "set", "lo", "up")
        settings = dict(postgres_settings(self.lab_dir), listen_addresses=f"'{self.addr}'")
        self.node.initdb(settings)
        with open(os.path.join(self.node.datadir, "pg_hba.conf"), "a") as hba:
            hba.write(f"host all all {self.host_addr}/32 trust\n")
        # pg_ctl runs inside the namespace (entering one takes root), then as the lab user
        self.in_ns("runuser", "-u", self.user.name, "--", self.node.tool("pg_ctl"), "-D",
                   self.node.datadir, "-l", self.node.logfile, "-w", "-t", "60", "start")
        self.node.pid = self.node.pid_from_file()
        return self

    def in_ns(self, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.netns, *argv], check=True,
                       capture_output=True, text=True, timeout=90, cwd=self.lab_dir)

    def dsn(self) -> str:
        return (f"host={self.addr} port={self.port} dbname=postgres user={self.user.name} "
                "connect_timeout=2")

    def shell(self, action: str) -> str:
        """A shell command that takes the link down ("cut") or up ("heal")."""
        state = "down" if action == "cut" else "up"
        return f"ip netns exec {self.netns} ip link set {self.ns_if} {state}"

    def down(self) -> None:
        """Stop the server by its PID and remove the namespace (and with it both veth
        ends) and the lab directory."""
        with contextlib.suppress(Exception):
            self.node.kill()
        if self.created:
            with contextlib.suppress(subprocess.CalledProcessError):
                ip("netns", "del", self.netns)
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("link", "del", self.host_if)  # only if the namespace never took its peer
        shutil.rmtree(self.lab_dir, ignore_errors=True)
