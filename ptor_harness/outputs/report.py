"""The report: the drill's figures as a versioned dict (report.json), a verdict, and tables.

Its format and the history of its formats are report_file.py's, which also reads reports
back.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from .. import servers
from ..errors import EXIT_FAIL, EXIT_PASS, EXIT_UNKNOWN
from ..ops import ENDPOINT
from ..outcome import DrillOutcome
from ..verify import checks, saturation
from ..verify.anatomy import closest_standby
from ..verify.background import background_section, background_warnings
from ..verify.findings import ANOMALY_CLASSES, EXAMPLES_OF, rpo_window
from ..verify.metrics import (
    attempts_per_second,
    brownout,
    figures_per_fault,
    first_outage_fault,
    probe_view,
    rto_summary,
    sla_percent,
)
from ..verify.rate import BEFORE_FAULT, load_figures, load_warnings, wal_rate
from ..verify.transactions import transaction_totals
from . import report_file
from .nodes import failover_anatomy, lost_by_cause, nodes_section, stale_routing

REPORT_FORMAT = report_file.FORMAT
EXIT_CODES = {checks.PASS: EXIT_PASS, checks.FAIL: EXIT_FAIL, checks.UNKNOWN: EXIT_UNKNOWN}


def _identity(identity) -> Optional[dict]:
    if identity is None:
        return None
    return {"addr": identity.addr, "port": identity.port, "system_id": identity.system_id,
            "timeline": identity.timeline, "label": identity.label()}


def anomalies(findings) -> dict:
    """Each anomaly class with its count and up to ten example keys (None: not checked)."""
    out: dict = {}
    for name in ANOMALY_CLASSES:
        out[name] = getattr(findings, name) if findings else None
        out[EXAMPLES_OF[name]] = getattr(findings, EXAMPLES_OF[name]) if findings else []
    return out


def build(outcome: DrillOutcome) -> dict:
    """Turn the coordinator's DrillOutcome into the report dict, verdict included."""
    s = outcome.scenario
    metrics = outcome.metrics
    windows = metrics.windows() if metrics else []
    rto = rto_summary(windows)
    probe_failures = [gap.first_failure for gap in outcome.probe_gaps]
    per_fault = figures_per_fault(windows, [f.started_at for f in outcome.faults],
                                  probe_failures)
    causing = first_outage_fault(per_fault)  # e.g. kill-primary after stop-sync-standby
    injected = outcome.faults[causing].started_at if causing is not None else None
    fault = per_fault[causing] if causing is not None else {
        "detection_seconds": None, "injection_to_first_ok_seconds": None}
    findings = outcome.findings
    totals = metrics.totals() if metrics else {"ok": 0, "failed": 0, "indeterminate": 0}
    lost = findings.lost_total if findings else None
    # the fault the RPO window is measured against: ptor's injection, else the first failure
    fault_at = injected if injected is not None else (windows[0].first_bad if windows else None)
    by_kind = {}
    if metrics:
        for stats in metrics.workers.values():
            for kind, n in stats.by_kind.items():
                by_kind[kind] = by_kind.get(kind, 0) + n
    report = {
        "format": REPORT_FORMAT,
        "run_id": outcome.run_id,
        "verdict": None,
        "verdict_reasons": [],
        "warnings": [],
        "ledger": outcome.ledger_kind,
        "run_dir": os.path.abspath(outcome.run_dir),
        "scenario": s.as_public_dict(),
        "phases": dict(outcome.phases, **({} if outcome.seed is None
                                          else {"seed": outcome.seed})),
        "stop_reason": outcome.stop_reason,
        "interrupted": outcome.interrupted,
        "lock": {"retaken": outcome.lock.retaken, "lost_to": outcome.lock.lost_to},
        "harness": harness_figures(outcome),
        "load": load_figures(s.load.rate, s.load.parallel_workers, outcome.schedules,
                             totals["ok"], outcome.phases.get("warmup"),
                             outcome.phases.get("drain"), outcome.node_samples,
                             outcome.wal_positions),
        "deadline_reached": outcome.deadline_reached,
        "rto": {
            "write_seconds": rto["write_seconds"],
            "recovered": rto["recovered"],
            "detection_seconds": fault["detection_seconds"],
            "injection_to_first_ok_seconds": fault["injection_to_first_ok_seconds"],
            "worker_min_seconds": rto["worker_min"],
            "worker_median_seconds": rto["worker_median"],
            "worker_max_seconds": rto["worker_max"],
            "outage_windows": len(windows),
        },
        "rpo": dict({
            "lost_acknowledged_ops": lost,
            "lost_acknowledged_transactions": findings.lost_transactions if findings else None,
            "lost_by_kind": dict(findings.lost) if findings else None,
            "lost_by_evidence": dict(findings.lost_by_evidence) if findings else None,
            "unverifiable_ops": findings.unverifiable if findings else None,
            "unverifiable_examples": findings.unverifiable_examples if findings else [],
            "first_lost_ack_at": findings.first_lost_ack if findings else None,
            "last_lost_ack_at": findings.last_lost_ack if findings else None,
            "examples": findings.lost_examples if findings else [],
        }, **(rpo_window(findings.first_lost_ack, findings.last_lost_ack, fault_at)
              if findings else {"window_seconds": None,
                                "first_lost_before_fault_seconds": None,
                                "last_lost_before_fault_seconds": None})),
        "ops": {"ok": totals["ok"], "failed": totals["failed"],
                "indeterminate": totals["indeterminate"], "ok_by_kind": by_kind},
        "transactions": dict(transaction_totals(metrics.workers.values() if metrics else []),
                             ops_per_transaction=s.load.ops_per_transaction),
        "indeterminate": {
            "applied": findings.applied if findings else None,
            "not_applied": findings.not_applied if findings else None,
            "superseded": findings.superseded if findings else None,
            "unrecorded_applied": findings.unrecorded_applied if findings else None,
        },
        "validation": {
            "mode": "full" if s.preparation.full_data_validation else "quick",
            "completed": findings is not None,
            "error": outcome.validation_error,
            "reconciled_on": outcome.reconciled_on,
            "rows_checked": findings.rows_checked if findings else None,
            "keys_checked": findings.keys_checked if findings else None,
            "mismatched_rows": findings.mismatched_rows if findings else None,
            "checksum_mismatches": findings.checksum_mismatches if findings else None,
            "noop_writes": findings.noop_writes if findings else None,
        },
        "anomalies": anomalies(findings),
        "servers": {
            "primary_before": _identity(outcome.primary_before),
            "primary_after": _identity(outcome.primary_after),
            "identity_changes": servers.identity_changes(outcome.identities),
        },
        "latency": {
            "op_ok_p50_seconds": metrics.latency.percentile(50) if metrics else None,
            "op_ok_p99_seconds": metrics.latency.percentile(99) if metrics else None,
            "op_ok_max_seconds": metrics.latency.max if metrics and metrics.latency.n else None,
            "check": outcome.latency,
        },
        "faults": [dict(f.as_dict(), **figures) for f, figures in zip(outcome.faults,
                                                                        per_fault)],
        "windows": [window_summary(w, outcome) for w in windows],
        "workers": [
            {"worker": w.worker, "ok": w.ok, "failed": w.failed,
             "indeterminate": w.indeterminate + w.unresolved_intents,
             "outages": len(w.gaps),
             "longest_gap_seconds": max((g.seconds for g in w.gaps if g.seconds is not None),
                                        default=0.0)}
            for w in (metrics.workers.values() if metrics else [])
        ],
        "recorder": vars(outcome.recorder_totals) if outcome.recorder_totals else None,
        "timeline": metrics.timeline() if metrics else [],
        "errors": list(outcome.errors),
        "nodes": nodes_section(outcome),
        "anatomy": failover_anatomy(outcome, windows, fault_at, fault, causing),
        "brownout": brownout(metrics.timeline() if metrics else [],
                             baseline_from(outcome), outcome.phases.get("load"),
                             outcome.phases.get("drain"), s.thresholds.brownout_threshold),
    }
    report["background"] = background_section(
        outcome.background, s.load.background_load, report["timeline"],
        report["load"]["wal_timeline"], outcome.phases, fault_at)
    report["rto"]["service_available_seconds"] = report["anatomy"]["service_available_seconds"]
    report["rto"]["read_seconds"] = report["anatomy"]["read_outage_seconds"].get(ENDPOINT)
    report["rto"]["sla_percent"] = sla_percent(rto["write_seconds"])
    report["rpo"]["lost_bytes"] = None if findings is None else s.load.payload_bytes * (
        findings.lost["insert"] + findings.lost["update"])
    report["rpo"]["lost_by_cause"] = None if findings is None else lost_by_cause(
        findings.lost_by_cause, report["anatomy"]["replication_at_fault"])
    report["anatomy"]["stale_routing"] = stale_routing(outcome, fault_at)
    report["anatomy"]["wal_bytes_per_second_before_fault"] = None if fault_at is None else \
        wal_rate(outcome.node_samples, fault_at - BEFORE_FAULT, fault_at)
    report["rto"].update(probe_rto(report["windows"]))
    observed = observed_failover(report["windows"], outcome)
    report["expectation"] = {"expected": s.thresholds.expect,
                             "observed": dataclasses.asdict(observed)}
    verdict = checks.judge(figures(report, outcome, observed), s.thresholds)
    report["verdict"] = verdict.status
    report["verdict_reasons"] = verdict.reasons
    report["warnings"] = warnings(report, outcome)
    report["checks"] = [c.as_dict() for c in verdict.checks]
    return masked(report, s.redact)


