"""The report's `background` section (pure): what the user's own load did beside ptor's,
and how much of the primary's WAL was ptor's.

Each command's record (drill/background.py) holds its starts, exits and pgbench's
progress lines; from them: its throughput per second (a lane of the timeline), before and
after the fault. ptor's own share of the WAL is an estimate, said to be one: the WAL the
primary wrote per acknowledged ptor op while ptor's load ran alone (the stretch of the
warmup before the first command started), times ptor's acknowledged ops while both ran,
over the WAL the primary wrote meanwhile (the node observer's per-second WAL timeline).
The background load's transactions are not ledgered: nothing here touches the verdict.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from typing import Optional

# pgbench -P: "progress: 5.0 s, 2431.9 tps, lat 1.64 ms stddev 0.31, 0 failed" (the failed
# count since PostgreSQL 15; before it, none)
PROGRESS = re.compile(r"^progress: [\d.]+ s, ([\d.]+) tps(?:.*?, (\d+) failed)?")
OUTPUT_KEPT = 2000  # characters of a command's output the report keeps (its end)


def progress_of(line: str) -> Optional[tuple[float, int]]:
    """(tps, failed) from one pgbench progress line; None for any other line."""
    match = PROGRESS.match(line.strip())
    if match is None:
        return None
    return float(match.group(1)), int(match.group(2) or 0)


def _mean(values: list[float]) -> Optional[float]:
    return round(statistics.fmean(values), 1) if values else None


def command_section(record, fault_at: Optional[float]) -> dict:
    """One command: masked, its starts and exits, its pgbench throughput per second and
    its mean before and after the fault (None where it printed no progress there)."""
    per_second = [[int(at), tps, failed] for at, tps, failed in record.progress]
    before = [tps for at, tps, _ in record.progress if fault_at is None or at < fault_at]
    after = [tps for at, tps, _ in record.progress if fault_at is not None and at >= fault_at]
    return {
        "command": record.command,
        "starts": len(record.starts),
        "started_at": list(record.starts),
        "exits": record.exit_count,
        "exit_codes": [code for _, code in record.exits],
        "gave_up": record.gave_up,
        "left_running": record.left_running,
        "tps": per_second,
        "tps_before_fault": _mean(before),
        "tps_after_fault": _mean(after if fault_at is not None else []),
        "failed_transactions": sum(failed for _, _, failed in record.progress),
        "output_tail": record.output[-OUTPUT_KEPT:],
    }


def _seconds_between(rows: dict, start: float, end: float) -> list[int]:
    """The whole seconds of `rows` (keyed by second) that lie inside [start, end)."""
    return [second for second in rows if start <= second and second + 1 <= end]


def wal_share(records: Sequence, timeline: Sequence[dict], wal_timeline: Sequence,
              alone_from: Optional[float], both_until: Optional[float]) -> dict:
    """ptor's estimated share of the primary's WAL while the background load ran (see
    the module): figures, or None with `why` when they cannot be had."""
    out = {"ptor_alone_seconds": None, "ptor_wal_bytes_per_op": None,
           "wal_bytes_per_second": None, "ptor_wal_bytes_per_second": None,
           "ptor_share": None, "why": None}
    starts = [at for record in records for at in record.starts]
    if not starts or alone_from is None or both_until is None:
        out["why"] = "no background command started"
        return out
    wal = {int(second): rate for second, rate in wal_timeline}
    if not wal:
        out["why"] = "no WAL samples: the node observer is off"
        return out
    ok = {row["t"]: row["ok"] for row in timeline}
    first = min(starts)
    alone = [s for s in _seconds_between(ok, alone_from, first) if s in wal]
    both = [s for s in _seconds_between(ok, first + 1, both_until) if s in wal]
    out["ptor_alone_seconds"] = len(alone)
    alone_ops = sum(ok[s] for s in alone)
    if not alone or not alone_ops:
        out["why"] = "no whole second of ptor's load ran alone before the background load " \
            "started; a longer warmup gives one"
        return out
    if not both:
        out["why"] = "no whole second with both loads before the fault"
        return out
    per_op = sum(wal[s] for s in alone) / alone_ops
    total = sum(wal[s] for s in both) / len(both)
    ptor = per_op * sum(ok[s] for s in both) / len(both)
    out.update(ptor_wal_bytes_per_op=round(per_op, 1), wal_bytes_per_second=round(total),
               ptor_wal_bytes_per_second=round(ptor),
               ptor_share=round(min(1.0, ptor / total), 3) if total > 0 else None)
    return out


def background_section(records: Optional[Sequence], commands: Sequence[str],
                       timeline: Sequence[dict], wal_timeline: Sequence,
                       phases: dict, fault_at: Optional[float]) -> Optional[dict]:
    """The `background` section: None without --background-load. `records` None while
    commands were asked for: the background process never reported."""
    if not commands:
        return None
    if records is None:
        return {"commands": [], "reported": False, "wal": None}
    until = fault_at if fault_at is not None else phases.get("drain")
    return {"commands": [command_section(r, fault_at) for r in records], "reported": True,
            "wal": wal_share(records, timeline, wal_timeline, phases.get("warmup"), until)}


def background_warnings(section: Optional[dict]) -> list[str]:
    """What a reader must know about the background load (never the verdict's business)."""
    if section is None:
        return []
    if not section["reported"]:
        return ["the background load's process never reported: whether its commands ran "
                "is unknown (the verdict does not depend on them)"]
    out = []
    for command in section["commands"]:
        if command["gave_up"]:
            said = command["output_tail"].strip().splitlines()
            out.append(f"the background load {command['command']!r} {command['gave_up']}"
                       + (f": {said[-1][:200]}" if said else ""))
        if command["left_running"]:
            out.append(f"{command['left_running']} process(es) of the background load "
                       f"{command['command']!r} were still there after SIGKILL")
    return out
