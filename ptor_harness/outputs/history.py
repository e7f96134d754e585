"""Run history: every drill's verdict and figures, newest first, with trends, so that a
regression between last week and tonight is visible at once (`ptor history`).

Two sources, as the ledger has two homes: the PostgreSQL repo's `ledger_run` table (every
run that used that repo, including runs that died before their report), or the run folders
under --report-dir (each run leaves report.json there; a folder without one is a run that
did not finish). Summaries and trends are pure functions of the reports.
"""

from __future__ import annotations

import calendar
import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Optional

import psycopg2
from tabulate import tabulate

from .. import db
from ..errors import ClusterError, ConfigError
from . import report_file
from .report_file import REPORT_BYTES, NotAReport

SPARKS = "▁▂▃▄▅▆▇█"
# A write RTO this many times the median of the earlier runs (and at least this many
# seconds above it) is called a regression.
RTO_REGRESSION_FACTOR = 1.5
RTO_REGRESSION_SECONDS = 0.5


@dataclass(frozen=True)
class RunSummary:
    """One run as the history shows it; figures are None where the run did not get them."""

    run_id: str
    started_at: Optional[float]
    verdict: Optional[str]  # None: the run ended without a report
    write_rto: Optional[float] = None
    detection: Optional[float] = None
    lost: Optional[int] = None
    in_doubt: Optional[int] = None
    ok_ops: Optional[int] = None
    faults: str = ""
    reason: str = ""
    cluster: str = ""  # the endpoint drilled (db.endpoint_label of the primary DSN)


def _number(value, kind=(int, float)) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind) or \
            (isinstance(value, float) and not math.isfinite(value)):
        raise NotAReport("a figure is not a number")
    return value


def summarize(run_id: str, started_at: Optional[float], report) -> RunSummary:
    """The history's view of one run's report (None: the run left no report; else as
    report_file.parse reads it). Raises NotAReport for anything that is not a report ptor
    wrote."""
    if report is None:
        return RunSummary(run_id, started_at, None, reason="no report: the run did not finish")
    report = report_file.parse(report)
    scenario = report.get("scenario")
    dsn = scenario.get("primary_pgdsn") if isinstance(scenario, dict) else None
    cluster = db.endpoint_label(dsn) if isinstance(dsn, str) else ""
    if report.get("verdict") is None and isinstance(report.get("error"), str):
        return RunSummary(run_id, started_at, None,  # it could not start or finish: why
                          reason=report_file.unfinished_as_said(report)[:135],
                          cluster=cluster)
    try:
        rto, rpo, ops = report["rto"], report["rpo"], report["ops"]
        verdict = report["verdict"]
        if verdict not in ("pass", "fail", "unknown"):
            raise NotAReport("no verdict")
        names = [str(f["name"]) for f in report.get("faults") or []]
        reasons = [str(r) for r in report.get("verdict_reasons") or []]
        began = report.get("phases", {}).get("check")
        return RunSummary(
            run_id, started_at if started_at is not None else _number(began), verdict,
            _number(rto["write_seconds"]), _number(rto["detection_seconds"]),
            _number(rpo["lost_acknowledged_ops"], int), _number(ops["indeterminate"], int),
            _number(ops["ok"], int), ", ".join(names)[:120], "; ".join(reasons)[:120],
            cluster)
    except (KeyError, TypeError, AttributeError):
        raise NotAReport("figures are missing") from None


def summaries(rows, skipped: list[str]) -> list[RunSummary]:
    """(run id, started at, report text or dict or None) -> summaries; a run whose report
    cannot be read is left out, with one line in `skipped`."""
    out = []
    for run_id, started, report in rows:
        try:
            out.append(summarize(run_id, started, report))
        except NotAReport as exc:
            skipped.append(f"skipped run {str(run_id)[:40]}: its report is not one ptor "
                           f"wrote ({str(exc)[:80]})")
    return out


def from_repo(dsn: str, schema: str, limit: int, timeout: float,
              skipped: Optional[list] = None) -> list[RunSummary]:
    """The newest `limit` runs recorded in a PostgreSQL repo, newest first."""
    try:
        conn = db.connect(dsn, "ptor-history", timeout, 30.0)
    except psycopg2.Error as exc:
        raise ClusterError(f"cannot connect to the repo: {db.error_label(exc)}") from None
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT run_id, started_at, report FROM {db.quote_ident(schema)}."
                        "ledger_run ORDER BY started_at DESC LIMIT %s", (limit,))
            rows = cur.fetchall()
    except psycopg2.Error as exc:
        raise ClusterError(f"cannot read the run history from the repo: "
                           f"{db.error_label(exc)}") from None
    finally:
        conn.close()
    return summaries(rows, skipped if skipped is not None else [])



