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
from ..verify import cdc, checks, saturation
from ..verify.background import background_section, background_warnings
from ..verify.figures import (
    drill_figures,
    lost_by_cause,
    lost_examples,
    read_only_refusals,
    verdict_figures,
)
from ..verify.findings import ANOMALY_CLASSES, EXAMPLES_OF, rpo_window
from ..verify.metrics import sla_percent
from ..verify.node_names import node_of_server
from ..verify.rate import (
    BEFORE_FAULT,
    load_figures,
    load_warnings,
    rto_resolution_warnings,
    wal_rate,
)
from ..verify.transactions import transaction_totals
from . import report_file
from .account import account
from .html import host_facts
from .nodes import nodes_section

REPORT_FORMAT = report_file.FORMAT
EXIT_CODES = {checks.PASS: EXIT_PASS, checks.FAIL: EXIT_FAIL, checks.UNKNOWN: EXIT_UNKNOWN}


def _identity(identity, samples) -> Optional[dict]:
    """A server as the report names it; `node`: the observer's name for it, where known."""
    if identity is None:
        return None
    return {"addr": identity.addr, "port": identity.port, "system_id": identity.system_id,
            "timeline": identity.timeline, "label": identity.label(),
            "node": node_of_server(samples, identity.addr, identity.port)}


