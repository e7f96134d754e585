"""RTO, detection time and the throughput timeline, computed from ops alone (pure).

Definitions (docs/design.md, "Metrics"):
- a worker's outage ("gap") starts at the completion of its last `ok` op before a run of
  failed / in-doubt ops and ends at the completion of its first `ok` op after it;
- a cluster outage window is a set of worker gaps that overlap in time; its write RTO is
  the longest gap in it; min / median / max over the affected workers are reported too;
- detection time: fault injection -> completion of the first failed or in-doubt op;
- injection -> first ok: fault injection -> the first `ok` op after the window's failures.

Everything streams: a worker's ops are fed in seq order and only gaps, counters and
fixed-size latency histograms are kept.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Optional

from ..ops import FAILED, INDETERMINATE, KIND_NAMES, OK, OUTCOMES, Op
from .distribution import LatencyHistogram
from .transactions import Transactions


@dataclass
class Gap:
    """One worker's write outage."""

    worker: int
    start: float  # completion of the last ok op before it (or the first bad op's start)
    first_bad: float  # completion of the first failed / in-doubt op
    end: Optional[float] = None  # completion of the first ok op after it; None: never
    failed: int = 0
    indeterminate: int = 0
    had_ok_before: bool = True

    @property
    def seconds(self) -> Optional[float]:
        return None if self.end is None else self.end - self.start


@dataclass
class Window:
    """A cluster outage: overlapping worker gaps."""

    gaps: list[Gap]

    @property
    def start(self) -> float:
        return min(g.start for g in self.gaps)

    @property
    def first_bad(self) -> float:
        return min(g.first_bad for g in self.gaps)

    @property
    def recovered(self) -> bool:
        return all(g.end is not None for g in self.gaps)

    @property
    def end(self) -> Optional[float]:
        return max(g.end for g in self.gaps) if self.recovered else None  # type: ignore

    @property
    def first_ok(self) -> Optional[float]:
        ends = [g.end for g in self.gaps if g.end is not None]
        return min(ends) if ends else None

    @property
    def write_rto(self) -> Optional[float]:
        """The longest worker gap; None when some worker never wrote again."""
        return max(g.seconds for g in self.gaps) if self.recovered else None  # type: ignore

    def summary(self) -> dict:
        per_worker = sorted(g.seconds for g in self.gaps if g.seconds is not None)
        return {
            "start": self.start,
            "end": self.end,
            "first_failure": self.first_bad,
            "recovered": self.recovered,
            "write_rto_seconds": self.write_rto,
            "workers_affected": len({g.worker for g in self.gaps}),
            "worker_rto_min": per_worker[0] if per_worker else None,
            "worker_rto_median": statistics.median(per_worker) if per_worker else None,
            "worker_rto_max": per_worker[-1] if per_worker else None,
            "failed_ops": sum(g.failed for g in self.gaps),
            "indeterminate_ops": sum(g.indeterminate for g in self.gaps),
        }


@dataclass
class WorkerStats:
    worker: int
    ok: int = 0
    failed: int = 0
    indeterminate: int = 0
    unresolved_intents: int = 0
    by_kind: dict = field(default_factory=lambda: {k: 0 for k in KIND_NAMES.values()})
    gaps: list[Gap] = field(default_factory=list)
    first_t: Optional[float] = None
    last_t: Optional[float] = None
    transactions: dict = field(default_factory=lambda: {o: 0 for o in OUTCOMES})