def from_report_dir(path: str, limit: int, skipped: Optional[list] = None) -> list[RunSummary]:
    """The newest `limit` run folders under `path` (their names start with the UTC time
    the run began), newest first. A folder whose report.json is not a ptor report is
    left out, with one line in `skipped`."""
    skipped = skipped if skipped is not None else []
    try:
        names = sorted(os.listdir(path), reverse=True)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ClusterError(f"cannot read the report folder {path!r}: {exc.strerror}") from None
    runs: list[RunSummary] = []
    for name in names:
        folder = os.path.join(path, name)
        report_path = os.path.join(folder, "report.json")
        if not any(os.path.exists(os.path.join(folder, f)) for f in ("ptor.log", "report.json")):
            continue  # not a run folder
        report = None
        if os.path.exists(report_path):
            try:
                report = report_file.load(report_path)
            except NotAReport as exc:
                skipped.append(f"skipped run {name[:40]}: its report is not one ptor wrote "
                               f"({str(exc)[:80]})")
                continue
            except ConfigError:
                skipped.append(f"skipped run {name[:40]}: its report.json cannot be read")
                continue
        runs += summaries([(name, _time_from_run_id(name), report)], skipped)
        if len(runs) >= limit:
            break
    return runs


def campaigns_from_report_dir(path: str, limit: int,
                              skipped: Optional[list] = None) -> list[dict]:
    """The newest `limit` campaign folders under `path`, newest first, as {id, started_at,
    verdict, rounds, cells: [{label, rounds, passed, p50, p95}]} read from campaign.json."""
    skipped = skipped if skipped is not None else []
    try:
        names = sorted((n for n in os.listdir(path) if n.startswith("campaign-")),
                       reverse=True)
    except OSError:
        return []
    found = []
    for name in names[:limit]:
        try:
            with open(os.path.join(path, name, "campaign.json"), encoding="utf-8") as src:
                data = json.loads(src.read(REPORT_BYTES))
            cells = [{"label": str(c["label"]), "rounds": int(c["rounds"]),
                      "passed": int(c["passed"]), "p50": _number(c["write_rto"]["p50"]),
                      "p95": _number(c["write_rto"]["p95"])} for c in data["cells"]]
            found.append({"id": name, "started_at": _number(data["started_at"]),
                          "verdict": str(data["verdict"]), "rounds": len(data["rounds"]),
                          "cells": cells})
        except FileNotFoundError:
            continue  # still running, or it never wrote its report
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            skipped.append(f"skipped campaign {name[:50]}: its campaign.json is not one")
    return found


def render_campaigns(campaigns: list[dict]) -> str:
    if not campaigns:
        return ""
    rows = []
    for c in campaigns:
        started = "-" if c["started_at"] is None else \
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(c["started_at"]))
        for i, cell in enumerate(c["cells"]):
            rows.append([started if i == 0 else "", c["id"] if i == 0 else "",
                         c["verdict"].upper() if i == 0 else "", cell["label"],
                         f"{cell['passed']}/{cell['rounds']}", _num(cell["p50"]),
                         _num(cell["p95"])])
    return "\nCampaigns, newest first (write RTO over each cell's rounds)\n" + tabulate(
        rows, headers=["started", "campaign", "verdict", "cell", "passed", "p50", "p95"]) + "\n"


