"""Which node of the report a server is (pure): the one a primary's pg_stat_replication
row is about, and the one a worker's session reached.

A primary lists its standbys by the name each one's WAL receiver gives it (its
application_name), which need not be the node's name in the report: the streaming lab
calls every standby "standby", pg_auto_failover "pgautofailover_standby_2", a cluster
watched through --node-dsn has nodes named host:port. A report that says "standby" in one
row and "node2" in the next, for one server, leaves its reader guessing. Each standby's
own samples say which name it gives (NodeSample.standby_name), so a row is renamed to the
node that gave that name at that time, when exactly one node did; with none then, to the
one node that ever gave it; otherwise it keeps the name its primary gave it.

The workers know a server by where it says it is (a session's Identity: addr:port); the
observer's sessions ask the nodes the same (NodeSample.server), so the report can say
"node2 (127.0.0.1:6042, ...)" where it said only the address.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Optional

from ..ops import NodeSample, ReplicationRow
from .anatomy import by_node

NEAR = 1.0  # seconds: a standby's sample this close to the primary's row speaks for it


def name_standbys(samples: Sequence[NodeSample],
                  replication: Sequence[ReplicationRow]) -> list[ReplicationRow]:
    """The rows, each naming its standby by node where the standbys' samples tell which
    node it is (the name is a node's name from then on: the report's `standby`)."""
    # only the samples that gave a name speak: one without (a standby restarting as it
    # rejoins, its WAL receiver not yet up) knows nothing, and left the primary's first
    # rows of the rejoined node under the primary's name for it
    given = {}
    for node, mine in by_node(samples).items():
        named = [s for s in mine if s.standby_name is not None]
        if named:
            given[node] = ([s.at for s in named], named)
    if not given:
        return list(replication)
    # who ever gave each name: a row no node's nearby sample speaks for (the old primary
    # being cloned anew or rewound, its server down while its primary already streams to
    # it) is that node's when one node alone ever gave its name (pg_auto_failover's
    # pgautofailover_standby_N, a node id), never when the name moved (the streaming
    # lab's "standby")
    owners: dict[str, set[str]] = {}
    for node, (_, named) in given.items():
        for name in {s.standby_name for s in named}:
            owners.setdefault(name, set()).add(node)
    out = []
    for row in replication:
        nodes = [node for node, (times, mine) in given.items()
                 if node != row.node and row.application_name is not None
                 and nearest(times, mine, row.at) == row.application_name]
        owner = owners.get(row.application_name, set())
        if not nodes and len(owner) == 1 and row.node not in owner:
            nodes = sorted(owner)
        out.append(row._replace(application_name=nodes[0]) if len(nodes) == 1 else row)
    return out


def nearest(times: list[float], samples: list[NodeSample], at: float) -> Optional[str]:
    """The name a node gave in its name-giving sample nearest `at`, if that sample is
    within NEAR seconds of `at` (None: it gave none that close, being a primary, out of
    reach or not yet streaming)."""
    i = bisect.bisect_left(times, at)
    best = min((j for j in (i - 1, i) if 0 <= j < len(times)),
               key=lambda j: abs(times[j] - at))
    return samples[best].standby_name if abs(times[best] - at) <= NEAR else None


def node_of_server(samples: Sequence[NodeSample], addr: Optional[str],
                   port: Optional[int]) -> Optional[str]:
    """The node whose sessions reached the server at addr:port, when exactly one did."""
    if addr is None or port is None:
        return None
    where = f"{addr}:{port}"
    nodes = [node for node, mine in by_node(samples).items()
             if any(s.server == where for s in mine)]
    return nodes[0] if len(nodes) == 1 else None
