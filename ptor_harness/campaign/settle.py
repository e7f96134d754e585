"""The health gate between rounds: the cluster back in the shape it had when the campaign
began (a primary that accepts a write through the endpoint and, if it had one then, a
synchronous standby streaming to it), within --settle-timeout. Never hammer a broken
cluster: a round that would start on one is unknown, and the campaign stops."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg2

from .. import bounds, db
from ..config import Scenario
from ..errors import ClusterError
from ..retry import Retry, RetryExhausted
from ..schema import heartbeat

SYNC_STANDBYS = ("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND "
                 "sync_state IN ('sync', 'quorum')")


@dataclass(frozen=True)
class Shape:
    """What the campaign requires of the cluster before each round."""

    sync_standby: bool


class NotSettled(Exception):
    """The cluster is not (yet) in its starting shape; the message says what is missing."""


def starting_shape(scenario: Scenario) -> Shape:
    """The cluster's shape as the campaign begins (ClusterError when it cannot be asked)."""
    c = scenario.connection
    try:
        conn = db.connect(c.primary_pgdsn, "ptor-campaign", c.rto_conn_timeout, 5.0)
    except psycopg2.Error as exc:
        raise ClusterError(f"cannot connect to the primary: {db.error_label(exc)}") from None
    try:
        with bounds.bounded(conn, 5.0), conn.cursor() as cur:
            cur.execute(SYNC_STANDBYS)
            return Shape(sync_standby=cur.fetchone()[0] > 0)
    finally:
        conn.close()


def check(scenario: Scenario, shape: Shape) -> None:
    """One look: NotSettled with what is missing, or nothing."""
    c = scenario.connection
    try:
        conn = db.connect(c.primary_pgdsn, "ptor-campaign", c.rto_conn_timeout, 5.0,
                          autocommit=False)
    except psycopg2.Error as exc:
        raise NotSettled(f"no connection to the primary ({db.error_label(exc)})") from None
    try:
        with bounds.bounded(conn, c.rto_conn_timeout + 5.0), conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            if cur.fetchone()[0]:
                raise NotSettled("the endpoint leads to a standby")
            cur.execute(SYNC_STANDBYS)
            if shape.sync_standby and cur.fetchone()[0] == 0:
                raise NotSettled("no synchronous standby streams to the primary")
            conn.rollback()
            heartbeat(conn, c.schema)
    except psycopg2.Error as exc:
        raise NotSettled(f"the primary did not answer ({db.error_label(exc)})") from None
    except ClusterError as exc:
        raise NotSettled(str(exc)) from None
    finally:
        conn.close()


def wait_settled(scenario: Scenario, shape: Shape, timeout: float) -> tuple[bool, float, str]:
    """(settled, seconds waited, what was missing at the end). On a ptor lab its manager
    must agree too (`Lab.wait_settled`): PostgreSQL may already report a synchronous
    standby that Patroni does not yet count as one, and only the one it counts may be
    promoted (seen here: a kill right after the gate, and no standby could take over)."""
    started = time.monotonic()
    try:
        Retry(timeout, 0.5, retry_on=(NotSettled,))(lambda: check(scenario, shape))
    except RetryExhausted as exc:
        return False, time.monotonic() - started, str(exc.last_error or "no answer")
    lab_dir = scenario.faults.lab_dir
    if lab_dir:
        from ..lab import load_lab
        from ..lab.pg import LabError

        try:
            load_lab(lab_dir).wait_settled(max(1.0, timeout - (time.monotonic() - started)))
        except LabError as exc:
            return False, time.monotonic() - started, f"the lab's manager: {exc}"
    return True, time.monotonic() - started, ""