def _time_from_run_id(run_id: str) -> Optional[float]:
    try:
        return float(calendar.timegm(time.strptime(run_id[:16], "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def sparkline(values: list[Optional[float]]) -> str:
    """One character per value, scaled between the smallest and the largest; a gap for a
    run without the figure."""
    known = [v for v in values if v is not None and not math.isinf(v)]
    if not known:
        return ""
    low, high = min(known), max(known)
    out = []
    for value in values:
        if value is None or math.isinf(value):
            out.append(" ")
        elif high == low:
            out.append(SPARKS[0])
        else:
            out.append(SPARKS[round((value - low) / (high - low) * (len(SPARKS) - 1))])
    return "".join(out)


def same_drill(a: RunSummary, b: RunSummary) -> bool:
    """Runs whose RTOs compare: the same faults on the same cluster (a kill's 4.5 s
    against a blip's no outage, or against a run whose fault never ran, says nothing; nor
    does Patroni's switchover against a streaming pair's, when one cron host drills
    several clusters into one report folder)."""
    return a.faults == b.faults and a.cluster == b.cluster


def regressions(runs: list[RunSummary]) -> list[str]:
    """What got worse in the newest run compared with the runs before it (its RTO only
    against runs of the same faults)."""
    if len(runs) < 2:
        return []
    newest, earlier = runs[0], [r for r in runs[1:] if r.verdict is not None]
    notes = []
    if newest.verdict is None:
        notes.append(f"the newest run ({newest.run_id}) did not finish")
    if newest.verdict == "fail" and any(r.verdict == "pass" for r in earlier):
        last_pass = next(r for r in earlier if r.verdict == "pass")
        notes.append(f"the newest run fails; {last_pass.run_id} passed")
    rtos = [r.write_rto for r in earlier if r.write_rto and same_drill(r, newest)]
    if newest.write_rto and rtos:
        median = statistics.median(rtos)
        if newest.write_rto > RTO_REGRESSION_FACTOR * median and \
                newest.write_rto - median > RTO_REGRESSION_SECONDS:
            notes.append(f"write RTO {newest.write_rto:.2f} s is "
                         f"{newest.write_rto / median:.1f}x the median of the {len(rtos)} "
                         f"runs before with the same faults on the same cluster "
                         f"({median:.2f} s)")
    if newest.lost and not any(r.lost for r in earlier):
        notes.append(f"{newest.lost} acknowledged ops lost; none in the runs before")
    return notes


def _num(value: Optional[float], digits: int = 2, unit: str = " s") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def render(runs: list[RunSummary], source: str) -> str:
    """The history table, newest first, with trend lines (oldest to newest) and what
    regressed in the newest run."""
    if not runs:
        return f"no runs recorded in {source} yet\n"
    several = len({run.cluster for run in runs}) > 1  # then each row names its cluster
    rows = []
    for i, run in enumerate(runs):
        older = next((r for r in runs[i + 1:]
                      if r.write_rto is not None and same_drill(r, run)), None)
        delta = "-"
        if run.write_rto is not None and older is not None:
            delta = f"{run.write_rto - older.write_rto:+.2f} s"
        started = "-" if run.started_at is None else \
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(run.started_at))
        rows.append([started, run.run_id, *([run.cluster or "-"] if several else []),
                     (run.verdict or "none").upper(),
                     _num(run.write_rto), delta, _num(run.detection, 3),
                     "-" if run.lost is None else run.lost,
                     "-" if run.in_doubt is None else run.in_doubt,
                     "-" if run.ok_ops is None else f"{run.ok_ops:,}", run.faults or "-",
                     run.reason or ""])
    parts = [f"Runs in {source}, newest first (times UTC)",
             tabulate(rows, headers=["started", "run", *(["cluster"] if several else []),
                                     "verdict", "write RTO", "vs prev*", "detection", "lost",
                                     "in doubt", "ok ops", "faults", "why"])]
    parts += ["* the write RTO's change from the previous run with the same faults"
              + (" on the same cluster" if several else "")]
    clusters = list(dict.fromkeys(run.cluster for run in runs))  # the newest's first
    for cluster in clusters:
        oldest_first = [r for r in reversed(runs) if r.cluster == cluster]
        parts += ["", "Trends, oldest to newest" + (f", {cluster or 'cluster unknown'}"
                                                    if several else ""),
                  f"  write RTO  {sparkline([r.write_rto for r in oldest_first])}",
                  f"  lost ops   {sparkline([r.lost for r in oldest_first])}",
                  "  verdicts   " + "".join({"pass": "+", "fail": "x", "unknown": "?"}.get(
                      r.verdict or "", ".") for r in oldest_first)]
    notes = regressions(runs)
    if notes:
        parts += ["", "Regressions in the newest run"] + [f"  - {note}" for note in notes]
    return "\n".join(parts) + "\n"


def as_json(runs: list[RunSummary], campaigns: Optional[list] = None) -> str:
    return json.dumps({"runs": [asdict(r) for r in runs], "regressions": regressions(runs),
                       "campaigns": campaigns or []}, indent=2) + "\n"
