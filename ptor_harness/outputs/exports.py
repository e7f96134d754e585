"""The report in the formats the tools around an unattended drill read (each format a
function from the report to text): the per-second timeline as CSV, Prometheus text format
for node_exporter's textfile collector, JUnit XML for CI systems, and the resolved scenario
as an INI file; plus the timeline picture (charts.py) when matplotlib is there.

`write_run_files` puts them all in the run's folder; `write_atomic` is how every file is
written, so a collector or a CI system never reads half a file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import tempfile
import time
import xml.etree.ElementTree as ET
from typing import Optional

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile

from ..config.scenario import Outputs
from ..verify.findings import ANOMALY_CLASSES
from . import report_file
from .charts import timeline_png
from .html import report_html
from .scenario_text import scenario_entries

TIMELINE_COLUMNS = ("second", "seconds_since_warmup", "phase", "ok", "failed",
                    "indeterminate", "latency_p50_seconds", "latency_p99_seconds", "in_outage")
STATUSES = ("pass", "fail", "unknown")
log = logging.getLogger("ptor")


def write_atomic(path: str, text: str) -> None:
    """Write `text` to `path` atomically: a temporary file created exclusively in the same
    folder under an unpredictable name (mkstemp: mode 0600, never following a planted
    symlink), fsynced, then renamed over `path`. Readers see the old file or the new one,
    never half of one; the files describe a cluster, so only their owner reads them."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def phase_at(phases: dict, at: float) -> str:
    """The phase in effect at `at` (the latest phase that began at or before it)."""
    current = ""
    for name, began in sorted(((n, t) for n, t in phases.items() if n != "seed"),
                              key=lambda item: item[1]):
        if began <= at:
            current = name
    return current


def timeline_csv(report: dict) -> str:
    """One row per second of the load: counts, latency, phase, and whether any worker was
    in an outage window during that second."""
    windows = [(w["start"], w["end"] if w["end"] is not None else math.inf)
               for w in report["windows"]]
    origin = report["phases"].get("warmup")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TIMELINE_COLUMNS)
    for row in report["timeline"]:
        second = row["t"]
        in_outage = any(start < second + 1 and end >= second for start, end in windows)
        writer.writerow([
            second, "" if origin is None else round(second - origin, 3),
            phase_at(report["phases"], second + 0.999), row["ok"], row["failed"],
            row["indeterminate"], _num(row["latency_p50"]), _num(row["latency_p99"]),
            int(in_outage)])
    return out.getvalue()


def _num(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.6f}"


def _gauge_value(value) -> float:
    """A figure as a gauge's value: NaN where it could not be measured."""
    return math.nan if value is None else float(value)


def run_ended_at(report: dict) -> Optional[float]:
    """When the run's report was made (its drain, where no report phase was recorded), or,
    for a run that ended without one (`unfinished`), when it gave up."""
    phases = report["phases"]
    return phases.get("report", phases.get("drain", report.get("ended_at")))


