"""Pictures of a drill's timeline: a compact chart for the terminal report (always), and a
PNG for the run's folder when matplotlib is installed (`pip install ptor[plot]`).

Both show the same things: committed ops per second, the seconds with failed or in-doubt
ops, the outage windows, the faults and the phases. Pure over the report dict.
"""

from __future__ import annotations

import math
import os
from typing import Optional

from ..ops import ENDPOINT

BARS = " ▁▂▃▄▅▆▇█"
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)  # seconds per column
PHASE_MARKS = {"warmup": "W", "load": "L", "drain": "D"}


def _buckets(report: dict, width: int) -> tuple[float, float, list[dict]]:
    """Group the per-second timeline into at most `width` equal buckets from the start of
    the warmup to the drain: (origin, seconds per bucket, buckets)."""
    rows = report["timeline"]
    phases = report["phases"]
    # the timeline's rows are whole epoch seconds: start the grid on one
    origin = math.floor(phases.get("warmup", rows[0]["t"] if rows else 0.0))
    end = phases.get("drain", (rows[-1]["t"] + 1) if rows else origin + 1)
    span = max(1.0, end - origin)
    wanted = span / (width - 1)
    step = next((n for n in STEPS if n >= wanted), math.ceil(wanted))
    count = int(span // step) + 1  # the last column holds the drain itself
    buckets = [{"ok": 0, "bad": 0, "outage": False} for _ in range(count)]
    for row in rows:
        i = int((row["t"] - origin) // step)
        if 0 <= i < count:
            buckets[i]["ok"] += row["ok"]
            buckets[i]["bad"] += row["failed"] + row["indeterminate"]
    for window in report["windows"]:
        last = window["end"] if window["end"] is not None else end
        first_i = max(0, int((window["start"] - origin) // step))
        for i in range(first_i, min(count, int((last - origin) // step) + 1)):
            buckets[i]["outage"] = True
    return origin, step, buckets


def terminal_chart(report: dict, width: int = 64) -> list[str]:
    """A few lines: ok/s as bars, failures, outage, and the faults and phases in place."""
    if not report["timeline"]:
        return []
    origin, step, buckets = _buckets(report, width)
    peak = max(b["ok"] for b in buckets) or 1
    bars = "".join(BARS[0] if b["ok"] == 0 else
                   BARS[max(1, round(b["ok"] / peak * (len(BARS) - 1)))] for b in buckets)
    errors = "".join("×" if b["bad"] else " " for b in buckets)
    outage = "".join("━" if b["outage"] else " " for b in buckets)
    marks = [" "] * len(buckets)
    for name, at in report["phases"].items():
        if name in PHASE_MARKS and 0 <= int((at - origin) // step) < len(marks):
            marks[int((at - origin) // step)] = PHASE_MARKS[name]
    for fault in report["faults"]:
        i = int((fault["started_at"] - origin) // step)
        if 0 <= i < len(marks):
            marks[i] = "F"
    unit = "1 s" if step == 1 else f"{step:g} s"
    lanes = node_lanes(report, origin, step, len(buckets))
    wal = wal_lane(report, origin, step, len(buckets))
    background = bars_lane(background_tps(report), origin, step, len(buckets))
    cdc = bars_lane(cdc_per_second(report), origin, step, len(buckets))
    return [f"Timeline (one column = {unit}; bars: ok ops, peak {peak / step:,.0f}/s)",
            f"  ok       {bars}",
            f"  errors   {errors.rstrip()}",
            f"  outage   {outage.rstrip()}",
            f"  events   {''.join(marks).rstrip()}",
            *([f"  WAL      {wal[0].rstrip()}   (peak {wal[1] / 1e6:.2f} MB/s)"] if wal
              else []),
            *([f"  bg tps   {background[0].rstrip()}   (peak {background[1]:,.0f}/s)"]
              if background else []),
            *([f"  CDC      {cdc[0].rstrip()}   (changes received, peak {cdc[1]:,.0f}/s)"]
              if cdc else []),
            *[f"  {label:8s} {lane.rstrip()}"
              for label, (_, lane) in zip(lane_labels([name for name, _ in lanes]), lanes)],
            "           (× failed or in-doubt ops, ━ outage, W warmup, L load, F fault, "
            "D drain" + ("; nodes: P primary, s standby, · unreachable)" if lanes else ")"),
            *(["           (endpoint: the primary DSN reached with target_session_attrs=any, "
               "as a client that only reads would reach it)"] if ENDPOINT in dict(lanes)
              else [])]


LANE_MARKS = {"primary": "P", "standby": "s", "unreachable": "·"}
LABEL_WIDTH = 8


def lane_labels(names: list[str]) -> list[str]:
    """Labels of at most LABEL_WIDTH characters that tell the lanes apart: a node's name
    as it is when it fits (a lab's node1), else host:port shortened from the left (the
    port says most: `:7211`, `:7212` when the hosts are the same), else from the right,
    else numbered."""
    w = LABEL_WIDTH

    def fit(name: str, short: str) -> str:
        return name if len(name) <= w else short

    hosts = {name.rpartition(":")[0] for name in names if ":" in name}
    ways = [lambda n: fit(n, ":" + n.rpartition(":")[2]
                          if ":" in n and len(hosts) == 1 else "…" + n[1 - w:]),
            lambda n: fit(n, "…" + n[1 - w:]),
            lambda n: fit(n, n[:w - 1] + "…")]
    for way in ways:
        labels = [way(name) for name in names]
        if len(set(labels)) == len(labels) and all(len(x) <= w for x in labels):
            return labels
    return [f"#{i + 1}"[:w] for i in range(len(names))]


def background_tps(report: dict) -> list[list]:
    """[second, tps] of every background command together (pgbench's progress lines)."""
    per_second: dict[int, float] = {}
    for command in (report.get("background") or {}).get("commands") or []:
        for second, tps, _failed in command["tps"]:
            per_second[second] = per_second.get(second, 0.0) + tps
    return sorted([second, tps] for second, tps in per_second.items())


def cdc_per_second(report: dict) -> list[list]:
    """[second, changes the CDC consumer received in it] (--cdc-slot)."""
    return (report.get("cdc") or {}).get("received_per_second") or []


def wal_lane(report: dict, origin: float, step: float, count: int) -> Optional[tuple]:
    """The primary's WAL bytes per second as bars, one per column (the mean over its
    seconds), and the peak; None without the observer's WAL samples."""
    return bars_lane((report.get("load") or {}).get("wal_timeline") or [], origin, step,
                     count)


def bars_lane(seconds: list, origin: float, step: float, count: int) -> Optional[tuple]:
    """[second, value] pairs as bars, one per column (the mean over its seconds), and the
    peak; None without any."""
    if not seconds:
        return None
    sums, counts = [0.0] * count, [0] * count
    for second, rate in seconds:
        i = int((second - origin) // step)
        if 0 <= i < count:
            sums[i] += rate
            counts[i] += 1
    means = [total / n if n else None for total, n in zip(sums, counts)]
    peak = max((m for m in means if m is not None), default=0.0) or 1.0
    bars = "".join(" " if m is None else BARS[0] if m == 0 else
                   BARS[max(1, round(m / peak * (len(BARS) - 1)))] for m in means)
    return bars, peak


def node_lanes(report: dict, origin: float, step: float, count: int) -> list[tuple[str, str]]:
    """One line per node: its state at the end of each column (the node observer's)."""
    out = []
    for name, segments in ((report.get("nodes") or {}).get("lanes") or {}).items():
        lane = [" "] * count
        for segment in segments:
            first = max(0, int((segment["from"] - origin) // step))
            last = min(count - 1, int((segment["to"] - origin) // step))
            for i in range(first, last + 1):
                lane[i] = LANE_MARKS[segment["state"]]
        out.append((name, "".join(lane)))
    return out


def timeline_png(report: dict, path: str) -> Optional[str]:
    """Write the timeline picture; returns None when it was written, else why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install ptor[plot])"
    rows = report["timeline"]
    if not rows:
        return "the run has no timeline"
    origin = report["phases"].get("warmup", rows[0]["t"])
    xs = [row["t"] - origin for row in rows]
    nodes = report.get("nodes") or {}
    lanes, lag = nodes.get("lanes") or {}, nodes.get("replay_lag_bytes") or {}
    wal = (report.get("load") or {}).get("wal_timeline") or []
    background, cdc = background_tps(report), cdc_per_second(report)
    extra = [part for part, wanted in (("lanes", lanes), ("wal", wal),
                                       ("background", background), ("cdc", cdc),
                                       ("lag", lag)) if wanted]
    fig, axes = plt.subplots(2 + len(extra), 1, sharex=True,
                             figsize=(10, 5.5 + 1.4 * len(extra)),
                             gridspec_kw={"height_ratios": [3, 2] + [1.4] * len(extra)})
    top, bottom = axes[0], axes[1]
    if lanes:
        draw_lanes(axes[2 + extra.index("lanes")], lanes, origin)
    if wal:
        draw_wal(axes[2 + extra.index("wal")], wal, origin)
    if background:
        draw_background(axes[2 + extra.index("background")], background, origin)
    if cdc:
        draw_bars(axes[2 + extra.index("cdc")], cdc, origin, "CDC changes/s", "#17becf")
    if lag:
        draw_lag(axes[2 + extra.index("lag")], lag, origin)
    top.bar(xs, [row["ok"] for row in rows], width=1.0, align="edge", color="#2b7bba",
            label="ok ops/s")
    top.bar(xs, [row["failed"] + row["indeterminate"] for row in rows], width=1.0,
            align="edge", color="#d62728", label="failed + in-doubt ops/s")
    bottom.plot([x + 0.5 for x in xs], [1000 * (row["latency_p50"] or 0) for row in rows],
                color="#2b7bba", label="p50")
    bottom.plot([x + 0.5 for x in xs], [1000 * (row["latency_p99"] or 0) for row in rows],
                color="#ff7f0e", label="p99")
    for axis in axes:
        for window in report["windows"]:
            end = window["end"] if window["end"] is not None else rows[-1]["t"] + 1
            axis.axvspan(window["start"] - origin, end - origin, color="#d62728", alpha=0.12)
        for fault in report["faults"]:
            axis.axvline(fault["started_at"] - origin, color="black", linestyle="--",
                         linewidth=1)
        for name, at in report["phases"].items():
            if name in ("load", "drain"):
                axis.axvline(at - origin, color="grey", linestyle=":", linewidth=1)
    for fault in report["faults"]:
        top.annotate(fault["name"], (fault["started_at"] - origin, top.get_ylim()[1]),
                     rotation=90, va="top", ha="right", fontsize=8)
    rto = report["rto"]["write_seconds"]
    lost = report["rpo"]["lost_acknowledged_ops"]
    top.set_title(f"ptor drill {report['run_id']}: {report['verdict'].upper()}, write RTO "
                  f"{'not recovered' if rto is None else f'{rto:.3f} s'}, lost acknowledged "
                  f"ops {'not validated' if lost is None else lost}", fontsize=10)
    top.set_ylabel("ops per second")
    top.legend(loc="lower left", fontsize=8)
    bottom.set_ylabel("ok latency (ms)")
    axes[-1].set_xlabel("seconds from the start of the warmup (shaded: outage; dashed: fault)")
    bottom.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    os.chmod(path, 0o600)
    plt.close(fig)
    return None


LANE_COLOURS = {"primary": "#2ca02c", "standby": "#1f77b4", "unreachable": "#d62728"}


def draw_lanes(axis, lanes: dict, origin: float) -> None:
    """A lane per node: primary, standby or unreachable over time (the node observer's
    samples), with the timeline written where it changes."""
    names = list(lanes)
    for row, name in enumerate(names):
        last_timeline = None
        for segment in lanes[name]:
            start = segment["from"] - origin
            width = max(0.05, segment["to"] - segment["from"])
            axis.broken_barh([(start, width)], (row - 0.35, 0.7),
                             color=LANE_COLOURS[segment["state"]])
            if segment["state"] == "primary" and segment["timeline"] != last_timeline:
                axis.annotate(f"tl {segment['timeline']}", (start, row), fontsize=7,
                              va="center", ha="left", color="white")
                last_timeline = segment["timeline"]
    axis.set_yticks(range(len(names)), names, fontsize=8)
    axis.set_ylim(-0.6, len(names) - 0.4)
    axis.set_ylabel("nodes", fontsize=8)
    handles = [axis.bar(0, 0, color=c, label=s) for s, c in LANE_COLOURS.items()]
    axis.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7,
                ncol=3, frameon=False)


def draw_wal(axis, wal: list, origin: float) -> None:
    """The primary's WAL written per second (the node observer's LSN samples), in MB/s."""
    axis.bar([t - origin for t, _ in wal], [rate / 1e6 for _, rate in wal], width=1.0,
             align="edge", color="#9467bd")
    axis.set_ylabel("WAL (MB/s)", fontsize=8)


def draw_background(axis, seconds: list, origin: float) -> None:
    """The background load's transactions per second (pgbench's progress lines): not
    ledgered, drawn so its effect on ptor's lanes above can be seen."""
    axis.bar([t - origin for t, _ in seconds], [tps for _, tps in seconds], width=1.0,
             align="edge", color="#8c564b")
    axis.set_ylabel("background tps", fontsize=8)


def draw_bars(axis, seconds: list, origin: float, label: str, colour: str) -> None:
    """[second, value] as bars, one a second."""
    axis.bar([t - origin for t, _ in seconds], [v for _, v in seconds], width=1.0,
             align="edge", color=colour)
    axis.set_ylabel(label, fontsize=8)


def draw_lag(axis, lag: dict, origin: float) -> None:
    """Each standby's replay lag in bytes, as its primary saw it."""
    for name, points in lag.items():
        xs: list[float] = []
        ys: list[float] = []
        for t, lag_bytes in points:
            if xs and t - origin - xs[-1] > 1.0:  # no samples meanwhile: leave a gap
                xs.append(math.nan)
                ys.append(math.nan)
            xs.append(t - origin)
            ys.append(lag_bytes)
        axis.plot(xs, ys, label=name, linewidth=1)
    axis.set_ylabel("replay lag (bytes)", fontsize=8)
    axis.legend(loc="upper left", fontsize=7)
