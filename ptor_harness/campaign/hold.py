"""One campaign at a time per cluster: the drill lock, held by the campaign between rounds.

Each round is a drill that takes ptor's drill lock on the primary for its run; between
rounds nothing would hold it, and a second campaign (or a drill from cron) could start in
the gap and empty the tables the next round relies on. So the campaign takes the same lock
itself before its first round and again after each round (once the cluster settled, on the
primary it settled on), and lets go just before the next round's drill takes it.

The lock is taken through the DSN the cluster is reached by at that moment: the campaign
may have added or removed the lab's pooler since it began, so the DSN it was started with
may lead nowhere now. A session that died meanwhile (its primary failed over, its pooler
was removed) holds nothing, so it is replaced rather than trusted.

A holder found at the start refuses the campaign (one sentence, like a drill's); one found
between rounds stops the campaign with that reason."""

from __future__ import annotations

import contextlib
from typing import Optional

import psycopg2

from .. import lock
from ..config import Scenario
from ..errors import ClusterError


class ClusterHold:
    """The campaign's own session holding the drill lock while no round runs."""

    def __init__(self, scenario: Scenario, campaign_id: str) -> None:
        self.scenario = scenario
        self.campaign_id = campaign_id
        self.conn = None

    @property
    def held(self) -> bool:
        return self.conn is not None

    def alive(self) -> bool:
        """Does the holding session still answer (and so still hold the lock)?"""
        if self.conn is None or self.conn.closed:
            return False
        try:
            with self.conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        except psycopg2.Error:
            return False

    def take(self, dsn: str) -> None:
        """Hold the lock through `dsn` (nothing if a live session holds it already).
        ClusterError when another ptor holds it or the primary cannot be reached."""
        if self.alive():
            return
        self.release()
        c = self.scenario.connection
        self.conn = lock.acquire(dsn, "primary", c.schema, self.campaign_id,
                                 c.rto_conn_timeout, 5.0)

    def try_take(self, dsn: str) -> Optional[str]:
        """Right after a round: hold the lock if the primary answers; the holder's
        description if another ptor got there first, else None (an unreachable primary is
        asked again once the cluster settled)."""
        try:
            self.take(dsn)
        except lock.LockHeld as exc:
            return str(exc)
        except ClusterError:
            pass
        return None

    def release(self) -> None:
        """Let the next round's drill take the lock: closing the session releases it."""
        if self.conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self.conn.close()
            self.conn = None