def prometheus_registry(report: dict) -> CollectorRegistry:
    """The run's figures and verdict as Prometheus gauges in a registry of their own (a NaN
    where a figure could not be measured, so an alert on it never fires on a guess). A run
    that ended without a report (`unfinished`) has the verdict unknown, `run_finished` 0
    and its times, and no figure: the file must not go on showing the drill before it."""
    registry = CollectorRegistry(auto_describe=False)

    def gauge(name: str, help_text: str, samples: list[tuple[dict, object]]) -> None:
        if not samples:  # nothing to say (no standby seen): no series, never a made-up 0
            return
        labelnames = list(samples[0][0])
        metric = Gauge(f"ptor_{name}", help_text, labelnames, registry=registry)
        for labels, value in samples:
            (metric.labels(**{k: str(v) for k, v in labels.items()}) if labelnames
             else metric).set(_gauge_value(value))

    verdict = report["verdict"] or "unknown"
    gauge("run_info", "The last drill: its run id, verdict and ledger backend.",
          [({"run_id": report["run_id"], "verdict": verdict,
             "ledger": report.get("ledger") or ""}, 1)])
    gauge("verdict", "1 for the last drill's verdict, 0 for the others.",
          [({"verdict": v}, int(verdict == v)) for v in STATUSES])
    gauge("run_finished", "1 when the last drill ran to its report; 0 when it ended without "
          "one (it could not start, or its ledger could not be written): its folder's "
          "report.json and ptor.log say why.", [({}, report["verdict"] is not None)])
    phases = report["phases"]
    gauge("run_start_timestamp_seconds", "When the last drill started (Unix time).",
          [({}, phases.get("check"))])
    gauge("run_end_timestamp_seconds", "When the last drill's report was made (Unix time).",
          [({}, run_ended_at(report))])
    if report["verdict"] is None:
        return registry
    rto, rpo, ops = report["rto"], report["rpo"], report["ops"]
    gauge("check_status", "1 for each check's status in the last drill.",
          [({"check": c["name"], "status": v}, int(c["status"] == v))
           for c in report["checks"] for v in STATUSES])
    gauge("write_rto_seconds", "The cluster's write RTO (longest per-worker gap).",
          [({}, rto["write_seconds"])])
    gauge("detection_seconds", "Fault injection to the first failed or in-doubt op.",
          [({}, rto["detection_seconds"])])
    gauge("injection_to_first_ok_seconds", "Fault injection to the first ok op after it.",
          [({}, rto["injection_to_first_ok_seconds"])])
    gauge("outage_windows", "Outage windows the workers saw.", [({}, rto["outage_windows"])])
    gauge("writes_recovered", "1 when writes came back after every outage.",
          [({}, rto["recovered"])])
    gauge("lost_acknowledged_ops", "Acknowledged ops whose effect is not on the primary.",
          [({}, rpo["lost_acknowledged_ops"])])
    gauge("lost_acknowledged_transactions", "Acknowledged transactions with a lost op (each "
          "op is one unless --ops-per-transaction).",
          [({}, rpo.get("lost_acknowledged_transactions"))])
    gauge("rpo_window_seconds", "First to last lost acknowledgement.",
          [({}, rpo["window_seconds"])])
    gauge("ops", "Ops of the last drill by outcome.",
          [({"outcome": k}, ops[k]) for k in ("ok", "failed", "indeterminate")])
    gauge("indeterminate_ops", "In-doubt ops by how reconciliation resolved them.",
          [({"resolution": k}, report["indeterminate"][k])
           for k in ("applied", "not_applied")])
    gauge("anomalies", "Anomalies found by reconciliation, by kind.",
          [({"kind": k}, report["anomalies"][k])
           for k in ANOMALY_CLASSES])
    anatomy = report.get("anatomy") or {}
    gauge("outage_part_seconds", "The write outage by part: detection, promotion, read_only "
          "(the promoted node held read-only by its manager), held (the clients' ops in "
          "flight on a hung old primary, past the promotion, until their own timeout), "
          "routing (to the first worker session on the new primary), first_commit (from it "
          "to the first acknowledged write: commits held back, e.g. waiting for a "
          "synchronous standby).",
          [({"part": part}, anatomy.get(f"{part}_seconds"))
           for part in ("detection", "promotion", "read_only", "held", "routing",
                        "first_commit")])
    gauge("service_available_seconds", "Fault to the endpoint's first connection, any role.",
          [({}, rto.get("service_available_seconds"))])
    gauge("sla_percent", "Availability if this write outage happened once a day.",
          [({}, rto.get("sla_percent"))])
    gauge("lost_bytes", "Payload bytes of the lost acknowledged ops.",
          [({}, rpo.get("lost_bytes"))])
    gauge("brownout_seconds", "Seconds below the brownout threshold of the warmup's rate.",
          [({}, (report.get("brownout") or {}).get("seconds"))])
    gauge("two_primaries_seconds", "Time two nodes of the cluster were primaries at once.",
          [({}, sum(x["seconds"] for x in anatomy.get("two_primaries") or []))])
    lag = [x for x in anatomy.get("replication_at_fault") or []
           if x["seen_by"].startswith("primary")]
    gauge("standby_replay_lag_bytes_at_fault", "How far each standby's replay was behind the "
          "primary at the fault (pg_stat_replication).",
          [({"standby": x["standby"] or "standby"}, x["replayed_bytes_behind"]) for x in lag])
    cdc = report.get("cdc")
    if cdc:
        gauge("cdc_slot_present", "1 when the CDC slot was on the new primary (--cdc-slot).",
              [({"slot": cdc["slot"]}, None if cdc["slot_on_new_primary"] is None
                else cdc["slot_on_new_primary"] == "present")])
        gauge("cdc_changes", "Changes of acknowledged ops by what the CDC consumer saw: "
              "missed (held by the new primary, never received), phantom (received, lost "
              "by the new primary), duplicate (received again).",
              [({"kind": k}, cdc[k]) for k in ("missed", "phantom", "duplicates")])
        gauge("cdc_outage_seconds", "The CDC consumer's last change before the fault cut "
              "its session to its first after.", [({}, (cdc["outage"] or {}).get("seconds"))])
    gauge("interrupted", "1 when a signal ended the last drill.",
          [({}, report["interrupted"] is not None)])
    return registry


