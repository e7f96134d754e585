"""campaign.html: a campaign in one self-contained page, like a drill's report.html (the
same shell: inline styles, the picture as a data URI, a policy that forbids every request):
the verdict and its checks, the cells side by side, the envelope read in words, campaign.png,
and a row per round linking to that round's own report.html in its run folder."""

from __future__ import annotations

import os
from typing import Optional

from ..outputs.html import (
    checks_table,
    esc,
    link,
    page,
    picture_section,
    scenario_section,
    section,
    table,
)
from .envelope import slope_line

CELL_HEADERS = ["cell", "rounds", "pass", "fail", "unknown", "RTO min", "p50", "p95", "p99",
                "max", "detect p50", "promote p50", "read-only p50", "held p50",
                "route p50", "1st commit p50", "lost acked"]
ROUND_HEADERS = ["round", "cell", "verdict", "write RTO (s)", "lost acked", "lost bytes",
                 "primary before", "primary after", "why"]


def seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"


def cell_rows(report: dict) -> list[list]:
    """One row per cell: rounds and verdicts, write RTO's distribution, the medians of the
    failover's phases, lost acknowledged ops (the terminal's table and the page's)."""
    rows = []
    for cell in report["cells"]:
        w = cell["write_rto"]
        rows.append([cell["label"], cell["rounds"], cell["passed"], cell["failed"],
                     cell["unknown"], seconds(w["min"]), seconds(w["p50"]), seconds(w["p95"]),
                     seconds(w["p99"]), seconds(w["max"]), seconds(cell["detection"]["p50"]),
                     seconds(cell["promotion"]["p50"]),
                     seconds((cell.get("read_only") or {}).get("p50")),
                     seconds((cell.get("held") or {}).get("p50")),
                     seconds(cell["routing"]["p50"]),
                     seconds((cell.get("first_commit") or {}).get("p50")),
                     "-" if cell["lost_acknowledged_total"] is None
                     else cell["lost_acknowledged_total"]])
    return rows


def round_rows(report: dict) -> list:
    """The rounds, each naming its run folder's report.html (a relative link: the run
    folders sit in the campaign's folder)."""
    return [[link(f"{os.path.basename(r['run_dir'])}/report.html", r["round"])
             if r.get("run_dir") else r["round"],
             r["cell"], r["verdict"], seconds(r["write_rto"]), r["lost_acknowledged"],
             r["lost_bytes"], r["primary_before"], r["primary_after"], r["reason"]]
            for r in report["rounds"]]


def campaign_html(report: dict, picture: Optional[bytes] = None) -> str:
    """The whole page for a campaign; `picture`: campaign.png's bytes, if drawn."""
    reasons = "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in report["verdict_reasons"]) + \
        "</ul>" if report.get("verdict_reasons") else ""
    reading = slope_line(report["envelope"]) if report.get("envelope") else None
    parts = [section("Why this verdict", reasons),
             section("Checks", checks_table(report.get("checks"))),
             section("Cells", table(cell_rows(report), CELL_HEADERS) +
                     (f"<p>{esc(reading)}</p>" if reading else "")),
             picture_section("Rounds and envelope", "write RTO and lost ops per cell",
                             picture),
             section("Rounds", table(round_rows(report), ROUND_HEADERS)),
             scenario_section(report.get("scenario")),
             section("Where it ran", table([["campaign folder", report.get("campaign_dir")],
                                            ["campaign format", report.get("format")]]))]
    return page(f"ptor campaign {report['campaign_id']}", report["verdict"], parts)
