"""The primary's WAL position, read through the endpoint at the load's start, the end of
its warmup and its drain: the WAL rate of a drill without the node observer (no nodes
known: one DSN, no --node-dsn, no lab; or --observe-interval 0).

Each reading is a NodeSample named for the server that answered (address, port, when its
postmaster started), so a rate is only ever taken between two readings of one server on
one timeline (verify/rate.py): across a failover the readings before it give the rate
before it, and none is made up from two servers' LSNs. A reading that fails (no primary
there, a role that may not ask) is no reading; each is bounded by ptor's connect timeout.
"""

from __future__ import annotations

import threading
from typing import Optional

import psycopg2

from .. import bounds, db, servers
from ..ops import NodeSample

WAL_SQL = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8 WHERE NOT pg_is_in_recovery()"
APPLICATION = "ptor-wal-position"
POSITION_TIMEOUT = 1.0  # seconds a reading may take at most (less: --rto-conn-timeout)
JOIN_SECONDS = 5.0  # a reading in the background is waited for at most this long


def read_position(dsn: str, timeout: float, statement_timeout: float) -> Optional[NodeSample]:
    """The WAL position of the primary the endpoint leads to now, or None."""
    try:
        conn = db.connect(dsn, APPLICATION, timeout, statement_timeout)
        try:
            with bounds.bounded(conn, timeout), conn.cursor() as cur:
                identity = servers.server_identity(conn, 0, 0)
                cur.execute(WAL_SQL)
                row = cur.fetchone()
        finally:
            conn.close()
    except psycopg2.Error:
        return None
    if row is None or identity.in_recovery:
        return None
    server = f"{identity.addr or 'local'}:{identity.port}@{identity.started_at}"
    return NodeSample(server, identity.at, None, True, False, identity.timeline,
                      identity.system_id, row[0], None, None, None, None, None)


class WalPositions:
    """The readings of one drill: those at the start and at the end of the warmup in a
    thread of their own (`read_soon`), so that neither the workers' go nor the
    coordinator's loop waits on a server; the last one at the drain (`finish`), bounded."""

    def __init__(self, dsn: str, timeout: float, statement_timeout: float) -> None:
        self.args = (dsn, timeout, statement_timeout)
        self.samples: list[NodeSample] = []
        self.threads: list[threading.Thread] = []

    def read_now(self) -> None:
        sample = read_position(*self.args)
        if sample is not None:
            self.samples.append(sample)

    def read_soon(self) -> None:
        thread = threading.Thread(target=self.read_now, name="ptor-wal-position",
                                  daemon=True)
        thread.start()
        self.threads.append(thread)

    def finish(self) -> list[NodeSample]:
        """The last reading, then every reading in time order."""
        self.read_now()
        for thread in self.threads:
            thread.join(JOIN_SECONDS)
        return sorted(self.samples, key=lambda s: s.at)