def prometheus_text(report: dict) -> str:
    """The registry in Prometheus text format (metrics.prom in the run folder)."""
    return generate_latest(prometheus_registry(report)).decode("utf-8")


def junit_xml(report: dict) -> str:
    """The drill as one JUnit test suite, one test case per check: a failed check is a
    <failure>, a check that could not be made an <error>. A run that ended without a
    report (`unfinished`) is one case, "drill ran", an <error> saying why."""
    found = report.get("checks") or [
        {"name": "drill ran", "status": "unknown", "detail": report.get("error") or ""}]
    phases = report["phases"]
    began = phases.get("check")
    ended = run_ended_at(report)
    ended = began if ended is None else ended
    duration = f"{max(0.0, (ended or 0) - (began or 0)):.3f}"
    suites = ET.Element("testsuites", name="ptor")
    suite = ET.SubElement(suites, "testsuite", {
        "name": f"ptor drill {report['run_id']}", "tests": str(len(found)),
        "failures": str(sum(c["status"] == "fail" for c in found)),
        "errors": str(sum(c["status"] == "unknown" for c in found)), "skipped": "0",
        "time": duration,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(began or 0))})
    props = ET.SubElement(suite, "properties")
    for name, value in (("run_id", report["run_id"]),
                        ("verdict", report["verdict"] or "unknown"),
                        ("ledger", report.get("ledger") or ""), ("run_dir", report["run_dir"])):
        ET.SubElement(props, "property", name=name, value=str(value))
    for check in found:
        case = ET.SubElement(suite, "testcase", classname="ptor.drill", name=check["name"],
                             time="0")
        if check["status"] == "fail":
            ET.SubElement(case, "failure", message=check["detail"], type="fail").text = \
                check["detail"]
        elif check["status"] == "unknown":
            ET.SubElement(case, "error", message=check["detail"], type="unknown").text = \
                check["detail"]
        else:
            ET.SubElement(case, "system-out").text = check["detail"]
    out = ET.SubElement(suite, "system-out")
    out.text = "\n".join([f"verdict: {report['verdict'] or 'unknown'}"]
                         + report.get("warnings", []))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def scenario_ini(public: dict, run_id: str) -> str:
    """The scenario as resolved (flags, env vars and file merged), as an INI file that
    `ptor -c` accepts; passwords are masked, so give them through PGPASSWORD or .pgpass."""
    lines = [f"# the scenario of run {run_id} as resolved (flag > env > file > default);",
             "# passwords are masked: give them through PGPASSWORD or ~/.pgpass", "[ptor]"]
    lines += [f"{name} = {text}" for name, text in scenario_entries(public)]
    return "\n".join(lines) + "\n"


def write_json(report: dict, path: str) -> None:
    """report.json (report_file.to_text), written whole or not at all."""
    write_atomic(path, report_file.to_text(report))


