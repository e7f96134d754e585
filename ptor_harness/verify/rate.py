"""The load's rate against its target (`--rate`): what the report's `load` section says,
computed from the workers' schedules and the acknowledged ops alone (pure).

- achieved rate: acknowledged ops per second from the start of the warmup to the drain;
- the rate while writes went through: the same outside each worker's own write outages
  (its gaps: from its last acknowledgement before a failure to its first after). An
  outage's seconds cannot be written in, so the target is judged on this one: with the
  rate over the whole load, every drill whose outage took more than a twentieth of it
  would say the target was missed;
- schedule lag: how late an op was sent after it was due (0 when on time), p50 / p99 /
  max over every op sent, and over the ops due while writes went through (schedule.py:
  an op due in an outage and sent late once a new primary answered is the recovery's);
- latency from when due: completion minus due time of acknowledged ops (what a client
  of an open load waits, queueing in an outage included), beside the latency from send;
- skipped ops: due while the worker had no server, and not sent (schedule.py);
- WAL rate: the primary's WAL bytes per second, from the node observer's LSN samples
  (`wal_rate`), over the load and over the seconds before the fault; without them, from
  the endpoint's WAL positions at the load's start, warmup end and drain
  (drill/wal_position.py), over the readings of one server on one timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from .distribution import LatencyHistogram

# Below this share of the target the report says the target was not reached.
REACHED_SHARE = 0.95
BEFORE_FAULT = 5.0  # seconds before the fault the anatomy's WAL rate spans


def _summary(hist: LatencyHistogram) -> dict:
    return {"p50": hist.percentile(50), "p99": hist.percentile(99),
            "max": hist.max if hist.n else None}


def rate_while_writable(worker_stats: Sequence, load_from: Optional[float],
                        load_to: Optional[float]) -> Optional[float]:
    """Acknowledged ops per second outside the workers' own write outages: every worker's
    acknowledged ops over the mean of their seconds of the load outside their gaps (a
    worker acknowledges nothing inside its own gap, so each count is exact). None without
    a load or a worker."""
    if load_from is None or load_to is None or load_to <= load_from or not worker_stats:
        return None
    writable = 0.0
    for stats in worker_stats:
        outage = 0.0
        for gap in stats.gaps:
            end = load_to if gap.end is None else min(gap.end, load_to)
            outage += max(0.0, end - max(gap.start, load_from))
        writable += max(0.0, (load_to - load_from) - outage)
    if writable <= 0:
        return None
    return sum(stats.ok for stats in worker_stats) / (writable / len(worker_stats))


def load_figures(target: float, workers: int, schedules: Sequence, acknowledged: int,
                 load_from: Optional[float], load_to: Optional[float],
                 node_samples: Sequence = (), wal_positions: Sequence = (),
                 worker_stats: Sequence = ()) -> dict:
    """The `load` section: `schedules` are the workers' WorkerSchedule reports,
    `node_samples` the node observer's, `wal_positions` the endpoint's readings (for the
    primary's WAL rate: the observer's when it has one), `worker_stats` the metrics pass's
    per worker (acknowledged ops and gaps)."""
    seconds = (load_to - load_from) if load_from is not None and load_to is not None \
        else None
    achieved = acknowledged / seconds if seconds and seconds > 0 else None
    writable = rate_while_writable(worker_stats, load_from, load_to)
    lag, from_due, lag_writable = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for report in schedules:
        lag.merge(LatencyHistogram.unpacked(report.lag))
        from_due.merge(LatencyHistogram.unpacked(report.from_due))
        if report.lag_writable:
            lag_writable.merge(LatencyHistogram.unpacked(report.lag_writable))
    figures = {
        "target_rate": target or None,
        "achieved_rate": None if achieved is None else round(achieved, 1),
        "achieved_rate_while_writable": None if writable is None else round(writable, 1),
        "load_seconds": None if seconds is None else round(seconds, 3),
        "skipped_ops": sum(r.skipped for r in schedules) if target else None,
        "schedule_lag_seconds": _summary(lag) if target else None,
        "schedule_lag_while_writable_seconds": _summary(lag_writable) if target else None,
        "latency_from_due_seconds": _summary(from_due) if target else None,
        "workers_reporting": len(schedules) if target else None,
        "target_reached": None,
        "wal_timeline": wal_timeline(node_samples),
    }
    figures.update(wal_figures(node_samples, wal_positions, load_from, load_to))
    if target and achieved is not None:
        judged = writable if writable is not None else achieved
        figures["target_reached"] = judged >= REACHED_SHARE * target
    if target:
        figures["workers_expected"] = workers
    return figures


def load_warnings(figures: dict) -> list[str]:
    """What a reader must know about the load's rate (never the verdict's business)."""
    out = []
    target, achieved = figures["target_rate"], figures["achieved_rate"]
    writable = figures.get("achieved_rate_while_writable")
    if target and achieved is not None and not figures["target_reached"] and writable:
        lag = (figures.get("schedule_lag_while_writable_seconds") or {}).get("p99")
        reason = (f"ops were sent up to {lag:.3f} s late (p99): the harness or the "
                  "cluster was too slow for the rate" if lag and lag > 0.01 else
                  "ops were sent when due (p99 within 10 ms), so fewer fell due than the "
                  "rate plans on average (a short load)")
        out.append(f"the load reached {writable:,g} ops/s of the {target:,g} targeted "
                   f"({writable / target:.0%}) while writes went through "
                   f"({achieved:,g} over the whole load, outages included): {reason}")
    elif target and achieved is not None and not figures["target_reached"]:
        lag = (figures["schedule_lag_seconds"] or {}).get("p99")
        skipped = figures["skipped_ops"] or 0
        why = (f"{skipped:,} ops fell due while no server took writes and were skipped"
               if skipped else "")
        late = (f"ops were sent up to {lag:.3f} s late (p99): the harness or the cluster "
                "was too slow for the rate" if lag and lag > 0.01 else "")
        reasons = "; ".join(r for r in (why, late) if r) or "the outage's time counts too"
        out.append(f"the load reached {achieved:,g} ops/s of the {target:,g} targeted "
                   f"({achieved / target:.0%}): {reasons}")
    if target and figures["workers_reporting"] is not None and \
            figures["workers_reporting"] < figures.get("workers_expected", 0):
        out.append(f"schedule figures from {figures['workers_reporting']} of "
                   f"{figures['workers_expected']} workers (the others died)")
    return out


def _primary_steps(samples: Sequence):
    """(from, to, bytes) for each pair of consecutive samples of one node while it was
    primary on one timeline: the WAL it wrote between them."""
    last: dict = {}
    for sample in sorted(samples, key=lambda s: s.at):
        if not sample.reachable or sample.in_recovery or sample.wal_lsn is None:
            last.pop(sample.node, None)
            continue
        before = last.get(sample.node)
        if before is not None and before.timeline == sample.timeline and \
                sample.wal_lsn >= before.wal_lsn and sample.at > before.at:
            yield before.at, sample.at, sample.wal_lsn - before.wal_lsn
        last[sample.node] = sample


def wal_timeline(samples: Sequence) -> list[list]:
    """[second, WAL bytes per second] for each whole second the primary's samples cover
    (the timeline's WAL lane); a step's bytes are spread over the seconds it spans."""
    seconds: dict[int, list[float]] = {}
    for start, end, written in _primary_steps(samples):
        rate = written / (end - start)
        second = int(start)
        while second < end:
            share = min(end, second + 1) - max(start, second)
            into = seconds.setdefault(second, [0.0, 0.0])
            into[0] += rate * share
            into[1] += share
            second += 1
    return [[second, round(total / covered)] for second, (total, covered)
            in sorted(seconds.items()) if covered > 0]


def wal_written(samples: Sequence, start: Optional[float],
                end: Optional[float]) -> Optional[tuple[int, float]]:
    """(WAL bytes, seconds) a primary wrote between `start` and `end`: what each node wrote
    while it was primary (consecutive samples of it on one timeline), over the time those
    samples span. None without two such samples in the span (no observer, or no primary
    seen)."""
    if start is None or end is None or end <= start:
        return None
    inside = [sample for sample in samples if start <= sample.at <= end]
    steps = list(_primary_steps(inside))
    spanned = sum(to - since for since, to, _ in steps)
    return (sum(b for _, _, b in steps), spanned) if spanned > 0 else None


def wal_rate(samples: Sequence, start: Optional[float], end: Optional[float]) -> Optional[int]:
    """A primary's WAL bytes per second between `start` and `end` (see wal_written)."""
    written = wal_written(samples, start, end)
    return None if written is None else round(written[0] / written[1])


def wal_figures(node_samples: Sequence, wal_positions: Sequence, load_from: Optional[float],
                load_to: Optional[float]) -> dict:
    """The load's WAL rate, the bytes and seconds it is measured over, and from what: the
    observer's samples over the load, else the endpoint's readings (taken at its edges)."""
    written, source = wal_written(node_samples, load_from, load_to), "observer"
    if written is None and wal_positions:
        source = "endpoint"
        written = wal_written(wal_positions, wal_positions[0].at, wal_positions[-1].at)
    if written is None:
        return {"wal_bytes_per_second": None, "wal_bytes": None, "wal_seconds": None,
                "wal_source": None}
    return {"wal_bytes_per_second": round(written[0] / written[1]), "wal_bytes": written[0],
            "wal_seconds": round(written[1], 3), "wal_source": source}


# a worker's mean time between writes past which its write RTO is worth qualifying: the
# gap it measures takes in the idle time before its last write and after its first
RTO_RESOLUTION_SAID = 0.05


def rto_resolution_warnings(target: float, workers: int, ops_per_transaction: int,
                            rto: dict) -> list[str]:
    """At a low --rate each worker writes seldom, and its write RTO (DESIGN: its last
    acknowledged write before the outage to its first after) takes in the idle time at
    both ends: say how seldom, beside the probe's figure (a write every 11 ms)."""
    write = rto.get("write_seconds")
    if not target or not write:
        return []
    every = workers * ops_per_transaction / target
    if every < RTO_RESOLUTION_SAID:
        return []
    probe = rto.get("probe_seconds")
    beside = "" if probe is None else \
        f"; the probe, which writes every 11 ms, was without a write for {probe:.3f} s"
    return [f"at --rate {target:g} over {workers} workers each worker writes about every "
            f"{every:.3f} s: a worker's write RTO runs from its last write before the "
            "outage to its first after it, so it takes in up to about that much idle time "
            f"at each end (write RTO {write:.3f} s{beside})"]

