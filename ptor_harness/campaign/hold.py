"""One campaign at a time per cluster: the drill lock, held by the campaign between rounds.

Each round is a drill that takes ptor's drill lock on the primary for its run; between
rounds nothing would hold it, and a second campaign (or a drill from cron) could start in
the gap and empty the tables the next round relies on. So the campaign takes the same lock
itself before its first round and again after each round (once the cluster settled, on the
primary it settled on), and lets go just before the next round's drill takes it.

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

    def take(self) -> None:
        """Hold the lock (nothing if held already). ClusterError when another ptor holds
        it or the primary cannot be reached."""
        if self.conn is not None:
            return
        c = self.scenario.connection
        self.conn = lock.acquire(c.primary_pgdsn, "primary", c.schema, self.campaign_id,
                                 c.rto_conn_timeout, 5.0)

    def try_take(self) -> Optional[str]:
        """Right after a round: hold the lock if the primary answers; the holder's
        description if another ptor got there first, else None (an unreachable primary is
        asked again once the cluster settled)."""
        try:
            self.take()
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
