"""The drill's figures, typed and worked out once from its outcome (Rally's stats object,
which the reporter only renders): the outage windows and the write RTO, each fault's
figures and the one whose outage counts, the ops by outcome, what the drill saw of a
failover, the failover's anatomy (the drill before the fault too), the brownout, stale
routing and why lost ops were lost. From them the
verdict's `checks.Figures`, so `checks.judge` never reads the report's dict; the report
(outputs/report.py) writes these figures into report.json and derives none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import servers
from ..outcome import DrillOutcome
from . import checks
from .anatomy import Event, anatomy, by_node, closest_standby, listed_at
from .findings import ANOMALY_CLASSES, OTHER_CAUSE, SPLIT_BRAIN, SYNC_WAIT_CANCELLED
from .metrics import (
    attempts_per_second,
    brownout,
    figures_per_fault,
    first_outage_fault,
    probe_view,
    rto_summary,
)
from .redundancy import before_fault, stalls_before

NO_FAULT = {"detection_seconds": None, "injection_to_first_ok_seconds": None}


@dataclass(frozen=True)
class DrillFigures:
    """Everything the verdict and the report's outage sections are made of."""

    windows: list  # metrics.Window, in time order
    window_summaries: list[dict]  # each window with the probe's view and connect rates
    rto: dict  # metrics.rto_summary
    per_fault: list[dict]  # metrics.fault_figures, one per fault in injection order
    causing: Optional[int]  # the fault whose outage the drill measures (index)
    fault: dict  # that fault's detection and injection-to-first-ok seconds
    fault_at: Optional[float]  # its injection, else the first failure seen
    totals: dict  # ops by outcome
    ok_by_kind: dict  # acknowledged ops by kind
    observed: checks.Observed
    anatomy: dict  # the failover's anatomy (anatomy.anatomy), for the outage that counts
    timeline: list  # a row per second of the ledger's ops (metrics.timeline)
    brownout: dict  # metrics.brownout over the timeline


def drill_figures(outcome: DrillOutcome) -> DrillFigures:
    """Work out the drill's figures from what the coordinator gathered."""
    metrics = outcome.metrics
    windows = metrics.windows() if metrics else []
    probe_failures = [gap.first_failure for gap in outcome.probe_gaps]
    per_fault = figures_per_fault(windows, [f.started_at for f in outcome.faults],
                                  probe_failures)
    causing = first_outage_fault(per_fault)  # e.g. kill-primary after stop-sync-standby
    injected = outcome.faults[causing].started_at if causing is not None else None
    fault = per_fault[causing] if causing is not None else NO_FAULT
    # the fault the RPO window is measured against: ptor's injection, else the first failure
    fault_at = injected if injected is not None else (windows[0].first_bad if windows else None)
    by_kind: dict[str, int] = {}
    for stats in (metrics.workers.values() if metrics else []):
        for kind, n in stats.by_kind.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
    summaries = [window_summary(w, outcome) for w in windows]
    timeline = metrics.timeline() if metrics else []
    slow = brownout(timeline, baseline_from(outcome), outcome.phases.get("load"),
                    outcome.phases.get("drain"), outcome.scenario.thresholds.brownout_threshold)
    return DrillFigures(
        windows=windows, window_summaries=summaries, rto=rto_summary(windows),
        per_fault=per_fault, causing=causing, fault=fault, fault_at=fault_at,
        totals=metrics.totals() if metrics else {"ok": 0, "failed": 0, "indeterminate": 0},
        ok_by_kind=by_kind, observed=observed_failover(summaries, outcome),
        anatomy=dict(failover_anatomy(outcome, windows, fault_at, fault, causing, slow),
                     later_outages=later_outages(outcome, windows, per_fault, causing)),
        timeline=timeline, brownout=slow)


def baseline_from(outcome: DrillOutcome) -> Optional[float]:
    """Where the brownout's baseline rate starts: the warmup, or once a background load
    runs beside it (ptor's rate alone before it would make every later second look low)."""
    warmup = outcome.phases.get("warmup")
    starts = [at for record in outcome.background or () for at in record.starts]
    return max(warmup, min(starts)) if warmup is not None and starts else warmup


