"""The report: the drill's figures as a versioned dict (report.json), a verdict, and tables.

Report format history:
  1 — first version: verdict, rto, rpo, ops, indeterminate, validation, anomalies, servers,
      latency, faults, workers, windows, timeline, phases, errors.
  2 — `interrupted` (signal name or null), `deadline_reached` (max-run-seconds), `lock`
      (the drill lock: times retaken after a failover, who took it), `checks`
      (each of the verdict's checks: name, status, detail); anomalies gain
      split_brain_writes, resurrected_rows and examples for every class; `harness` (CPU
      of ptor's own processes and of the machine during the load, harness_limited).
  3 — the version chain: `rpo.lost_by_evidence` (final_state, version_chain,
      worker_order), `rpo.unverifiable_ops` and examples, `rpo.first_lost_ack_at`,
      `rpo.last_lost_ack_at`; `rpo.window_seconds` is now the first to the last lost
      acknowledgement, with `rpo.first_lost_before_fault_seconds` and
      `rpo.last_lost_before_fault_seconds`; lost examples say how each loss was found;
      `expectation` (expected, observed: primary_changed, write_outage,
      longest_outage_seconds, not_recovered); checks `faults ran` and `expect ...`;
      faults carry `stderr_first_line`; `indeterminate.unrecorded_applied`; the probe:
      `rto.probe_seconds`, `rto.probe_first_write_at`, and per window `probe` (last_ok,
      first_failure, first_write, seconds) and `connect_attempts_per_second`.
"""

from __future__ import annotations

import json
import math
import os
from typing import Optional

from tabulate import tabulate

from ..drill import saturation
from ..errors import EXIT_FAIL, EXIT_PASS, EXIT_UNKNOWN
from ..verify.metrics import attempts_per_second, fault_figures, probe_view, rto_summary
from ..verify.reconcile import ANOMALY_CLASSES, EXAMPLES_OF, rpo_window
from .charts import terminal_chart
from .exports import write_atomic

REPORT_FORMAT = 3
PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
EXIT_CODES = {PASS: EXIT_PASS, FAIL: EXIT_FAIL, UNKNOWN: EXIT_UNKNOWN}


def _identity(identity) -> Optional[dict]:
    if identity is None:
        return None
    return {"addr": identity.addr, "port": identity.port, "system_id": identity.system_id,
            "timeline": identity.timeline, "label": identity.label()}


def identity_changes(identities: list) -> list[dict]:
    """Every change of primary each worker saw, in time order."""
    last: dict[int, object] = {}
    changes = []
    for ident in sorted(identities, key=lambda i: i.at):
        if ident.in_recovery:
            continue
        if ident.worker in last and last[ident.worker].server() != ident.server():
            changes.append({"worker": ident.worker, "at": ident.at,
                            "from": last[ident.worker].label(), "to": ident.label()})
        last[ident.worker] = ident
    return changes


def primary_moves(changes: list[dict]) -> list[dict]:
    """Identity changes grouped into moves of the primary: from, to, when the first and
    the last worker followed, and how many workers did."""
    moves: list[dict] = []
    for change in changes:
        move = next((m for m in reversed(moves) if (m["from"], m["to"]) ==
                     (change["from"], change["to"])), None)
        if move is None or change["worker"] in move["worker_set"]:
            move = {"from": change["from"], "to": change["to"], "first": change["at"],
                    "last": change["at"], "worker_set": set()}
            moves.append(move)
        move["last"] = change["at"]
        move["worker_set"].add(change["worker"])
    return [{"from": m["from"], "to": m["to"], "first": m["first"], "last": m["last"],
             "workers": len(m["worker_set"])} for m in moves]


def anomalies(findings) -> dict:
    """Each anomaly class with its count and up to ten example keys (None: not checked)."""
    out: dict = {}
    for name in ANOMALY_CLASSES:
        out[name] = getattr(findings, name) if findings else None
        out[EXAMPLES_OF[name]] = getattr(findings, EXAMPLES_OF[name]) if findings else []
    return out


