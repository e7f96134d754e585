"""`ptor-lab up --cdc`: a logical replication slot for ptor's CDC consumer (--cdc-slot).

Every data node gets wal_level = logical (in postgresql.conf, which a clone copies, and a
restart, standbys first), and the primary a logical slot. On the streaming and repmgr labs
that is a plain slot: it lives on the primary only, so after a failover the new primary
has none, which is what the drill then shows (PostgreSQL 15 copies no logical slot to a
standby). The Patroni lab's permanent slots and pg_auto_failover are not built yet.
"""

from __future__ import annotations

import os
import signal

from .base import Lab, wait_until
from .pg import LabError

SLOT = "ptor_cdc"
PLUGINS = ("pgoutput", "test_decoding")


def add(lab: Lab, plugin: str = "pgoutput") -> str:
    """Make the lab's nodes decode logically and give the primary a slot; returns its
    name, and records it in the lab's state (`cdc`)."""
    if plugin not in PLUGINS:
        raise LabError(f"--cdc-plugin must be one of {', '.join(PLUGINS)}, not {plugin!r}")
    if lab.stack not in ("streaming", "repmgr"):
        raise LabError(f"--cdc is built for the streaming and repmgr labs so far, not the "
                       f"{lab.stack} lab")
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
