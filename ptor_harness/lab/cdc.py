"""`ptor-lab up --cdc`: a logical replication slot for ptor's CDC consumer (--cdc-slot).

Streaming and repmgr labs: every data node gets wal_level = logical (in postgresql.conf,
which a clone copies, and a restart, standbys first), and the primary a plain slot. It
lives on the primary only, so after a failover the new primary has none, which is what the
drill then shows (PostgreSQL 15 copies no logical slot to a standby).

Patroni lab: a permanent slot in the dynamic configuration (`slots:`), with wal_level =
logical there too and the members restarted: Patroni creates it on the leader and keeps a
copy on the replica, advanced to the leader's confirmed position about once per HA loop
(shared/LAB.md, section 6). `up --cdc` returns once the replica has its copy.
pg_auto_failover (2.0) offers nothing for logical slots: --cdc is refused there.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request

from . import patroni
from .base import Lab, wait_until
from .pg import LabError

SLOT = "ptor_cdc"
PLUGINS = ("pgoutput", "test_decoding")


def add(lab: Lab, plugin: str = "pgoutput") -> str:
    """Make the lab's nodes decode logically and give the primary a slot; returns its
    name, and records it in the lab's state (`cdc`)."""
    if plugin not in PLUGINS:
        raise LabError(f"--cdc-plugin must be one of {', '.join(PLUGINS)}, not {plugin!r}")
    if lab.stack == "patroni":
        return permanent_slot(lab, plugin)
    if lab.stack not in ("streaming", "repmgr"):
        raise LabError(f"the {lab.stack} lab cannot keep a logical slot across a failover "
                       "(pg_auto_failover offers nothing for them): --cdc is for the "
                       "streaming, repmgr and patroni labs")
    lab.reload()
    primary = lab.current_primary()
    standbys = [node for node in lab.data_nodes() if node is not primary]
    for node in standbys + [primary]:  # a standby needs no more than its primary has
        if node.query("SHOW wal_level")[0][0] != "logical":
            with open(os.path.join(node.datadir, "postgresql.conf"), "a") as conf:
                conf.write("wal_level = logical\n")
            node.kill(signal.SIGINT)  # fast shutdown: everything flushed and sent
            node.start()
            node.wait_ready()
    lab.save()
    primary.query("SELECT pg_create_logical_replication_slot(%s, %s)", (SLOT, plugin))
    if standbys:
        wait_until("the standbys to stream again", lambda: len(primary.query(
            "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'")) >= len(standbys),
            60)
    lab.state["cdc"] = {"slot": SLOT, "plugin": plugin, "on": primary.name,
                        "copies": "none: a plain slot lives on the primary only"}
    lab.save()
    return SLOT


def permanent_slot(lab, plugin: str) -> str:
    """Patroni: wal_level = logical and the slot in the dynamic configuration, the members
    restarted; returns once both nodes have the slot (the replica's copy)."""
    leader = lab.leader()
    if leader is None:
        raise LabError("the patroni lab has no running leader")
    change = {"postgresql": {"parameters": {"wal_level": "logical"}},
              "slots": {SLOT: {"type": "logical", "database": "postgres", "plugin": plugin}}}
    request = urllib.request.Request(f"http://127.0.0.1:{lab.rest(leader)}/config",
                                     data=json.dumps(change).encode(), method="PATCH")
    with urllib.request.urlopen(request, timeout=10):
        pass
    lab.user.run([patroni.program("patronictl"), "-c", lab.config_path(leader), "restart",
                  lab.state["scope"], "--force"], cwd=lab.dir)
    lab.wait_settled(120)

    def copied() -> bool:
        return all(node.query("SELECT count(*) FROM pg_replication_slots WHERE "
                              "slot_name = %s AND slot_type = 'logical'", (SLOT,))[0][0]
                   for node in lab.data_nodes())
    wait_until("Patroni to make the slot on both nodes", copied, 120, 0.5)
    lab.state["cdc"] = {"slot": SLOT, "plugin": plugin, "on": leader,
                        "copies": "Patroni's permanent slot: a copy on the replica"}
    lab.save()
    return SLOT


def advice(cdc: dict) -> str:
    """What `ptor-lab up --cdc` tells the user: the options to run ptor with, and whether
    the slot can outlive a failover (lab.json's `cdc`, as `add` recorded it)."""
    plain = cdc["copies"].startswith("none")
    where = (f"a plain slot on {cdc['on']} only: it will not survive a failover, and the "
             "drill will say so" if plain else
             f"a permanent slot made on {cdc['on']}, {cdc['copies'].split(': ', 1)[-1]}")
    return f"run ptor with --cdc-slot {cdc['slot']} --cdc-plugin {cdc['plugin']} ({where})"
