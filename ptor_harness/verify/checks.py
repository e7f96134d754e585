"""The verdict: small checks over the drill's figures, merged by priority.

Each check looks at the typed `Figures` (and the scenario's thresholds) and returns pass,
fail or unknown with one sentence. The verdict merges them the way Jepsen's `merge-valid`
does: any fail fails, else any unknown is unknown, else pass. A check that could not be
made (data not validated, a fault that did not run, a drill cut short) is unknown, never a
pass. The JUnit test cases and the Prometheus figures derive from the same checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from ..config.options import EXPECT_ANY, EXPECT_FAILOVER, EXPECT_NO_PROMOTION
from ..config.scenario import Thresholds
from ..outcome import LockStatus, Stop, StopReason, interrupted_by, stopped_by

if TYPE_CHECKING:
    from ..drill.faults import FaultRecord

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
PRIORITY = {FAIL: 2, UNKNOWN: 1, PASS: 0}
# anomalies judged here; resurrected rows are lost deletes, judged with the loss
JUDGED_ANOMALIES = ("phantom_rows", "holes", "failed_but_applied", "split_brain_writes",
                    "partial_transactions")


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def as_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Observed:
    """What the drill saw of a failover."""

    primary_changed: bool
    write_outage: bool
    longest_outage_seconds: Optional[float]
    not_recovered: bool


@dataclass(frozen=True)
class CdcFigures:
    """--cdc-slot: what the change-data-capture check is judged on (verify/cdc.py)."""

    slot_status: Optional[str]  # on the new primary: present, missing, lost WAL,
    # invalidated; None: unread
    reported: bool  # the consumer's last word arrived
    caught_up: bool  # it read up to the load's last write before it stopped
    missed: Optional[int]  # None: not checked (reconciliation did not finish)
    phantom: Optional[int]
    max_missed: int


@dataclass(frozen=True)
class Figures:
    """What the verdict is judged on, as verify/figures.py works it out (no report dict)."""

    write_rto: Optional[float]
    recovered: bool
    outage_windows: int
    detection: Optional[float]
    lost: Optional[int]  # None: the data was not validated
    unverifiable: int  # acknowledged ops no evidence placed: assumed kept, maybe lost
    validation_error: Optional[str]
    anomalies: dict[str, Optional[int]]
    wrong_payloads: Optional[int]
    ops_ok: int
    stop: Optional[StopReason]  # why the load ended (None: it never began)
    lock: LockStatus
    faults: Sequence[FaultRecord]
    faults_planned: int
    expected: str
    observed: Observed
    # the standby least behind at the fault (anatomy.closest_standby): why a manager may
    # have promoted none
    closest_standby: Optional[tuple] = None
    cdc: Optional[CdcFigures] = None  # None: no --cdc-slot, no check
    # the slowest acknowledged write (latency.op_ok_max_seconds): a stall without an error
    # (a frozen primary, a pooler's PAUSE) opens no outage window, yet no write of that
    # client completed meanwhile
    slowest_write: Optional[float] = None
    # after the fault, sessions the endpoint led to a standby and writes refused as
    # read-only by a server that was no longer the primary (anatomy.stale_routing)
    stale_sessions: int = 0
    stale_refusals: int = 0
    # the node observer saw a standby promoted while the load still ran (its name)
    promoted_in_load: Optional[str] = None


def limit(value: Optional[float], bound: Optional[float], what: str, name: str) -> Check:
    """A figure against its optional threshold (seconds)."""
    if value is None:
        return Check(name, PASS, f"no {what} was measured")
    if bound is not None and value > bound:
        return Check(name, FAIL, f"{what} {value:.3f} s is above {name} {bound:g} s")
    within = f" (limit {bound:g} s)" if bound is not None else ""
    return Check(name, PASS, f"{what} {value:.3f} s{within}")


def lag_reason(f: Figures) -> str:
    """Why no standby may have been promoted: how far behind the best one was at the fault
    (a manager such as Patroni, maximum_lag_on_failover 1 MiB by default, refuses a
    standby further behind). Empty when a primary did change or the lag is unknown."""
    if f.observed.primary_changed or f.closest_standby is None:
        return ""
    name, behind, seconds = f.closest_standby
    late = f", {seconds:.3f} s of replay" if seconds is not None else ""
    return (f"; no standby was promoted, and at the fault the closest, {name}, was "
            f"{behind:,} bytes of WAL behind the primary{late} (a manager refuses to "
            "promote a standby further behind than it allows: Patroni's "
            "maximum_lag_on_failover is 1 MiB by default)")


def routing_reason(f: Figures) -> str:
    """Why writes did not come back where the node observer saw a standby promoted while
    the load still ran: the primary DSN never led a client to it, so the endpoint, not the
    cluster, failed to follow. Empty otherwise."""
    if f.promoted_in_load is None:
        return ""
    said = [f"{n:,} {what}" for n, what in ((f.stale_sessions, "sessions landed on a "
                                             "standby"),
                                            (f.stale_refusals, "writes were refused as "
                                             "read-only")) if n]
    seen = f"after the fault {' and '.join(said)} (stale routing)" if said else \
        "no session the workers opened after the fault reached it"
    return (f"through the primary DSN, though {f.promoted_in_load} was promoted while the "
            f"load ran: {seen}. The endpoint did not follow the failover: a single host, a "
            "multi-host DSN without target_session_attrs=read-write, or a proxy or pooler "
            "still sending clients to the old primary")


def writes_recovered(f: Figures, t: Thresholds) -> Check:
    past_max_outage = stopped_by(f.stop, Stop.MAX_OUTAGE)
    if f.expected == EXPECT_NO_PROMOTION and (past_max_outage or not f.recovered):
        return Check("writes recovered", PASS, "writes did not come back within "
                     "max-outage: what a drill that must not promote a standby expects"
                     + lag_reason(f))
    if past_max_outage or not f.recovered:
        return Check("writes recovered", FAIL, "writes did not come back "
                     + (routing_reason(f) or "(no primary accepted writes again)"
                        + lag_reason(f)))
    return Check("writes recovered", PASS, f"{f.outage_windows} outage window(s), all "
                 "recovered")


def write_rto(f: Figures, t: Thresholds) -> Check:
    """The write RTO against max-write-rto, and a stall too: a client that waited longer
    than the bound for one acknowledged write had no write for that long, error or not."""
    stalled = stall_above(f, t.max_write_rto)
    if stalled is not None and (f.write_rto is None or f.write_rto <= t.max_write_rto):
        return Check("max-write-rto", FAIL, stalled)
    return limit(f.write_rto, t.max_write_rto, "write RTO", "max-write-rto")


def stall_above(f: Figures, bound: Optional[float]) -> Optional[str]:
    """Why the slowest acknowledged write breaks `bound` (max-write-rto), or None."""
    if bound is None or f.slowest_write is None or f.slowest_write <= bound:
        return None
    return (f"an acknowledged write waited {f.slowest_write:.3f} s (writes stalled without "
            f"an error), above max-write-rto {bound:g} s")


def detection(f: Figures, t: Thresholds) -> Check:
    return limit(f.detection, t.max_detection_time, "detection time", "max-detection-time")


def lost_acknowledged(f: Figures, t: Thresholds) -> Check:
    """Lost acknowledged ops against the allowance. Ops no evidence placed are counted as
    kept, never reported lost; but a pass claims nothing beyond the allowance was lost, so
    when they could take the loss over it the check is unknown, not pass."""
    name, allowed = "max-lost-acknowledged", t.max_lost_acknowledged
    if f.lost is None:
        return Check(name, UNKNOWN, "data was not validated: "
                     + (f.validation_error or "no reason"))
    if f.lost > allowed:
        were = "op was" if f.lost == 1 else "ops were"
        return Check(name, FAIL, f"{f.lost:,} acknowledged {were} lost "
                     f"(max-lost-acknowledged is {allowed:,})")
    if f.lost + f.unverifiable > allowed:
        return Check(name, UNKNOWN, f"{f.lost:,} acknowledged ops lost, and "
                     f"{f.unverifiable:,} more that no evidence shows kept or lost "
                     "(rpo.unverifiable_examples): the loss may exceed "
                     f"max-lost-acknowledged ({allowed:,})")
    return Check(name, PASS, f"{f.lost:,} acknowledged ops lost (max {allowed:,})"
                 + (f", {f.unverifiable:,} unplaced" if f.unverifiable else ""))


def anomalies(f: Figures, t: Thresholds) -> Check:
    found = [f"{f.anomalies[key]:,} {key.replace('_', ' ')}" for key in JUDGED_ANOMALIES
             if f.anomalies.get(key)]
    if f.wrong_payloads:
        found.append(f"{f.wrong_payloads:,} rows with a wrong payload")
    if found:
        return Check("anomalies", FAIL, ", ".join(found))
    if f.lost is None:
        return Check("anomalies", UNKNOWN, "data was not validated")
    return Check("anomalies", PASS, "no phantom rows, holes, failed ops found applied, "
                 "split-brain writes, partial transactions or wrong payloads")


def drill_completed(f: Figures, t: Thresholds) -> Check:
    incomplete = []
    if f.ops_ok == 0:
        incomplete.append("no op was acknowledged at all")
    if interrupted_by(f.stop):
        incomplete.append(f"the drill was interrupted by {interrupted_by(f.stop)}")
    if stopped_by(f.stop, Stop.RECONCILED_LATER):
        incomplete.append("the run did not finish (its coordinator died, or its ledger "
                          "could not be written); its ledger was reconciled later, its "
                          "load and faults were not followed to the end")
    if f.lock.failed:
        incomplete.append(f"{f.lock.failed}: another drill could have run meanwhile")
    if f.lock.lost_to:
        incomplete.append(f"another drill took this cluster's lock during the run "
                          f"({f.lock.lost_to}): its load may have changed the rows")
    if len(f.faults) < f.faults_planned:
        incomplete.append(f"the run ended before every planned fault was injected "
                          f"({len(f.faults)} of {f.faults_planned})")
    if incomplete:
        return Check("drill completed", UNKNOWN, "; ".join(incomplete))
    return Check("drill completed", PASS, (f.stop.detail if f.stop else "") or "completed")


def faults_ran(f: Figures, t: Thresholds) -> Check:
    """A fault that could not start, exited non-zero, timed out or was killed proves
    nothing about a failover: at best unknown, never a pass."""
    failed = [fault for fault in f.faults if fault.failed]
    if failed:
        return Check("faults ran", UNKNOWN, "; ".join(fault.failure() for fault in failed))
    if not f.faults:
        return Check("faults ran", PASS, "ptor injected no fault")
    return Check("faults ran", PASS, f"{len(f.faults)} fault(s) ran to a clean end")


def expectation(f: Figures, t: Thresholds) -> Check:
    """--expect: failover (none seen: unknown), no-failover (a change of primary or an
    outage above max-write-rto fails), no-promotion (a change of primary fails; writes
    that never come back are the expected outcome: e.g. a manager that refuses to promote
    a standby lacking acknowledged commits), any (not checked)."""
    expected, seen = f.expected, f.observed
    name = f"expect {expected}"
    if expected == EXPECT_ANY:
        return Check(name, PASS, "a plain load test: no failover expected or ruled out")
    longest = seen.longest_outage_seconds
    if expected == EXPECT_NO_PROMOTION:
        if seen.primary_changed:
            return Check(name, FAIL, "another server became primary in a drill where no "
                         "standby may be promoted")
        if not seen.write_outage:
            return Check(name, UNKNOWN, "writes never stopped: the drill did not take the "
                         "primary away, so it proves nothing about promotion")
        return Check(name, PASS, "no standby was promoted; writes " + (
            "did not come back" if seen.not_recovered or longest is None
            else f"came back on the same primary after {longest:.3f} s"))
    saw = []
    if seen.primary_changed:
        saw.append("the primary changed")
    if seen.write_outage:
        saw.append("writes stopped" + ("" if seen.not_recovered or longest is None
                                       else f" for up to {longest:.3f} s"))
    if expected == EXPECT_FAILOVER:
        if saw:
            return Check(name, PASS, "a failover was observed: " + " and ".join(saw))
        return Check(name, UNKNOWN, "no failover was observed: the primary never changed "
                     "and no write failed")
    if seen.primary_changed:
        return Check(name, FAIL, "the primary changed in a drill that must not fail over")
    bound = t.max_write_rto
    if seen.write_outage and (seen.not_recovered or (
            bound is not None and longest is not None and longest > bound)):
        return Check(name, FAIL, "writes stopped for longer than max-write-rto in a drill "
                     "that must not fail over")
    if stall_above(f, bound) is not None:
        return Check(name, FAIL, "writes stalled for longer than max-write-rto in a drill "
                     "that must not fail over")
    return Check(name, PASS, "no failover: the primary never changed"
                 + (f"; writes stopped for up to {longest:.3f} s" if saw else ""))


def cdc(f: Figures, t: Thresholds) -> Optional[Check]:
    """--cdc-slot: the slot survived, the consumer missed no more acknowledged changes the
    new primary holds than --max-cdc-missed, and received none the new primary lost."""
    c = f.cdc
    if c is None:
        return None
    name = "change data capture"
    if c.slot_status is not None and c.slot_status != "present":
        return Check(name, FAIL, f"the CDC slot is {c.slot_status} on the new primary: a "
                     "consumer cannot resume where it was")
    if c.phantom:
        return Check(name, FAIL, f"the CDC consumer received {c.phantom} change(s) the new "
                     "primary does not hold: downstream has data the database lost")
    if not c.reported:
        return Check(name, UNKNOWN, "the CDC consumer never reported: what it received is "
                     "not known to be complete")
    if c.slot_status is None or c.missed is None:
        return Check(name, UNKNOWN, "the CDC check was not made: the slot or the data on "
                     "the new primary could not be read")
    if c.missed > c.max_missed:
        if not c.caught_up:
            return Check(name, UNKNOWN, f"the CDC consumer had not caught up with the load's "
                         f"last write when it stopped: {c.missed} change(s) not received may "
                         "only have been late")
        return Check(name, FAIL, f"the CDC consumer missed {c.missed} acknowledged change(s) "
                     f"the new primary holds (max-cdc-missed {c.max_missed})")
    return Check(name, PASS, f"the slot survived; {c.missed} acknowledged change(s) missed "
                 f"(max-cdc-missed {c.max_missed}), none received that the new primary lost")


CHECKS: tuple[Callable[[Figures, Thresholds], Optional[Check]], ...] = (
    writes_recovered, write_rto, detection, lost_acknowledged, anomalies, drill_completed,
    faults_ran, expectation, cdc)


@dataclass(frozen=True)
class Verdict:
    status: str
    reasons: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


def merge(checks: Sequence[Check]) -> Verdict:
    """The worst status wins (fail > unknown > pass); the reasons are the sentences of the
    checks that did not pass, fails first."""
    status = max((c.status for c in checks), key=PRIORITY.__getitem__, default=PASS)
    reasons = [c.detail for c in checks if c.status == FAIL] + \
        [c.detail for c in checks if c.status == UNKNOWN]
    return Verdict(status, reasons, list(checks))


def judge(figures: Figures, thresholds: Thresholds) -> Verdict:
    """Every check of the drill, merged into its verdict."""
    return merge([c for c in (check(figures, thresholds) for check in CHECKS)
                  if c is not None])