def build(outcome) -> dict:
    """Turn the coordinator's DrillOutcome into the report dict, verdict included."""
    s = outcome.scenario
    metrics = outcome.metrics
    windows = metrics.windows() if metrics else []
    rto = rto_summary(windows)
    injected = outcome.faults[0].started_at if outcome.faults else None
    probe_failures = [gap.first_failure for gap in outcome.probe_gaps]
    fault = fault_figures(windows, injected, probe_failures) if injected is not None else {
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
        "phases": dict(outcome.phases),
        "stop_reason": outcome.stop_reason,
        "interrupted": outcome.interrupted,
        "lock": {"retaken": outcome.lock_retaken, "lost_to": outcome.lock_lost_to},
        "harness": dict(saturation.judge(outcome.cpu_samples, outcome.cpu_cores,
                                         outcome.phases.get("load"),
                                         outcome.phases.get("drain")),
                        queue_peak_messages=outcome.queue_peak,
                        queue_capacity=outcome.queue_capacity),
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
        "indeterminate": {
            "applied": findings.applied if findings else None,
            "not_applied": findings.not_applied if findings else None,
            "superseded": findings.superseded if findings else None,
            "unrecorded_applied": findings.unrecorded_applied if findings else None,
        },
        "validation": {
            "mode": "full" if s.full_data_validation else "quick",
            "completed": findings is not None,
            "error": outcome.validation_error,
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
            "identity_changes": identity_changes(outcome.identities),
        },
        "latency": {
            "op_ok_p50_seconds": metrics.latency.percentile(50) if metrics else None,
            "op_ok_p99_seconds": metrics.latency.percentile(99) if metrics else None,
            "op_ok_max_seconds": metrics.latency.max if metrics and metrics.latency.n else None,
            "check": outcome.latency,
        },
        "faults": [dict(f.as_dict(), **fault_figures(windows, f.started_at, probe_failures))
                   for f in outcome.faults],
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
    }
    report["rto"].update(probe_rto(report["windows"]))
    report["expectation"] = {"expected": s.expect,
                             "observed": observed_failover(report, outcome)}
    verdict, reasons, warnings, found = judge(report, outcome)
    report["verdict"] = verdict
    report["verdict_reasons"] = reasons
    report["warnings"] = warnings
    report["checks"] = found
    return masked(report, s.redact)


def probe_rto(windows: list[dict]) -> dict:
    """The probe's own view of the outage that set the write RTO: from its last answer to
    its first write after (every 11 ms, one session: no per-worker reconnects), beside the
    workers' RTO, which counts until each worker's own first acknowledged op."""
    worst = max((w for w in windows if w["write_rto_seconds"] is not None),
                key=lambda w: w["write_rto_seconds"], default=None)
    probe = worst["probe"] if worst else None
    return {"probe_seconds": probe["seconds"] if probe else None,
            "probe_first_write_at": probe["first_write"] if probe else None}


def window_summary(window, outcome) -> dict:
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


def _check(name: str, status: str, detail: str) -> dict:
    return {"name": name, "status": status, "detail": detail}


def _limit(value: Optional[float], limit: Optional[float], what: str, name: str) -> dict:
    """A figure against its optional threshold (seconds)."""
    if value is None:
        return _check(name, PASS, f"no {what} was measured")
    if limit is not None and value > limit:
        return _check(name, FAIL, f"{what} {value:.3f} s is above {name} {limit:g} s")
    bound = f" (limit {limit:g} s)" if limit is not None else ""
    return _check(name, PASS, f"{what} {value:.3f} s{bound}")