def write_run_files(report: dict, run_dir: str) -> Optional[str]:
    """Everything a person or a tool looks for in the run's folder; returns why the
    timeline picture was not drawn, if it was not."""
    write_atomic(os.path.join(run_dir, "timeline.csv"), timeline_csv(report))
    write_atomic(os.path.join(run_dir, "metrics.prom"), prometheus_text(report))
    write_atomic(os.path.join(run_dir, "junit.xml"), junit_xml(report))
    write_atomic(os.path.join(run_dir, "scenario.ini"),
                 scenario_ini(report["scenario"], report["run_id"]))
    try:
        why = timeline_png(report, os.path.join(run_dir, "timeline.png"))
    except Exception as exc:  # a picture must never cost the run its report
        why = f"drawing it failed: {type(exc).__name__}: {exc}"
    write_html(report, run_dir)
    return why


def read_picture(path: str) -> Optional[bytes]:
    """A picture drawn a moment ago, to go inside a page; None when there is none
    (matplotlib missing, or drawing it failed)."""
    try:
        with open(path, "rb") as src:
            return src.read()
    except OSError:
        return None


def write_html(report: dict, run_dir: str) -> str:
    """report.html in the run folder, with timeline.png inside it when there is one."""
    path = os.path.join(run_dir, "report.html")
    write_atomic(path, report_html(report, read_picture(os.path.join(run_dir,
                                                                     "timeline.png"))))
    return path


def unfinished(run_id: str, run_dir: str, error: str, phases: dict, scenario: dict,
               ledger: str) -> dict:
    """What is known of a run that ended without a report: it could not start (the cluster
    unreachable, another drill's lock), or could not finish (its ledger could not be
    written). Its verdict is None; report.json, `ptor history` and every export say why."""
    return {"format": report_file.FORMAT, "run_id": run_id,
            "run_dir": os.path.abspath(run_dir), "verdict": None, "error": error,
            "phases": dict(phases), "ended_at": time.time(), "scenario": scenario,
            "ledger": ledger}


def write_outputs(report: dict, run_dir: str, outputs: Outputs) -> list[str]:
    """Every output of a run, for a drill and for `ptor reconcile` alike: report.json and
    the other files of the run's folder, then each export the scenario asks for. One that
    fails never skips the others; returns one sentence for each that failed."""
    return write_jobs([("the run folder's files", lambda: write_run_files(report, run_dir))],
                      report, run_dir, outputs)


def write_unfinished(stub: dict, run_dir: str, outputs: Outputs) -> list[str]:
    """A run that ended without a report (`unfinished`): report.json in its folder and each
    export the scenario asks for, saying so (the verdict unknown), so that a textfile
    collector or a CI system never goes on reading the drill before it as this one."""
    return write_jobs([], stub, run_dir, outputs)


def write_jobs(run_files: list, report: dict, run_dir: str, outputs: Outputs) -> list[str]:
    """report.json in the run folder, `run_files`, then the exports; one that fails never
    skips the others; returns one sentence for each that failed."""
    jobs = [("report.json in the run folder",
             lambda: write_json(report, os.path.join(run_dir, "report.json"))), *run_files]
    if outputs.report_json:
        jobs.append((f"--report-json {outputs.report_json}",
                     lambda: write_json(report, outputs.report_json)))
    if outputs.prometheus_file:
        jobs.append((f"--prometheus-file {outputs.prometheus_file}",
                     lambda: write_to_textfile(outputs.prometheus_file,
                                               prometheus_registry(report))))
    if outputs.junit_xml:
        jobs.append((f"--junit-xml {outputs.junit_xml}",
                     lambda: write_atomic(outputs.junit_xml, junit_xml(report))))
    failures = []
    for what, job in jobs:
        try:
            not_drawn = job()
        except OSError as exc:
            failures.append(f"cannot write {what}: {exc.strerror or exc}")
            continue
        if isinstance(not_drawn, str):
            log.info("no timeline.png: %s", not_drawn)
    return failures
