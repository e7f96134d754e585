"""What a campaign writes: campaign.json (versioned), campaign.csv (a row per round), the
terminal table comparing the cells, campaign.html (campaign/page.py), JUnit (a suite per
cell, a test case per round), Prometheus summary gauges (through prometheus_client,
atomic), and a picture of write RTO and lost ops per cell (with matplotlib)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
import xml.etree.ElementTree as ET
from typing import Optional

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from tabulate import tabulate

from ..errors import ConfigError
from ..outputs.exports import read_picture, write_atomic, write_json
from ..outputs.report_file import NotAReport, read_bounded
from .envelope import slope_line, trend
from .page import CELL_HEADERS, campaign_html, cell_rows, seconds
from .stats import QUANTILES

FORMAT = 5  # campaign.json's; runner.py writes it, `ptor report` reads up to it

ROUND_COLUMNS = ("round", "cell", "verdict", "write_rto", "detection", "promotion",
                 "read_only", "held", "routing", "first_commit",
                 "lost_acknowledged", "lost_bytes", "lost_transactions",
                 "wal_bytes_per_second_before_fault", "lag_at_fault_bytes",
                 "lag_at_fault_seconds", "brownout_seconds", "settle_seconds",
                 "primary_before", "primary_after", "run_id", "started_at", "ended_at",
                 "reason")


def rounds_csv(report: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ROUND_COLUMNS)
    for row in report["rounds"]:
        writer.writerow(["" if row.get(k) is None else row[k] for k in ROUND_COLUMNS])
    return out.getvalue()


def render(report: dict) -> str:
    """The campaign on the terminal: the cells side by side, then the verdict."""
    table = tabulate(cell_rows(report), headers=CELL_HEADERS)
    lines = ["Campaign " + report["campaign_id"], table, ""]
    reading = slope_line(report["envelope"]) if report.get("envelope") else None
    lines += [reading, ""] if reading else []
    lines.append(f"verdict: {report['verdict'].upper()}")
    lines += [f"  - {reason}" for reason in report["verdict_reasons"]]
    lines.append(f"campaign folder: {report['campaign_dir']}")
    return "\n".join(lines) + "\n"


def junit_xml(report: dict) -> str:
    suites = ET.Element("testsuites", name=f"ptor {report['campaign_id']}")
    for cell in report["cells"]:
        mine = [r for r in report["rounds"] if r["cell"] == cell["label"]]
        suite = ET.SubElement(suites, "testsuite", {
            "name": cell["label"], "tests": str(len(mine)),
            "failures": str(sum(r["verdict"] == "fail" for r in mine)),
            "errors": str(sum(r["verdict"] == "unknown" for r in mine)), "skipped": "0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S",
                                       time.gmtime(report["started_at"]))})
        for r in mine:
            case = ET.SubElement(suite, "testcase", classname=f"ptor.campaign.{cell['label']}",
                                 name=f"round {r['round']}",
                                 time=f"{max(0.0, r['ended_at'] - r['started_at']):.3f}")
            text = f"write RTO {seconds(r['write_rto'])} s, lost {r['lost_acknowledged']}"
            if r["verdict"] == "fail":
                ET.SubElement(case, "failure", message=r["reason"], type="fail").text = text
            elif r["verdict"] == "unknown":
                ET.SubElement(case, "error", message=r["reason"], type="unknown").text = text
            else:
                ET.SubElement(case, "system-out").text = text
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def prometheus_registry(report: dict) -> CollectorRegistry:
    """Summary gauges: the campaign's verdict, and per cell its write RTO quantiles, round
    counts by verdict and acknowledged ops lost. A figure nobody measured has no series."""
    registry = CollectorRegistry()
    verdict = Gauge("ptor_campaign_verdict", "1 for the campaign's verdict", ["verdict"],
                    registry=registry)
    for name in ("pass", "fail", "unknown"):
        verdict.labels(name).set(1 if report["verdict"] == name else 0)
    rto = Gauge("ptor_campaign_write_rto_seconds", "write RTO over the cell's rounds",
                ["cell", "quantile"], registry=registry)
    rounds = Gauge("ptor_campaign_rounds", "rounds of the cell by verdict", ["cell", "verdict"],
                   registry=registry)
    lost = Gauge("ptor_campaign_lost_acknowledged_ops", "acknowledged ops lost in the cell's "
                 "rounds", ["cell"], registry=registry)
    for cell in report["cells"]:
        for key, quantile in [("min", "0")] + [(f"p{q}", str(q / 100)) for q in QUANTILES] \
                + [("max", "1")]:
            if cell["write_rto"][key] is not None:
                rto.labels(cell["label"], quantile).set(cell["write_rto"][key])
        for name in ("passed", "failed", "unknown"):
            rounds.labels(cell["label"], name).set(cell[name])
        if cell["lost_acknowledged_total"] is not None:
            lost.labels(cell["label"]).set(cell["lost_acknowledged_total"])
    return registry


def picture(report: dict, path: str) -> Optional[str]:
    """Write RTO and lost acknowledged ops per cell, one dot per round (a strip plot).
    Returns why not, when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install ptor[plot])"
    labels = [c["label"] for c in report["cells"]]
    points = (report.get("envelope") or {}).get("points") or []
    fig = plt.figure(figsize=(max(6, 2 + 1.6 * len(labels)), 9 if points else 6))
    grid = fig.add_gridspec(3 if points else 2, 1)
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    for index, label in enumerate(labels):
        mine = [r for r in report["rounds"] if r["cell"] == label]
        for axis, key in ((top, "write_rto"), (bottom, "lost_acknowledged")):
            values = [r[key] for r in mine if r[key] is not None]
            colors = ["tab:red" if r["verdict"] == "fail" else "tab:gray"
                      if r["verdict"] == "unknown" else "tab:green"
                      for r in mine if r[key] is not None]
            axis.scatter([index] * len(values), values, c=colors, alpha=0.8)
        cell = report["cells"][index]
        if cell["write_rto"]["p50"] is not None:
            top.hlines(cell["write_rto"]["p50"], index - 0.25, index + 0.25, colors="black")
    top.set_ylabel("write RTO (s)")
    bottom.set_ylabel("lost acknowledged ops")
    bottom.set_xticks(range(len(labels)), labels, rotation=15)
    top.set_title(f"{report['campaign_id']}: {report['verdict']}\n"
                  "one dot per round (green pass, red fail, grey unknown); bar: median",
                  fontsize=9)
    bottom.yaxis.get_major_locator().set_params(integer=True)
    most = max([r["lost_acknowledged"] or 0 for r in report["rounds"]], default=0)
    bottom.set_ylim(-0.5, max(1, most) * 1.1 + 0.5)
    if points:
        draw_envelope(fig.add_subplot(grid[2]), points)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def draw_envelope(axis, points: list[dict]) -> None:
    """Lost acknowledged bytes (left) and write RTO (right) against the primary's WAL rate
    before the fault, one point per round: the RPO envelope."""
    xs = [p["wal_mb_per_second"] for p in points]
    axis.scatter(xs, [p["lost_bytes"] or 0 for p in points], color="tab:red",
                 label="lost acknowledged bytes")
    axis.set_xlabel("primary's WAL rate in the 5 s before the fault (MB/s)")
    axis.set_ylabel("lost bytes", color="tab:red")
    rto = axis.twinx()
    rto.scatter(xs, [p["write_rto"] if p["write_rto"] is not None else float("nan")
                     for p in points], color="tab:blue", marker="x", label="write RTO")
    rto.set_ylabel("write RTO (s)", color="tab:blue")
    axis.set_title("the envelope: loss and RTO against the write rate, one point per round",
                   fontsize=9)