def baseline_from(outcome: DrillOutcome) -> Optional[float]:
    """Where the brownout's baseline rate starts: the warmup, or once a background load
    runs beside it (ptor's rate alone before it would make every later second look low)."""
    warmup = outcome.phases.get("warmup")
    starts = [at for record in outcome.background or () for at in record.starts]
    return max(warmup, min(starts)) if warmup is not None and starts else warmup


def figures(report: dict, outcome: DrillOutcome, observed: checks.Observed) -> checks.Figures:
    """The figures the verdict is judged on, typed, from the report being built."""
    return checks.Figures(
        write_rto=report["rto"]["write_seconds"], recovered=report["rto"]["recovered"],
        outage_windows=report["rto"]["outage_windows"],
        detection=report["rto"]["detection_seconds"],
        lost=report["rpo"]["lost_acknowledged_ops"], validation_error=outcome.validation_error,
        unverifiable=report["rpo"]["unverifiable_ops"] or 0,
        anomalies=report["anomalies"],
        wrong_payloads=report["validation"]["checksum_mismatches"],
        ops_ok=report["ops"]["ok"], stop=outcome.stop, lock=outcome.lock,
        faults=outcome.faults, faults_planned=outcome.faults_planned,
        expected=outcome.scenario.thresholds.expect, observed=observed,
        closest_standby=closest_standby(report["anatomy"]["replication_at_fault"]))


