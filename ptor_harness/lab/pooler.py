"""pgbouncer in front of a lab (Debian's pgbouncer), and how writes are routed through it.

Clients connect to pgbouncer; pgbouncer's one `[databases]` entry leads to the cluster:
to the primary's own port on the streaming and repmgr labs, to HAProxy on the Patroni lab
(which routes by itself). When a failover moves the primary, the stacks whose users repoint
pgbouncer do it as those users do: a hook script rewrites the entry and sends RELOAD on
pgbouncer's admin console. The repmgr lab runs it from its promote_command (repmgr's
documented pattern), the streaming lab from its own promote step.

`fencing="none"` leaves pgbouncer where it was, on purpose (on Patroni: on the primary's own
port, not HAProxy's, as pgbouncer on the database host is): clients stay on the demoted node
(the pooler keeps queueing them while it is down, and once it is back as a standby their
writes are refused as read-only), the stuck-client case users report after failovers.
"""

from __future__ import annotations

import os
import shlex
import signal
from typing import Optional

from .base import Daemon, Lab, find_program, wait_until
from .pg import LabError, Node, port_users, query_once, wait_port_free

PACKAGES = "pgbouncer"
POOL_MODES = ("session", "transaction")
FENCING = ("repoint", "none")
HOOK = "route-writes.sh"  # in the lab's pooler folder; absent when nothing repoints


def pooler_dir(lab: Lab) -> str:
    return os.path.join(lab.dir, "pooler")


def hook_path(lab: Lab) -> str:
    return os.path.join(pooler_dir(lab), HOOK)


def settings(lab: Lab) -> Optional[dict]:
    return lab.state.get("pooler")


def target_port(lab: Lab) -> int:
    """Where pgbouncer leads: HAProxy's write port on a stack that has one (unless the
    pooler is unfenced: then, as for pgbouncer on the database host, the primary's own
    port, which nothing changes after a failover), else the current primary."""
    front = getattr(lab, "front_port", None)
    if front and settings(lab)["fencing"] == "repoint":
        return front()
    return lab.current_primary().port


def add(lab: Lab, pool_mode: str = "session", fencing: str = "repoint") -> None:
    """Start pgbouncer in front of a running lab and record it in the lab's state."""
    if pool_mode not in POOL_MODES:
        raise LabError(f"--pool-mode must be one of {', '.join(POOL_MODES)}, not {pool_mode!r}")
    if fencing not in FENCING:
        raise LabError(f"--pooler-fencing must be one of {', '.join(FENCING)}, not "
                       f"{fencing!r}")
    if lab.stack == "auto-failover":
        raise LabError("the auto-failover lab has no pooler: nothing in it repoints one "
                       "(pg_auto_failover's clients use multi-host DSNs)")
    program = find_program("pgbouncer", PACKAGES)
    lab.reload()  # a fault run by another process may have restarted daemons since
    port = max(info["port"] for info in lab.state["nodes"].values()) + 1
    if lab.state.get("daemons", {}).get("pgbouncer"):
        raise LabError("this lab already has a pooler")
    if not wait_port_free(port, 10):
        raise LabError(f"port {port} on 127.0.0.1 is in use ({port_users(port)}): the "
                       "pooler's, after the lab's nodes; choose another --port-base")
    folder = pooler_dir(lab)
    lab.own(os.path.basename(folder))  # recorded first: a wipe finds it even after a crash
    os.makedirs(folder, mode=0o755, exist_ok=True)
    lab.user.chown(folder)  # the hook (run as the lab user) rewrites the ini in here
    lab.state["pooler"] = {"port": port, "pool_mode": pool_mode, "fencing": fencing}
    write_ini(lab, target_port(lab))
    if fencing == "repoint":
        write_hook(lab)
    daemon(lab, program).start()
    wait_until("pgbouncer to accept connections", lambda: admin(lab, "SHOW VERSION"), 30)
    lab.save()