def window_summary(window, outcome: DrillOutcome) -> dict:
    """An outage window as the workers saw it, with the probe's own view of it and the
    connection attempts per second ptor made meanwhile (workers and probe)."""
    summary = window.summary()
    summary["probe"] = probe_view(summary, outcome.probe_gaps)
    summary["connect_attempts_per_second"] = attempts_per_second(
        outcome.connect_samples, summary["first_failure"], summary["end"])
    return summary


def observed_failover(summaries: list[dict], outcome: DrillOutcome) -> checks.Observed:
    """What the drill saw of a failover: a change of primary (servers.primaries: among
    the primaries the workers and ptor's checks reached) and write outages."""
    primaries = servers.primaries(outcome.identities + [outcome.primary_before,
                                                        outcome.primary_after])
    longest = max((w["write_rto_seconds"] or 0.0 for w in summaries), default=None)
    return checks.Observed(primary_changed=len(primaries) > 1, write_outage=bool(summaries),
                           longest_outage_seconds=longest,
                           not_recovered=any(not w["recovered"] for w in summaries))


def first_failure_of(windows: list, fault_at: Optional[float]) -> Optional[float]:
    """The workers' first failure in the outage that counts (the first window whose first
    failure came at or after the fault)."""
    if fault_at is None:
        return None
    return next((w.first_bad for w in windows if w.first_bad >= fault_at), None)


def reached(outcome: DrillOutcome, detected: Optional[float]) -> Optional[float]:
    """When a worker first had a session on the primary the drill ended with, after the
    first client error (a reconnect that found it); None where not known."""
    after = outcome.primary_after
    if after is None or detected is None:
        return None
    return min((i.at for i in outcome.identities if i.in_recovery is False
                and i.at >= detected and i.primary() == after.primary()), default=None)


def failover_anatomy(outcome: DrillOutcome, windows: list, fault_at: Optional[float],
                     fault: dict, causing: Optional[int], slow: dict) -> dict:
    """The anatomy (anatomy.py) of the outage ptor's fault caused (`causing`: the index of
    the first fault an outage followed), or of the first outage when a person failed the
    cluster over."""
    injected = outcome.faults[causing] if causing is not None else None
    if injected is not None:
        detection, to_ok = fault["detection_seconds"], fault["injection_to_first_ok_seconds"]
        detected = None if detection is None else fault_at + detection
        first_ok = None if to_ok is None else fault_at + to_ok
    else:
        detected = windows[0].first_bad if windows else None
        first_ok = windows[0].first_ok if windows else None
    found = anatomy(outcome.node_samples, outcome.replication, fault_at,
                    injected.name if injected else None, detected, first_ok,
                    reached(outcome, detected), first_failure_of(windows, fault_at))
    if fault_at is None:
        return dict(found, no_standby_since=None)
    # the drill before the fault: the primary losing (or regaining) a standby, and on
    # to the first client error (redundancy.before_fault)
    early, alone_since = before_fault(by_node(outcome.node_samples), outcome.replication,
                                      fault_at,
                                      outcome.scenario.thresholds.standby_lag_threshold,
                                      until=detected)
    early += stalls_before(slow, fault_at)
    # the drill's other faults, where they stood (a standby stopped before the kill
    # explains what the anatomy shows before it)
    early += [Event("fault injected", f.started_at, "ptor", f.name)
              for f in outcome.faults if f is not injected and f.started_at is not None]
    events = sorted([e.as_dict(fault_at) for e in early] + found["events"],
                    key=lambda e: listed_at(e["name"], e["at"], e.get("after"), first_ok))
    return dict(found, events=events, no_standby_since=alone_since)


# What the anatomy of a later outage holds: its own events and parts; the drill-wide
# figures (two primaries at once, Service Available, read outages) stay with the first.
LATER_OUTAGE_KEYS = ("old_primary", "new_primary", "events", "detection_seconds",
                     "promotion_seconds", "read_only_seconds", "held_seconds",
                     "routing_seconds", "first_commit_seconds", "replication_at_fault")