def harness_figures(outcome: DrillOutcome) -> dict:
    """ptor's own CPU and queue during the load (saturation.judge's figures)."""
    load = outcome.harness
    return dict(saturation.judge(load.cpu_samples, load.cpu_cores, outcome.phases.get("load"),
                                 outcome.phases.get("drain")),
                queue_peak_messages=load.queue_peak, queue_capacity=load.queue_capacity)


def observed_failover(windows: list[dict], outcome: DrillOutcome) -> checks.Observed:
    """What the drill saw of a failover: a change of primary (address, port, system,
    timeline: among the primaries the workers and ptor's checks reached) and write
    outages."""
    primaries = servers.primaries(outcome.identities + [outcome.primary_before,
                                                        outcome.primary_after])
    longest = max((w["write_rto_seconds"] or 0.0 for w in windows), default=None)
    return checks.Observed(primary_changed=len(primaries) > 1, write_outage=bool(windows),
                           longest_outage_seconds=longest,
                           not_recovered=any(not w["recovered"] for w in windows))


def warnings(report: dict, outcome: DrillOutcome) -> list[str]:
    """What the reader should know that does not change the verdict."""
    out = []
    if outcome.worker_crashes:
        out.append(f"{len(outcome.worker_crashes)} worker(s) crashed; their ops up to "
                   "the crash are in the ledger")
    if outcome.faults and not report["windows"]:
        out.append("faults were injected but no client saw an outage")
    out += load_warnings(report["load"])
    out += background_warnings(report["background"])
    harness = report["harness"]
    if harness["harness_limited"]:
        out.append(f"the harness, not only the cluster, set the pace: the machine's "
                   f"CPUs were saturated for {harness['saturated_seconds']} of "
                   f"{harness['samples']} s of load, with ptor's own processes using "
                   f"up to {harness['harness_cores_max']:.1f} of {harness['cores']} "
                   "cores (run ptor on another host for throughput figures)")
    if harness["queue_capacity"] and harness["queue_peak_messages"] >= harness["queue_capacity"]:
        out.append(f"the recorder fell behind: the queue to it was full "
                   f"({harness['queue_capacity']} messages), so workers waited for it")
    observer = outcome.observer
    if observer.failure:
        out.append(f"{observer.failure}: the failover's anatomy may be incomplete (the "
                   "verdict does not depend on it)")
    if observer.dropped:
        out.append(f"the node observer dropped {observer.dropped} samples: the recorder's "
                   "queue was full")
    after = outcome.primary_after
    newest = servers.newest_timeline(outcome.identities, after.system_id) if after else None
    if after is not None and newest is not None and after.timeline < newest:
        out.append(f"reconciled against {after.label()}, older than a primary the "
                   f"workers wrote to (timeline {newest}): two primaries were "
                   "reachable; the figures are against the older one")
    return out


def probe_rto(windows: list[dict]) -> dict:
    """The probe's own view of the outage that set the write RTO: from its last answer to
    its first write after (every 11 ms, one session: no per-worker reconnects), beside the
    workers' RTO, which counts until each worker's own first acknowledged op."""
    worst = max((w for w in windows if w["write_rto_seconds"] is not None),
                key=lambda w: w["write_rto_seconds"], default=None)
    probe = worst["probe"] if worst else None
    return {"probe_seconds": probe["seconds"] if probe else None,
            "probe_first_write_at": probe["first_write"] if probe else None}


def window_summary(window, outcome: DrillOutcome) -> dict:
    """An outage window as the workers saw it, with the probe's own view of it and the
    connection attempts per second ptor made meanwhile (workers and probe)."""
    summary = window.summary()
    summary["probe"] = probe_view(summary, outcome.probe_gaps)
    summary["connect_attempts_per_second"] = attempts_per_second(
        outcome.connect_samples, summary["first_failure"], summary["end"])
    return summary


def masked(value, redact):
    """Every string in the report through `redact`: whatever produced it, no password
    leaves ptor in a report."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: masked(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(v, redact) for v in value]
    return value


def exit_code(report: dict) -> int:
    return EXIT_CODES[report["verdict"]]