def moves_by_node(moves: list[dict], identities, samples) -> list[dict]:
    """The primary's moves (servers.primary_moves), each server also named by its node
    where the observer can tell (`_identity`'s `node`): the labels are the identities'."""
    wanted = {label for m in moves for label in (m["from"], m["to"])}
    where = {}  # each label a move names, once: a pooler's drill has an identity per op
    for i in identities:
        if i.label() in wanted:
            where.setdefault(i.label(), (i.addr, i.port))
    nodes = {at: node_of_server(samples, *at) for at in set(where.values())}
    node_of = {label: nodes[at] for label, at in where.items()}
    return [dict(m, from_node=node_of.get(m["from"]), to_node=node_of.get(m["to"]))
            for m in moves]


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
    d = drill_figures(outcome)
    rto, fault, totals, fault_at, at_fault = d.rto, d.fault, d.totals, d.fault_at, \
        d.anatomy["replication_at_fault"]
    findings = outcome.findings
    lost = findings.lost_total if findings else None
    changes = servers.identity_changes(outcome.identities)
    timeline = d.timeline
    load = load_figures(s.load.rate, s.load.parallel_workers, outcome.schedules, totals["ok"],
                        outcome.phases.get("warmup"), outcome.phases.get("drain"),
                        outcome.node_samples, outcome.wal_positions,
                        list(metrics.workers.values()) if metrics else ())
    stale, held_read_only = read_only_refusals(outcome, fault_at)
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
        "load": load,
        "deadline_reached": outcome.deadline_reached,
        "rto": {
            "write_seconds": rto["write_seconds"],
            "recovered": rto["recovered"],
            "detection_seconds": fault["detection_seconds"],
            "injection_to_first_ok_seconds": fault["injection_to_first_ok_seconds"],
            "worker_min_seconds": rto["worker_min"],
            "worker_median_seconds": rto["worker_median"],
            "worker_max_seconds": rto["worker_max"],
            "outage_windows": len(d.windows),
            "service_available_seconds": d.anatomy["service_available_seconds"],
            "read_seconds": d.anatomy["read_outage_seconds"].get(ENDPOINT),
            "sla_percent": sla_percent(rto["write_seconds"]),
            **probe_rto(d.window_summaries),
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
            "examples": lost_examples(findings.lost_examples, at_fault,
                                      outcome.synchronous_commit) if findings else [],
        }, **(rpo_window(findings.first_lost_ack, findings.last_lost_ack, fault_at)
              if findings else {"window_seconds": None,
                                "first_lost_before_fault_seconds": None,
                                "last_lost_before_fault_seconds": None}),
            lost_bytes=None if findings is None else s.load.payload_bytes * (
                findings.lost["insert"] + findings.lost["update"]),
            lost_by_cause=None if findings is None else lost_by_cause(
                findings.lost_by_cause, at_fault, outcome.synchronous_commit)),
        "ops": {"ok": totals["ok"], "failed": totals["failed"],
                "indeterminate": totals["indeterminate"], "ok_by_kind": d.ok_by_kind},
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
            "interrupted": list(outcome.validation_interrupted),
            "reconciled_on": outcome.reconciled_on,
            "rows_checked": findings.rows_checked if findings else None,
            "keys_checked": findings.keys_checked if findings else None,
            "mismatched_rows": findings.mismatched_rows if findings else None,
            "checksum_mismatches": findings.checksum_mismatches if findings else None,
            "noop_writes": findings.noop_writes if findings else None,
        },
        "anomalies": anomalies(findings),
        "servers": {
            "primary_before": _identity(outcome.primary_before, outcome.node_samples),
            "primary_after": _identity(outcome.primary_after, outcome.node_samples),
            "identity_changes": changes,
            "primary_moves": moves_by_node(servers.primary_moves(changes),
                                           outcome.identities, outcome.node_samples),
            "postgres_version": outcome.postgres_version,
            "synchronous_commit": outcome.synchronous_commit,
        },
        "latency": {
            "op_ok_p50_seconds": metrics.latency.percentile(50) if metrics else None,
            "op_ok_p99_seconds": metrics.latency.percentile(99) if metrics else None,
            "op_ok_max_seconds": metrics.latency.max if metrics and metrics.latency.n else None,
            "check": outcome.latency,
        },
        "faults": [dict(f.as_dict(), **figures) for f, figures in zip(outcome.faults,
                                                                        d.per_fault)],
        "windows": d.window_summaries,
        "workers": [
            {"worker": w.worker, "ok": w.ok, "failed": w.failed,
             "indeterminate": w.indeterminate + w.unresolved_intents,
             "outages": len(w.gaps),
             "longest_gap_seconds": max((g.seconds for g in w.gaps if g.seconds is not None),
                                        default=0.0)}
            for w in (metrics.workers.values() if metrics else [])
        ],
        "recorder": vars(outcome.recorder_totals) if outcome.recorder_totals else None,
        "timeline": timeline,
        "errors": list(outcome.errors),
        "nodes": nodes_section(outcome),
        "anatomy": dict(
            d.anatomy, stale_routing=stale, refused_by_primary=held_read_only,
            wal_bytes_per_second_before_fault=None if fault_at is None else
            wal_rate(outcome.node_samples, fault_at - BEFORE_FAULT, fault_at)),
        "brownout": d.brownout,
        "background": background_section(outcome.background, s.load.background_load,
                                         timeline, load["wal_timeline"], outcome.phases,
                                         fault_at),
        "cdc": cdc.section(outcome, fault_at),
        "expectation": {"expected": s.thresholds.expect,
                        "observed": dataclasses.asdict(d.observed)},
    }
    verdict = checks.judge(verdict_figures(d, outcome), s.thresholds)
    report["verdict"] = verdict.status
    report["verdict_reasons"] = verdict.reasons
    report["warnings"] = warnings(report, outcome)
    report["checks"] = [c.as_dict() for c in verdict.checks]
    report["account"] = account(report)
    report["host"] = host_facts()
    return masked(report, s.redact)


def harness_figures(outcome: DrillOutcome) -> dict:
    """ptor's own CPU and queue during the load (saturation.judge's figures)."""
    load = outcome.harness
    return dict(saturation.judge(load.cpu_samples, load.cpu_cores, outcome.phases.get("load"),
                                 outcome.phases.get("drain")),
                queue_peak_messages=load.queue_peak, queue_capacity=load.queue_capacity)


def warnings(report: dict, outcome: DrillOutcome) -> list[str]:
    """What the reader should know that does not change the verdict."""
    out = []
    if outcome.worker_crashes:
        out.append(f"{len(outcome.worker_crashes)} worker(s) crashed; their ops up to "
                   "the crash are in the ledger")
    if outcome.faults and not report["windows"]:
        out.append("faults were injected but no client saw an outage")
    out += load_warnings(report["load"])
    load = outcome.scenario.load
    out += rto_resolution_warnings(load.rate, load.parallel_workers, load.ops_per_transaction,
                                   report["rto"])
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