def later_outages(outcome: DrillOutcome, windows: list, per_fault: list[dict],
                  causing: Optional[int]) -> list[dict]:
    """The anatomy of each outage a fault after the one that counts caused (a failback
    after the failover; pg_auto_failover's scenario switches over after its kill), which
    the report would otherwise show only as an outage window. Where its clients reached
    the new primary is not told apart from routing (no first commit part)."""
    out: list[dict] = []
    for i in range(len(per_fault) if causing is None else causing + 1, len(per_fault)):
        record, fault = outcome.faults[i], per_fault[i]
        if fault["detection_seconds"] is None or record.started_at is None:
            continue
        at, to_ok = record.started_at, fault["injection_to_first_ok_seconds"]
        found = anatomy(outcome.node_samples, outcome.replication, at, record.name,
                        at + fault["detection_seconds"], None if to_ok is None else at + to_ok,
                        clients_failed_at=first_failure_of(windows, at))
        out.append(dict({key: found[key] for key in LATER_OUTAGE_KEYS}, fault=record.name,
                        fault_at=at))
    return out


def refused_by(outcome: DrillOutcome) -> tuple[list[tuple], list[tuple]]:
    """The writes refused as read-only, split by the server that refused them: (those of
    sessions on the primary the drill ended with, on its timeline: a primary its manager
    or an operator held read-only, as pg_auto_failover does while it promotes; the rest:
    a standby, or the old primary once demoted). Each as (count, first, last)."""
    sessions = {(i.worker, i.session): i for i in outcome.identities}  # the latest of each
    after = outcome.primary_after.primary() if outcome.primary_after else None
    own, stale = [], []
    for worker, session, count, first, last in outcome.refused_writes:
        identity = sessions.get((worker, session))
        on_primary = after is not None and identity is not None and \
            identity.primary() == after and identity.in_recovery is False
        (own if on_primary else stale).append((count, first, last))
    return own, stale


def _span(refusals: list[tuple], times: list[float]) -> dict:
    times = times + [t for _, first, last in refusals for t in (first, last) if t is not None]
    return {"refused_writes": sum(count for count, _, _ in refusals),
            "first_at": min(times, default=None), "last_at": max(times, default=None),
            "seconds": max(times) - min(times) if times else None}


def read_only_refusals(outcome: DrillOutcome, fault_at: Optional[float]
                       ) -> tuple[dict, dict]:
    """(stale routing, the primary held read-only). Stale routing: clients sent to a
    server that was no longer the primary: writes refused as read-only (SQLSTATE 25006)
    by another server than the primary the drill ended with, and sessions the endpoint
    led to a standby after the fault (a worker checks every session it opens and looks
    again). Held read-only: writes the primary itself refused so
    (default_transaction_read_only: a manager holding a promoted node, an operator, a
    provider's full-disk guard), which are no stale routing."""
    own, stale = refused_by(outcome)
    landed = [i.at for i in outcome.identities
              if i.in_recovery and fault_at is not None and i.at >= fault_at]
    return dict(_span(stale, landed), standby_sessions=len(landed)), _span(own, [])


# synchronous_commit values whose commit is acknowledged before any standby has it: off
# (before even the primary's own flush) and local (after the primary's flush alone)
COMMIT_WAITS_FOR_NO_STANDBY = ("off", "local")


def other_cause(at_fault: list[dict], synchronous_commit: Optional[str] = None) -> str:
    """What a loss that neither a cancelled wait nor split brain explains is put down to,
    by the replication mode the observer saw at the fault: asynchronous lag when no
    standby was synchronous; when one was, synchronous_commit off (or local: the
    primary's sessions acknowledged commits without waiting for it), else unexplained;
    not attributed when nothing was seen."""
    modes = {x["sync_state"] for x in at_fault if x["seen_by"].startswith("primary")}
    if not modes:
        return "not_attributed"
    if not modes & {"sync", "quorum"}:
        return "asynchronous_lag"
    return "synchronous_commit_off" if synchronous_commit in COMMIT_WAITS_FOR_NO_STANDBY \
        else "unexplained"


