"""The I/O side of reconciliation: find a confirmed primary, stream its rows, feed the pure
reconciler. Any failure here yields the verdict "unknown" with its reason, never a pass."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Callable, NamedTuple, Optional, Protocol, TypeVar

import psycopg2

from .. import bounds, db
from ..errors import ClusterError
from ..ledger import Ledger
from ..ops import ENDPOINT, Identity
from ..retry import Retry, RetryExhausted
from ..schema import PAYLOAD_BASE_SQL, heartbeat, payload_sql, worker_table
from ..servers import newer_primary_since, position, server_identity
from .findings import Findings
from .reconcile import Reconciler

STALE_GRACE = 15.0  # seconds
T = TypeVar("T")
log = logging.getLogger("ptor")


class ValidationIncomplete(Exception):
    """Reconciliation could not finish; the message says why. `interrupted`: the server
    closed the connection mid-check (a cluster still changing after the fault: a promoted
    node demoted again, a restart), so the check may be started again on the primary then
    confirmed; a statement timeout or a refused query is not retried, it would recur."""

    def __init__(self, message: str, interrupted: bool = False):
        super().__init__(message)
        self.interrupted = interrupted


def again_while_interrupted(attempt: Callable[[], T], attempts: int, interrupted: list[str],
                            redact: Callable[[str], str]) -> T:
    """`attempt()`, made again while the server breaks it off, `attempts` times in all: a
    reconciliation must read a primary that stays up for the length of the check, and
    right after a failover a cluster may still move (Patroni demoting the node it promoted,
    a manager restarting it); each broken-off attempt's reason is appended (redacted) to
    `interrupted`, for the report. Raises the last ValidationIncomplete."""
    while True:
        try:
            return attempt()
        except ValidationIncomplete as exc:
            if not exc.interrupted or len(interrupted) >= attempts - 1:
                raise
            interrupted.append(redact(str(exc)))
            log.warning("reconciliation broken off (%s): starting it again", interrupted[-1])


def mid_check(exc: psycopg2.Error, conn) -> ValidationIncomplete:
    """The incompleteness of a check whose reading of the primary failed with `exc`."""
    return ValidationIncomplete(f"reading the primary failed mid-check: "
                                f"{db.error_label(exc)}", interrupted=bool(conn.closed))


class InRecovery(Exception):
    """The server reached is a standby: not one to reconcile against (yet)."""


class Confirmed(NamedTuple):
    """A primary confirmed for reconciliation: an open connection to it, its identity, how
    it was reached (the label, with a note when the cluster went back a timeline) and the
    DSN it was reached through (a share of the check connects there too)."""

    conn: object
    identity: Identity
    label: str
    dsn: str


def confirm_primary(servers: Sequence[tuple[str, str]], schema: str, timeout: float,
                    deadline: float, statement_timeout: float,
                    system: Optional[str] = None,
                    newest_timeline: Optional[int] = None) -> Confirmed:
    """Connect until `deadline` to a server that is not in recovery and accepts a write.

    `servers` are (label, DSN) in order of preference: the endpoint first, then the nodes
    the observer watches. A node counts only when it is of the cluster the drill wrote to
    (`system`, its system identifier): where the endpoint leads to a standby (a pooler left
    on the demoted node), the new primary still holds the truth of what was kept. Each
    round tries the endpoint first, so a primary it reaches always wins.

    A primary on an older timeline than the newest the workers wrote to (`newest_timeline`,
    of the same cluster) is stale: an old primary, thawed or not yet fenced, that still
    accepts writes for a moment (a split-brain window) while the promoted node holds what
    was acknowledged since. It is refused for a grace period (the next round tries again);
    only a cluster that is still on the older timeline after it is read as it is, and its
    label says so.

    A promoted standby accepts writes only after it has replayed all the WAL it received,
    so reading after this sees everything it kept.
    """
    # a stale primary is refused for the first half of the time (at most STALE_GRACE):
    # long enough for a thawed old primary to be fenced; past it, a cluster that went back
    # to the older timeline is taken as it is, and what was written since is counted lost
    stale_until = time.monotonic() + min(STALE_GRACE, (deadline - time.monotonic()) / 2)

    def one(label: str, dsn: str):
        conn = db.connect(dsn, "ptor-validation", timeout, statement_timeout,
                          autocommit=False)
        try:
            with bounds.bounded(conn, timeout + statement_timeout):
                identity = server_identity(conn, -1, 0)
                if identity.in_recovery:
                    raise InRecovery(f"the server reached through the {label} is in "
                                     "recovery (a standby)" if label == ENDPOINT else
                                     f"{label} is in recovery")
                if label != ENDPOINT and (system is None or identity.system_id != system):
                    raise ClusterError(f"{label} is not of the cluster the drill wrote to")
                if newest_timeline is not None and identity.system_id == system and \
                        (identity.timeline or 0) < newest_timeline:
                    if time.monotonic() < stale_until:
                        raise InRecovery(f"the primary reached through the {label} is stale: "
                                         f"timeline {identity.timeline}, behind timeline "
                                         f"{newest_timeline} that the workers wrote to")
                    label += (f" (timeline {identity.timeline}: the cluster went back from "
                              f"timeline {newest_timeline}, which the workers wrote to)")
                heartbeat(conn, schema)
        except BaseException:
            conn.close()
            raise
        return Confirmed(conn, identity, label, dsn)

    def attempt():
        why = []
        for label, dsn in servers:
            try:
                return one(label, dsn)
            except (InRecovery, ClusterError) as exc:
                why.append(str(exc))
            except psycopg2.Error as exc:
                why.append(f"{label}: {db.error_label(exc)}")
        raise InRecovery("; ".join(why))

    try:
        return Retry(deadline - time.monotonic(), 0.2, retry_on=(InRecovery,))(attempt)
    except RetryExhausted as exc:
        error = exc.last_error
        raise ValidationIncomplete(f"no confirmed primary to reconcile against: "
                                   f"{error or 'no attempt made'}") from None


def primary_rows(conn, schema: str, worker: int, run_tag: str = "",
                 payload_bytes: Optional[int] = None):
    """Stream (id, last_seq) of a worker's table in key order; with `payload_bytes` (the
    full check) also whether each row's payload is the one its last_seq's op wrote
    (schema.payload, rebuilt in SQL). The server compares, so no payload and no per-row
    checksum crosses the network or costs Python a hash."""
    cursor = conn.cursor(name=f"ptor_rows_{worker}")
    cursor.itersize = 20000
    table = worker_table(schema, worker)
    if payload_bytes is None:
        cursor.execute(f"SELECT id, last_seq FROM {table} ORDER BY id")
    else:
        cursor.execute(
            f"SELECT id, last_seq, payload IS NOT DISTINCT FROM {payload_sql(payload_bytes)} "
            f"FROM {table}, LATERAL {PAYLOAD_BASE_SQL} p ORDER BY id",
            {"size": payload_bytes, "tag": run_tag, "worker": worker})
    try:
        yield from cursor
    finally:
        cursor.close()


def server_lookup(identities: list[Identity]) -> Callable[[int, Optional[int]], object]:
    """(worker, session) -> the server that session ran on, for hole detection."""
    table = {(i.worker, i.session): i.server() for i in identities}
    return lambda worker, session: table.get((worker, session))


def stale_lookup(identities: list[Identity]) -> Optional[Callable[[int, Optional[int], float],
                                                                    Optional[float]]]:
    """(worker, session, acknowledged at) -> since when a newer primary was serving, when
    the op was acknowledged by a server that was no longer the newest primary (split brain);
    else None. None instead of a lookup when no client ever saw a newer primary."""
    sessions = {(i.worker, i.session): position(i) for i in identities}
    newer = newer_primary_since(identities)
    if not newer:
        return None  # no client ever saw a newer primary: nothing can be stale

    def stale(worker: int, session: Optional[int], acked_at: float) -> Optional[float]:
        since = newer.get(sessions.get((worker, session)))
        return since if since is not None and acked_at > since else None

    return stale


class Share(Protocol):
    """Some of the workers reconciled elsewhere, at the same snapshot of the same primary
    (drill/reconcile_share.py): their reconciler's findings and transaction tally before
    `finish`, or None when that failed."""

    workers: Sequence[int]

    def result(self) -> Optional[tuple]: ...


def new_reconciler(identities: list[Identity], primary: Optional[Identity],
                   ops_per_transaction: int) -> Reconciler:
    """A reconciler for a run whose sessions had `identities`, checked against `primary`
    (whose own acknowledgements cannot be lost)."""
    return Reconciler(server_lookup(identities), stale_lookup(identities),
                      primary.server() if primary is not None else None,
                      ops_per_transaction)


def reconcile_workers(reconciler: Reconciler, conn, ledger: Ledger, schema: str,
                      workers: Iterable[int], run_tag: str, payload_bytes: int, full: bool,
                      outcomes_only: bool) -> None:
    """Join these workers' ledgers with the primary's rows, in the connection's current
    transaction. Raises ValidationIncomplete."""
    try:
        for worker in workers:
            reconciler.add_worker(worker, ledger.ops_by_key(worker), primary_rows(
                conn, schema, worker, run_tag, payload_bytes if full else None),
                ledger.last_seq(worker) or 0 if outcomes_only else None)
    except psycopg2.Error as exc:
        raise mid_check(exc, conn) from None


def reconcile_run(conn, ledger: Ledger, schema: str, workers: int, run_tag: str,
                  payload_bytes: int, full: bool, identities: list[Identity],
                  primary: Optional[Identity] = None,
                  outcomes_only: bool = False, ops_per_transaction: int = 1,
                  share: Optional[Share] = None) -> Findings:
    """Join every worker's ledger with the primary's rows (`primary`: the confirmed primary
    they are read from, whose own acknowledgements cannot be lost; `outcomes_only`: async
    repo mode, where the ledger holds no intents and a killed worker's last records may be
    missing; `ops_per_transaction`: how the workers grouped their ops; `share`: the higher
    workers reconciled beside this one, taken in after this connection's own workers, so
    the findings are the same as from one pass in worker order. Should the share fail,
    its workers are reconciled here). Raises ValidationIncomplete."""
    reconciler = new_reconciler(identities, primary, ops_per_transaction)

    def check(these: Iterable[int]) -> None:
        reconcile_workers(reconciler, conn, ledger, schema, these, run_tag, payload_bytes,
                          full, outcomes_only)

    elsewhere = set(share.workers) if share is not None else set()
    check(w for w in range(workers) if w not in elsewhere)
    if share is not None:
        partial = share.result()
        if partial is not None:
            findings, tally = partial
            reconciler.findings.absorb(findings)
            if reconciler.tally is not None:
                reconciler.tally.absorb(tally)
        else:
            check(sorted(elsewhere))
    try:
        conn.commit()
    except psycopg2.Error as exc:
        raise mid_check(exc, conn) from None
    return reconciler.finish()