class RunMetrics:
    """Accumulates one pass over every worker's ops (each worker's in seq order)."""

    def __init__(self, ops_per_transaction: int = 1) -> None:
        self.ops_per_transaction = ops_per_transaction
        self.workers: dict[int, WorkerStats] = {}
        self.seconds: dict[int, list] = {}  # epoch second -> [ok, failed, indet, histogram]

    @property
    def latency(self) -> LatencyHistogram:
        """Every ok op's latency: the per-second histograms merged (each op is added once,
        which halves the cost of this pass over a large ledger)."""
        total = LatencyHistogram()
        for bucket in self.seconds.values():
            total.merge(bucket[3])
        return total

    def add_worker(self, worker: int, ops: Iterable[Op]) -> WorkerStats:
        """A worker's ops, in seq order."""
        return self.add_timings(worker, ((op.seq, op.kind, op.t_start, op.t_end, op.outcome)
                                         for op in ops))

    def add_timings(self, worker: int, timings: Iterable[tuple]) -> WorkerStats:
        """A worker's (seq, kind, t_start, t_end, outcome) in seq order: all this pass
        needs, so a large ledger is read with five columns (Ledger.op_timings), not
        eleven."""
        stats = WorkerStats(worker)
        self.workers[worker] = stats
        current: Optional[Gap] = None
        last_ok: Optional[float] = None
        n = self.ops_per_transaction
        transactions = Transactions(n) if n > 1 else None  # else each op is one
        for seq, kind, t_start, t_end, outcome in timings:
            if transactions is not None:
                transactions.add(seq, outcome)
            if outcome is None:  # intent durable, outcome never recorded: in doubt
                stats.unresolved_intents += 1
                continue
            if stats.first_t is None:
                stats.first_t = t_start
            stats.last_t = t_end
            bucket = self.seconds.get(int(t_end))
            if bucket is None:
                bucket = self.seconds[int(t_end)] = [0, 0, 0, LatencyHistogram()]
            if outcome == OK:
                stats.ok += 1
                stats.by_kind[KIND_NAMES[kind]] += 1
                bucket[0] += 1
                bucket[3].add(t_end - t_start)
                if current is not None:
                    current.end = t_end
                    stats.gaps.append(current)
                    current = None
                last_ok = t_end
            else:
                if outcome == FAILED:
                    stats.failed += 1
                    bucket[1] += 1
                else:
                    stats.indeterminate += 1
                    bucket[2] += 1
                if current is None:
                    current = Gap(worker, last_ok if last_ok is not None else t_start,
                                  t_end, had_ok_before=last_ok is not None)
                if outcome == FAILED:
                    current.failed += 1
                else:
                    current.indeterminate += 1
        if current is not None:
            stats.gaps.append(current)
        stats.transactions = transactions.end() if transactions is not None else {
            OK: stats.ok, FAILED: stats.failed,
            INDETERMINATE: stats.indeterminate + stats.unresolved_intents}
        return stats

    def windows(self) -> list[Window]:
        """Merge every worker's gaps into cluster outage windows (overlap in time)."""
        gaps = sorted((g for s in self.workers.values() for g in s.gaps), key=lambda g: g.start)
        windows: list[Window] = []
        reach = -math.inf
        for gap in gaps:
            gap_end = gap.end if gap.end is not None else math.inf
            if windows and gap.start <= reach:
                windows[-1].gaps.append(gap)
                reach = max(reach, gap_end)
            else:
                windows.append(Window([gap]))
                reach = gap_end
        return windows

    def totals(self) -> dict:
        s = self.workers.values()
        return {
            OK: sum(w.ok for w in s),
            FAILED: sum(w.failed for w in s),
            INDETERMINATE: sum(w.indeterminate for w in s) + sum(w.unresolved_intents for w in s),
        }

    def timeline(self) -> list[dict]:
        """Per-second ok / failed / in-doubt counts and ok-latency percentiles."""
        out = []
        for second in sorted(self.seconds):
            ok, failed, indet, hist = self.seconds[second]
            out.append({"t": second, "ok": ok, "failed": failed, "indeterminate": indet,
                        "latency_p50": hist.percentile(50), "latency_p99": hist.percentile(99)})
        return out


SECONDS_PER_DAY = 86400.0


def sla_percent(outage_seconds: Optional[float]) -> Optional[float]:
    """Availability if this outage happened once a day, as the original tool computed its
    SLA: (86,400 - outage s) / 86,400 x 100."""
    if outage_seconds is None:
        return None
    return round(max(0.0, SECONDS_PER_DAY - outage_seconds) / SECONDS_PER_DAY * 100, 5)


def brownout(timeline: list[dict], warm_from: Optional[float], warm_to: Optional[float],
             load_to: Optional[float], threshold: float) -> dict:
    """Brownout: the seconds after warmup in which ok ops per second stayed below
    `threshold` x the warmup's rate, merged into periods. An outage that "never happened"
    because every commit waited half a second is still a brownout. Seconds with no op at
    all count as zero. Needs a whole clock second inside the warmup: the second it starts
    in holds the workers' start as well (a 1 s warmup from +.84 to +1.86 has none, and its
    first second read 188 ops/s of a load of thousands, so a stall went unseen)."""
    counts = {row["t"]: row["ok"] for row in timeline}
    warm = [] if None in (warm_from, warm_to, load_to) else \
        [counts.get(t, 0) for t in range(int(warm_from) + 1, int(warm_to))]
    if not warm:
        return {"threshold": threshold, "warmup_ok_per_second": None, "seconds": None,
                "periods": []}
    rate = sum(warm) / len(warm)
    periods: list[dict] = []
    for t in range(int(warm_to) + 1, int(load_to)):  # whole seconds only
        if counts.get(t, 0) < threshold * rate:
            if periods and periods[-1]["end"] == t:
                periods[-1]["end"] = t + 1
            else:
                periods.append({"start": float(t), "end": t + 1})
    for period in periods:
        period["end"] = float(period["end"])
        period["seconds"] = period["end"] - period["start"]
    return {"threshold": threshold, "warmup_ok_per_second": round(rate, 1),
            "seconds": sum(p["seconds"] for p in periods), "periods": periods}