def lost_by_cause(counts: dict, at_fault: list[dict],
                  synchronous_commit: Optional[str] = None) -> dict:
    """Why the lost acknowledged ops were lost: a cancelled wait for the synchronous
    standby (PostgreSQL said so with the acknowledgement), split brain, and the rest as
    `other_cause` puts it down."""
    out = {SYNC_WAIT_CANCELLED: counts.get(SYNC_WAIT_CANCELLED, 0),
           SPLIT_BRAIN: counts.get(SPLIT_BRAIN, 0),
           "asynchronous_lag": 0, "synchronous_commit_off": 0, "unexplained": 0,
           "not_attributed": 0}
    out[other_cause(at_fault, synchronous_commit)] += counts.get(OTHER_CAUSE, 0)
    return out


def lost_examples(examples: list[dict], at_fault: list[dict],
                  synchronous_commit: Optional[str] = None) -> list[dict]:
    """The lost ops' examples, each with its cause as `lost_by_cause` counts it."""
    other = other_cause(at_fault, synchronous_commit)
    return [dict(e, cause=other) if e.get("cause") == OTHER_CAUSE else e for e in examples]


def verdict_figures(d: DrillFigures, outcome: DrillOutcome) -> checks.Figures:
    """What the verdict is judged on, from the typed figures and the findings."""
    f = outcome.findings
    stale, _ = read_only_refusals(outcome, d.fault_at)
    return checks.Figures(
        write_rto=d.rto["write_seconds"], recovered=d.rto["recovered"],
        outage_windows=len(d.windows), detection=d.fault["detection_seconds"],
        lost=f.lost_total if f else None, validation_error=outcome.validation_error,
        unverifiable=(f.unverifiable or 0) if f else 0,
        anomalies={name: getattr(f, name) if f else None for name in ANOMALY_CLASSES},
        wrong_payloads=f.checksum_mismatches if f else None,
        ops_ok=d.totals["ok"], stop=outcome.stop, lock=outcome.lock,
        faults=outcome.faults, faults_planned=outcome.faults_planned,
        expected=outcome.scenario.thresholds.expect, observed=d.observed,
        closest_standby=closest_standby(d.anatomy["replication_at_fault"]),
        cdc=cdc_figures(outcome), slowest_write=slowest_write(outcome),
        stale_sessions=stale["standby_sessions"], stale_refusals=stale["refused_writes"],
        promoted_in_load=promoted_in_load(d.anatomy, outcome.phases.get("drain")))


def promoted_in_load(anatomy: dict, load_ended: Optional[float]) -> Optional[str]:
    """The node the observer saw promoted before the load ended, or None (no observer, no
    promotion, or one after the load: writes could not have come back through it)."""
    promoted = next((e for e in anatomy.get("events") or []
                     if e["name"] == "standby promoted"), None)
    if promoted is None or load_ended is None or promoted["at"] >= load_ended:
        return None
    return anatomy.get("new_primary")


def slowest_write(outcome: DrillOutcome) -> Optional[float]:
    """The longest any acknowledged write took (report key latency.op_ok_max_seconds)."""
    m = outcome.metrics
    return m.latency.max if m and m.latency.n else None


def cdc_figures(outcome: DrillOutcome) -> Optional[checks.CdcFigures]:
    """What the CDC check is judged on (None without --cdc-slot)."""
    cdc = outcome.scenario.cdc
    if cdc.cdc_slot is None:
        return None
    t, heard = outcome.cdc_tally, outcome.cdc
    return checks.CdcFigures(
        slot_status=(outcome.cdc_slot_after or {}).get("status"), reported=heard is not None,
        caught_up=heard is not None and heard.caught_up,
        missed=t.missed if t else None, phantom=t.phantom if t else None,
        max_missed=cdc.max_cdc_missed)