def daemon(lab: Lab, program: Optional[str] = None) -> Daemon:
    return lab.daemon("pgbouncer", [program or find_program("pgbouncer", PACKAGES),
                                    os.path.join(pooler_dir(lab), "pgbouncer.ini")])


def write_ini(lab: Lab, port: int) -> None:
    pooler = settings(lab)
    folder = pooler_dir(lab)
    users = os.path.join(folder, "userlist.txt")
    with open(users, "w") as out:
        out.write(f'"{lab.user.name}" ""\n')
    ini = os.path.join(folder, "pgbouncer.ini")
    with open(ini, "w") as out:
        out.write(f"""[databases]
* = host=127.0.0.1 port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {pooler['port']}
unix_socket_dir = {os.path.join(lab.dir, 'sock')}
auth_type = trust
auth_file = {users}
admin_users = {lab.user.name}
pool_mode = {pooler['pool_mode']}
max_client_conn = 1000
default_pool_size = 200
; a failed server login is retried after this (15 s by default: longer than the failover)
server_login_retry = 0.5
; a client waiting for a server gives up after this (120 s by default)
query_wait_timeout = 30
ignore_startup_parameters = extra_float_digits
""")
    for path in (users, ini):
        lab.user.chown(path)


def write_hook(lab: Lab) -> None:
    """The script a promotion runs to lead pgbouncer to the node on port $1."""
    pooler = settings(lab)
    ini = os.path.join(pooler_dir(lab), "pgbouncer.ini")
    psql = find_program("psql", "postgresql-client")
    script = f"""#!/bin/sh
# Route pgbouncer's writes to the PostgreSQL server on 127.0.0.1 port $1, then reload it.
set -e
sed -i "s/^\\* = host=127.0.0.1 port=[0-9]*$/* = host=127.0.0.1 port=$1/" {shlex.quote(ini)}
{shlex.quote(psql)} -h {shlex.quote(os.path.join(lab.dir, 'sock'))} -p {pooler['port']} \\
    -U {lab.user.name} -d pgbouncer -qAt -c RELOAD >/dev/null
"""
    path = hook_path(lab)
    with open(path, "w") as out:
        out.write(script)
    os.chmod(path, 0o755)
    lab.user.chown(path)


def route_writes(lab: Lab, node: Node) -> bool:
    """After a promotion: lead pgbouncer to `node`, unless the lab has no pooler, or its
    pooler is not fenced (left where it was on purpose). Returns whether it repointed."""
    pooler = settings(lab)
    if not pooler or pooler["fencing"] == "none" or getattr(lab, "front_port", None):
        return False
    lab.user.run([hook_path(lab), str(node.port)], cwd=lab.dir, timeout=30)
    return True


def admin(lab: Lab, command: str) -> list:
    """A command on pgbouncer's admin console (SHOW ..., RELOAD)."""
    import psycopg2

    return query_once(psycopg2.connect(host="127.0.0.1", port=settings(lab)["port"],
                                       dbname="pgbouncer", user=lab.user.name,
                                       connect_timeout=3), command)


def target(lab: Lab) -> int:
    """The port pgbouncer's configuration leads to now (what the hook rewrote)."""
    with open(os.path.join(pooler_dir(lab), "pgbouncer.ini")) as ini:
        entry = next(line for line in ini if line.startswith("* = "))
    return int(entry.rsplit("port=", 1)[1])


def remove(lab: Lab) -> None:
    """Stop the lab's pgbouncer and forget it: clients go to the stack directly again."""
    lab.reload()
    if "pgbouncer" in lab.daemons:
        lab.daemons.pop("pgbouncer").kill(signal.SIGKILL)
        if settings(lab):  # the next pooler may want its port at once
            wait_port_free(settings(lab)["port"], 10)
        lab.state["daemons"].pop("pgbouncer", None)
    lab.state.pop("pooler", None)
    if os.path.exists(hook_path(lab)):
        os.remove(hook_path(lab))
    lab.save()