def checks(report: dict, outcome) -> list[dict]:
    """The drill's checks, each pass / fail / unknown with one sentence: the verdict, the
    JUnit test cases and the Prometheus figures all derive from these."""
    s = outcome.scenario
    rto = report["rto"]
    out = []
    if outcome.max_outage_exceeded or not rto["recovered"]:
        out.append(_check("writes recovered", FAIL,
                          "writes did not come back (no primary accepted writes again)"))
    else:
        out.append(_check("writes recovered", PASS,
                          f"{rto['outage_windows']} outage window(s), all recovered"))
    out.append(_limit(rto["write_seconds"], s.max_write_rto, "write RTO", "max-write-rto"))
    out.append(_limit(rto["detection_seconds"], s.max_detection_time, "detection time",
                      "max-detection-time"))
    lost = report["rpo"]["lost_acknowledged_ops"]
    if lost is None:
        out.append(_check("max-lost-acknowledged", UNKNOWN, "data was not validated: "
                          + (outcome.validation_error or "no reason")))
    elif lost > s.max_lost_acknowledged:
        out.append(_check("max-lost-acknowledged", FAIL,
                          f"{lost} acknowledged ops were lost (max-lost-acknowledged is "
                          f"{s.max_lost_acknowledged})"))
    else:
        out.append(_check("max-lost-acknowledged", PASS,
                          f"{lost} acknowledged ops lost (max {s.max_lost_acknowledged})"))
    anomalies = report["anomalies"]
    found = [f"{anomalies[key]} {key.replace('_', ' ')}"
             for key in ("phantom_rows", "holes", "failed_but_applied", "split_brain_writes")
             if anomalies[key]]  # resurrected rows are lost deletes, judged with the loss
    if report["validation"]["checksum_mismatches"]:
        found.append(f"{report['validation']['checksum_mismatches']} rows with a wrong payload")
    if found:
        out.append(_check("anomalies", FAIL, ", ".join(found)))
    elif lost is None:
        out.append(_check("anomalies", UNKNOWN, "data was not validated"))
    else:
        out.append(_check("anomalies", PASS, "no phantom rows, holes, failed ops found "
                          "applied, split-brain writes or wrong payloads"))
    incomplete = []
    if report["ops"]["ok"] == 0:
        incomplete.append("no op was acknowledged at all")
    if outcome.interrupted:
        incomplete.append(f"the drill was interrupted by {outcome.interrupted}")
    if outcome.reconciled_later:
        incomplete.append("the run's coordinator died; its data was reconciled later, its "
                          "load and faults were not followed to the end")
    if outcome.lock_failed:
        incomplete.append(f"{outcome.lock_failed}: another drill could have run meanwhile")
    if outcome.lock_lost_to:
        incomplete.append(f"another drill took this cluster's lock during the run "
                          f"({outcome.lock_lost_to}): its load may have changed the rows")
    if len(outcome.faults) < outcome.faults_planned:
        incomplete.append(f"the run ended before every planned fault was injected "
                          f"({len(outcome.faults)} of {outcome.faults_planned})")
    out.append(_check("drill completed", UNKNOWN if incomplete else PASS,
                      "; ".join(incomplete) or report["stop_reason"] or "completed"))
    out.append(faults_check(outcome))
    out.append(expectation_check(report["expectation"], s.max_write_rto))
    return out


def faults_check(outcome) -> dict:
    """A fault that could not start, exited non-zero, timed out or was killed proves
    nothing about a failover: at best unknown, never a pass."""
    failed = [fault for fault in outcome.faults if fault.failed]
    if failed:
        return _check("faults ran", UNKNOWN, "; ".join(f.failure() for f in failed))
    if not outcome.faults:
        return _check("faults ran", PASS, "ptor injected no fault")
    return _check("faults ran", PASS, f"{len(outcome.faults)} fault(s) ran to a clean end")


def observed_failover(report: dict, outcome) -> dict:
    """What the drill saw of a failover: a change of primary (address, port, system,
    timeline: among the primaries the workers and ptor's checks reached) and write
    outages."""
    primaries = {(i.addr, i.port, i.system_id, i.timeline) for i in outcome.identities
                 if i.in_recovery is False}
    for ident in (outcome.primary_before, outcome.primary_after):
        if ident is not None:
            primaries.add((ident.addr, ident.port, ident.system_id, ident.timeline))
    longest = max((w["write_rto_seconds"] or 0.0 for w in report["windows"]), default=None)
    return {"primary_changed": len(primaries) > 1, "write_outage": bool(report["windows"]),
            "longest_outage_seconds": longest,
            "not_recovered": any(not w["recovered"] for w in report["windows"])}


def expectation_check(expectation: dict, max_write_rto: Optional[float]) -> dict:
    """--expect: failover (none seen: unknown), no-failover (a change of primary or an
    outage above max-write-rto fails), any (not checked)."""
    expected, seen = expectation["expected"], expectation["observed"]
    name = f"expect {expected}"
    if expected == "any":
        return _check(name, PASS, "a plain load test: no failover expected or ruled out")
    saw = []
    if seen["primary_changed"]:
        saw.append("the primary changed")
    if seen["write_outage"]:
        longest = seen["longest_outage_seconds"]
        saw.append("writes stopped" + ("" if seen["not_recovered"] or longest is None
                                       else f" for up to {longest:.3f} s"))
    if expected == "failover":
        if saw:
            return _check(name, PASS, "a failover was observed: " + " and ".join(saw))
        return _check(name, UNKNOWN, "no failover was observed: the primary never changed "
                      "and writes never stopped")
    if seen["primary_changed"]:
        return _check(name, FAIL, "the primary changed in a drill that must not fail over")
    longest = seen["longest_outage_seconds"]
    if seen["write_outage"] and (seen["not_recovered"] or (
            max_write_rto is not None and longest is not None and longest > max_write_rto)):
        return _check(name, FAIL, "writes stopped for longer than max-write-rto in a drill "
                      "that must not fail over")
    return _check(name, PASS, "no failover: the primary never changed"
                  + (f"; writes stopped for up to {longest:.3f} s" if saw else ""))