def fault_figures(windows: list[Window], injected_at: float,
                  probe_failures: Iterable[float] = (),
                  next_injected_at: Optional[float] = None) -> dict:
    """Detection time and injection -> first ok, for the outage a fault caused: the first
    window still open at the injection or starting after it, and before the next fault
    was injected (an outage that began after that is the next fault's). The outage is
    detected by the first failed op or the probe's first failed check, whichever came
    first (the probe checks every 11 ms even while the workers are idle between ops)."""
    for window in windows:
        if next_injected_at is not None and window.first_bad >= next_injected_at:
            break
        if window.first_bad >= injected_at or (window.end or math.inf) > injected_at:
            first_ok = window.first_ok
            seen = min([window.first_bad] + [t for t in probe_failures
                                             if injected_at <= t <= window.first_bad])
            return {
                "detection_seconds": max(0.0, seen - injected_at),
                "injection_to_first_ok_seconds":
                    None if first_ok is None else max(0.0, first_ok - injected_at),
            }
    return {"detection_seconds": None, "injection_to_first_ok_seconds": None}


def figures_per_fault(windows: list[Window], injected: Sequence[float],
                      probe_failures: Sequence[float] = ()) -> list[dict]:
    """fault_figures for each fault, in injection order, each bounded by the next."""
    return [fault_figures(windows, at, probe_failures, following)
            for at, following in zip(injected, list(injected[1:]) + [None])]


def first_outage_fault(per_fault: Sequence[dict]) -> Optional[int]:
    """The index of the first fault an outage followed (the drill's detection time and
    RPO distances are measured from it), else of the first fault, else None."""
    caused = [i for i, f in enumerate(per_fault) if f["detection_seconds"] is not None]
    return caused[0] if caused else (0 if per_fault else None)


def probe_view(window: dict, gaps: list) -> Optional[dict]:
    """The probe's own view of an outage window (a summary dict): the probe gap that
    overlaps it, or None (the probe saw no failure then)."""
    end = window["end"] if window["end"] is not None else math.inf
    for gap in gaps:
        back = gap.first_write if gap.first_write is not None else math.inf
        if gap.first_failure <= end and back >= window["start"]:
            return {"last_ok": gap.last_ok, "first_failure": gap.first_failure,
                    "first_write": gap.first_write, "seconds": gap.seconds}
    return None


def attempts_per_second(samples: list[tuple[float, float]], start: float,
                        end: Optional[float]) -> Optional[float]:
    """Connection attempts per second between `start` and `end` (over one second at least),
    from (time, attempts so far) samples; None without samples covering the span."""
    inside = [(t, n) for t, n in samples if start <= t <= (end if end is not None else math.inf)]
    before = [n for t, n in samples if t < start]
    if not inside or inside[-1][0] <= start:
        return None
    first = before[-1] if before else inside[0][1]
    # per second of outage, and over one second at least: a 0.1 s outage's dozen attempts
    # are a dozen that second, not 120 a second
    return (inside[-1][1] - first) / max(1.0, inside[-1][0] - start)


def rto_summary(windows: list[Window]) -> dict:
    """The cluster's write RTO is the longest worker gap over all windows."""
    if not windows:
        return {"write_seconds": 0.0, "recovered": True, "windows": 0,
                "worker_min": None, "worker_median": None, "worker_max": None}
    recovered = all(w.recovered for w in windows)
    worst = max(windows, key=lambda w: w.write_rto if w.write_rto is not None else math.inf)
    summary = worst.summary()
    return {
        "write_seconds": max(w.write_rto for w in windows) if recovered else None,  # type: ignore
        "recovered": recovered,
        "windows": len(windows),
        "worker_min": summary["worker_rto_min"],
        "worker_median": summary["worker_rto_median"],
        "worker_max": summary["worker_rto_max"],
    }