def write_page(report: dict, folder: str) -> str:
    """campaign.html in the campaign's folder, campaign.png inside it when there is one."""
    path = os.path.join(folder, "campaign.html")
    write_atomic(path, campaign_html(report, read_picture(os.path.join(folder,
                                                                       "campaign.png"))))
    return path


def load(folder: str) -> dict:
    """An earlier campaign's campaign.json, for `ptor report`: one sentence (ConfigError)
    for a file that cannot be read or that no ptor campaign wrote."""
    path = os.path.join(folder, "campaign.json")
    try:
        report = json.loads(read_bounded(path, "campaign report"))
    except NotAReport as exc:
        raise ConfigError(f"{path} is not a campaign report ptor wrote: {exc}") from None
    except (ValueError, RecursionError):
        raise ConfigError(f"{path} is not a campaign report ptor wrote: not JSON") from None
    version = report.get("format") if isinstance(report, dict) else None
    if not isinstance(report, dict) or report.get("kind") != "campaign" or \
            isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"{path} is not a campaign report ptor wrote")
    if version > FORMAT:
        raise ConfigError(f"{path} is campaign format {version}, newer than this ptor "
                          f"reads ({FORMAT}): upgrade ptor")
    if version < 5 and isinstance(report.get("envelope"), dict):  # read anew: r² (5)
        with contextlib.suppress(KeyError, TypeError, AttributeError):  # shown() says so
            report["envelope"].update(trend(report["envelope"]["points"], [
                str(item).partition("=")[0] for item in report.get("vary") or []]))
    return report


def shown(folder: str, html: bool) -> str:
    """`ptor report CAMPAIGN_DIR [--html]`: the campaign's table again, or the path of
    its campaign.html written anew."""
    report = load(folder)
    try:
        return write_page(report, folder) + "\n" if html else render(report)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise ConfigError(f"{os.path.join(folder, 'campaign.json')} is not a campaign "
                          "report ptor wrote: figures are missing") from None


def write_all(report: dict, outputs) -> list[str]:
    """Every campaign output; returns one sentence per output that could not be written."""
    folder = report["campaign_dir"]
    failures = []
    jobs = [(os.path.join(folder, "campaign.json"), lambda p: write_json(report, p)),
            (os.path.join(folder, "campaign.csv"), lambda p: write_atomic(p, rounds_csv(report))),
            (os.path.join(folder, "junit.xml"), lambda p: write_atomic(p, junit_xml(report))),
            (os.path.join(folder, "campaign.png"), lambda p: picture(report, p)),
            (os.path.join(folder, "campaign.html"), lambda p: write_page(report, folder))]
    if outputs.report_json:
        jobs.append((outputs.report_json, lambda p: write_json(report, p)))
    if outputs.junit_xml:
        jobs.append((outputs.junit_xml, lambda p: write_atomic(p, junit_xml(report))))
    if outputs.prometheus_file:
        jobs.append((outputs.prometheus_file,
                     lambda p: write_to_textfile(p, prometheus_registry(report))))
    for path, job in jobs:
        try:
            job(path)
        except OSError as exc:
            failures.append(f"cannot write {path}: {exc.strerror or exc}")
    return failures