def judge(report: dict, outcome) -> tuple[str, list[str], list[str], list[dict]]:
    """pass / fail / unknown, the reasons, warnings and the checks behind them. A check that
    could not run is never a pass."""
    found = checks(report, outcome)
    fails = [c["detail"] for c in found if c["status"] == FAIL]
    unknowns = [c["detail"] for c in found if c["status"] == UNKNOWN]
    warnings = []
    if outcome.worker_crashes:
        warnings.append(f"{len(outcome.worker_crashes)} worker(s) crashed; their ops up to "
                        "the crash are in the ledger")
    if outcome.faults and not report["windows"]:
        warnings.append("faults were injected but no client saw an outage")
    harness = report["harness"]
    if harness["harness_limited"]:
        warnings.append(f"the harness, not only the cluster, set the pace: the machine's "
                        f"CPUs were saturated for {harness['saturated_seconds']} of "
                        f"{harness['samples']} s of load, with ptor's own processes using "
                        f"up to {harness['harness_cores_max']:.1f} of {harness['cores']} "
                        "cores (run ptor on another host for throughput figures)")
    if harness["queue_capacity"] and harness["queue_peak_messages"] >= harness["queue_capacity"]:
        warnings.append(f"the recorder fell behind: the queue to it was full "
                        f"({harness['queue_capacity']} messages), so workers waited for it")
    after = outcome.primary_after
    newest = max((i.timeline for i in outcome.identities if not i.in_recovery and after
                  and i.system_id == after.system_id and i.timeline is not None), default=None)
    if after is not None and newest is not None and after.timeline < newest:
        warnings.append(f"reconciled against {after.label()}, older than a primary the "
                        f"workers wrote to (timeline {newest}): two primaries were "
                        "reachable; the figures are against the older one")
    if fails:
        return FAIL, fails + unknowns, warnings, found
    if unknowns:
        return UNKNOWN, unknowns, warnings, found
    return PASS, [], warnings, found


def exit_code(report: dict) -> int:
    return EXIT_CODES[report["verdict"]]


def write_json(report: dict, path: str) -> None:
    write_atomic(path, json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")


def _s(value: Optional[float], digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f} s"


def _n(value) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def render(report: dict) -> str:
    """The terminal report: summary, servers, outage windows, per worker, validation."""
    r = report
    t0 = r["phases"].get("warmup") or 0.0
    rel = lambda t: "-" if t is None else f"+{t - t0:.3f}"  # noqa: E731
    summary = [
        ["verdict", r["verdict"].upper()],
        ["write RTO (cluster)", _s(r["rto"]["write_seconds"]) if r["rto"]["recovered"]
         else "not recovered"],
        ["worker RTO min / median / max", " / ".join(_s(r["rto"][k]) for k in (
            "worker_min_seconds", "worker_median_seconds", "worker_max_seconds"))],
        ["detection time", _s(r["rto"]["detection_seconds"])],
        ["fault injection -> first ok write", _s(r["rto"]["injection_to_first_ok_seconds"])],
        ["probe: last answer -> first write", _s(r["rto"].get("probe_seconds"))],
        ["lost acknowledged ops (RPO)", _n(r["rpo"]["lost_acknowledged_ops"])],
        ["RPO window", _s(r["rpo"]["window_seconds"])],
        ["ops ok / failed / in doubt", " / ".join(_n(r["ops"][k]) for k in (
            "ok", "failed", "indeterminate"))],
        ["in doubt: applied / not applied", " / ".join(_n(r["indeterminate"][k]) for k in (
            "applied", "not_applied"))],
        ["op latency p50 / p99", " / ".join(_s(r["latency"][k], 4) for k in (
            "op_ok_p50_seconds", "op_ok_p99_seconds"))],
        ["ledger", r["ledger"]],
        ["run", r["run_id"]],
    ]
    parts = ["Summary", tabulate(summary, tablefmt="simple")]
    for title, items in (("Why", r["verdict_reasons"]), ("Warnings", r["warnings"]),
                         ("Errors", r["errors"])):
        if items:
            parts += ["", title] + [f"  - {item}" for item in items]
    chart = terminal_chart(r)
    if chart:
        parts += [""] + chart
    servers = r["servers"]
    rows = [["primary before", (servers["primary_before"] or {}).get("label", "-")],
            ["primary after", (servers["primary_after"] or {}).get("label", "-")]]
    parts += ["", "Servers", tabulate(rows, tablefmt="simple")]
    moves = primary_moves(servers["identity_changes"])
    if moves:
        rows = [[rel(m["first"]), rel(m["last"]), m["workers"], m["from"], m["to"]]
                for m in moves]
        parts += ["", "Primary changes seen by the workers",
                  tabulate(rows, headers=["first", "last", "workers", "from", "to"])]
    if r["faults"]:
        rows = [[f["name"], rel(f["started_at"]),
                 _s((f["ended_at"] or f["started_at"]) - f["started_at"]),
                 f["error"] or f"exit {f['exit_code']}", _s(f["detection_seconds"]),
                 _s(f["injection_to_first_ok_seconds"])] for f in r["faults"]]
        parts += ["", "Faults", tabulate(rows, headers=["fault", "at", "took", "result",
                                                        "detection", "to first ok"])]
    if r["latency"]["check"]:
        check = r["latency"]["check"]
        rows = [[name, _s(v.get("min"), 4), _s(v.get("median"), 4), _s(v.get("p99"), 4),
                 v.get("samples")] for name, v in (("connect", check["connect"]),
                                                   ("SELECT 1", check["select1"]))]
        parts += ["", "Primary latency", tabulate(rows, headers=["", "min", "median", "p99",
                                                                 "samples"])]
    if r["windows"]:
        rows = [[i + 1, rel(w["start"]), rel(w["first_failure"]), rel(w["end"]),
                 _s(w["write_rto_seconds"]), w["workers_affected"],
                 _s(w["worker_rto_min"]), _s(w["worker_rto_median"]), w["failed_ops"],
                 w["indeterminate_ops"]] for i, w in enumerate(r["windows"])]
        parts += ["", "Outage windows (seconds from the start of the load)",
                  tabulate(rows, headers=["#", "last ok", "first failure", "all back",
                                          "write RTO", "workers", "min", "median", "failed",
                                          "in doubt"])]
    rows = [[w["worker"], w["ok"], w["failed"], w["indeterminate"], w["outages"],
             _s(w["longest_gap_seconds"])] for w in r["workers"]]
    parts += ["", "Workers", tabulate(rows, headers=["worker", "ok", "failed", "in doubt",
                                                     "outages", "longest gap"])]
    v, a = r["validation"], r["anomalies"]
    rows = [["mode", v["mode"]], ["completed", "yes" if v["completed"] else
                                  f"no: {v['error']}"],
            ["rows checked", _n(v["rows_checked"])], ["keys checked", _n(v["keys_checked"])],
            ["mismatched rows", _n(v["mismatched_rows"])]]
    if r["rpo"]["lost_by_kind"]:
        rows += [[f"lost acknowledged {k}s", n] for k, n in r["rpo"]["lost_by_kind"].items()]
    if r["rpo"]["lost_by_evidence"]:
        rows += [[f"lost, found by {k.replace('_', ' ')}", n]
                 for k, n in r["rpo"]["lost_by_evidence"].items()]
        rows += [["acked ops no evidence can place (assumed kept)",
                  _n(r["rpo"]["unverifiable_ops"])]]
    rows += [["phantom rows", _n(a["phantom_rows"])], ["holes", _n(a["holes"])],
             ["resurrected rows (lost deletes)", _n(a["resurrected_rows"])],
             ["acked updates/deletes that found no row", _n(v["noop_writes"])],
             ["split-brain writes", _n(a["split_brain_writes"])],
             ["failed ops found applied", _n(a["failed_but_applied"])],
             ["rows with a payload no op wrote", _n(v["checksum_mismatches"])]]
    parts += ["", "Validation", tabulate(rows, tablefmt="simple")]
    if r["rpo"]["examples"]:
        rows = [[e["worker"], e["key"], e["seq"], e["kind"], rel(e["committed_at"]),
                 e.get("found_by", "-").replace("_", " ")] for e in r["rpo"]["examples"]]
        parts += ["", "Lost acknowledged ops (examples)",
                  tabulate(rows, headers=["worker", "key", "seq", "kind", "acknowledged at",
                                          "found by"])]
    return "\n".join(parts) + "\n"
