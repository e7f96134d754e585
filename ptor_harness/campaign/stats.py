"""The campaign's arithmetic, pure: a round's figures from its report, percentiles, a
summary per cell, and the checks that make the campaign's verdict (the same verdict rules
as a drill: fail > unknown > pass)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Optional

from ..verify.checks import FAIL, PASS, UNKNOWN, Check, merge
from ..verify.distribution import percentile
from .envelope import lag_at_fault

QUANTILES = (50, 95, 99)


@dataclass(frozen=True)
class Round:
    """One round as the campaign keeps it: the drill's own figures, from its report."""

    round: int
    cell: str
    verdict: str
    reason: str
    run_id: Optional[str]
    run_dir: Optional[str]
    started_at: float
    ended_at: float
    settle_seconds: Optional[float]
    write_rto: Optional[float]
    detection: Optional[float]
    promotion: Optional[float]
    routing: Optional[float]
    lost_acknowledged: Optional[int]
    brownout_seconds: Optional[float]
    primary_before: Optional[str]
    primary_after: Optional[str]
    # the envelope (envelope.py): the load at the fault and what it cost
    lost_bytes: Optional[int] = None
    lost_transactions: Optional[int] = None
    wal_bytes_per_second_before_fault: Optional[int] = None
    lag_at_fault_bytes: Optional[int] = None
    lag_at_fault_seconds: Optional[float] = None
    read_only: Optional[float] = None  # the promoted node held read-only (format 12 on)
    first_commit: Optional[float] = None  # its first commit held the writes (format 15 on)
    held: Optional[float] = None  # ops in flight held on a hung old primary (format 15 on)

    def as_dict(self) -> dict:
        return asdict(self)


def round_from_report(number: int, cell: str, report: dict, started_at: float,
                      settle_seconds: Optional[float]) -> Round:
    """The figures a campaign summarises, read from one drill's report.json."""
    rto, anatomy = report.get("rto") or {}, report.get("anatomy") or {}
    servers = report.get("servers") or {}

    def label(which: str) -> Optional[str]:
        return (servers.get(which) or {}).get("label")

    return Round(number, cell, report["verdict"], "; ".join(report.get("verdict_reasons")
                                                            or []),
                 report.get("run_id"), report.get("run_dir"), started_at,
                 report.get("phases", {}).get("report") or started_at, settle_seconds,
                 rto.get("write_seconds") if rto.get("recovered") else None,
                 rto.get("detection_seconds"), anatomy.get("promotion_seconds"),
                 anatomy.get("routing_seconds"),
                 (report.get("rpo") or {}).get("lost_acknowledged_ops"),
                 (report.get("brownout") or {}).get("seconds"),
                 label("primary_before"), label("primary_after"),
                 (report.get("rpo") or {}).get("lost_bytes"),
                 (report.get("rpo") or {}).get("lost_acknowledged_transactions"),
                 anatomy.get("wal_bytes_per_second_before_fault"), *lag_at_fault(report),
                 read_only=anatomy.get("read_only_seconds"),
                 first_commit=anatomy.get("first_commit_seconds"),
                 held=anatomy.get("held_seconds"))


def round_not_run(number: int, cell: str, started_at: float, ended_at: float,
                  settle_seconds: Optional[float], reason: str) -> Round:
    """A round that never ran a drill (the cluster did not settle, or the drill could not
    start): unknown, with why, and no figures."""
    return Round(number, cell, UNKNOWN, reason, None, None, started_at, ended_at,
                 settle_seconds, None, None, None, None, None, None, None, None)


def unsettled_round(number: int, cell: str, at: float, waited: float, why: str) -> Round:
    """A round that never ran because the cluster did not settle: unknown, with why."""
    return round_not_run(number, cell, at, at, waited,
                         f"the cluster did not settle within {waited:g} s: {why}")


def distribution(values: Sequence[Optional[float]]) -> dict:
    """min / p50 / p95 / p99 / max of the values that exist, and how many there were."""
    known = [v for v in values if v is not None]
    out = {"n": len(known), "min": min(known) if known else None}
    out.update({f"p{q}": percentile(known, q) for q in QUANTILES})
    out["max"] = max(known) if known else None
    return out


def cell_summary(label: str, changes: dict, rounds: Sequence[Round]) -> dict:
    """One cell's rounds as distributions and counts."""
    mine = [r for r in rounds if r.cell == label]
    losses = [r.lost_acknowledged for r in mine]
    return {
        "label": label, "changes": changes, "rounds": len(mine),
        "passed": sum(r.verdict == PASS for r in mine),
        "failed": sum(r.verdict == FAIL for r in mine),
        "unknown": sum(r.verdict == UNKNOWN for r in mine),
        "write_rto": distribution([r.write_rto for r in mine]),
        "detection": distribution([r.detection for r in mine]),
        "promotion": distribution([r.promotion for r in mine]),
        "read_only": distribution([r.read_only for r in mine]),
        "routing": distribution([r.routing for r in mine]),
        "first_commit": distribution([r.first_commit for r in mine]),
        "held": distribution([r.held for r in mine]),
        "brownout_seconds": distribution([r.brownout_seconds for r in mine]),
        "lost_acknowledged_total": None if any(x is None for x in losses) else sum(losses),
        "lost_acknowledged_per_round": losses,
        "lost_bytes": distribution([r.lost_bytes for r in mine]),
        "wal_bytes_per_second_before_fault": distribution(
            [r.wal_bytes_per_second_before_fault for r in mine]),
        "lag_at_fault_bytes": distribution([r.lag_at_fault_bytes for r in mine]),
        "lag_at_fault_seconds": distribution([r.lag_at_fault_seconds for r in mine]),
    }


@dataclass(frozen=True)
class Limits:
    """The campaign's thresholds (config section `campaign`)."""

    max_write_rto_p95: Optional[float]
    max_lost_acknowledged_total: Optional[int]
    max_failed_rounds: int


def judge(cells: Sequence[dict], rounds: Sequence[Round], planned: int, limits: Limits,
          stopped: Optional[str]) -> tuple[str, list[str], list[Check]]:
    """The campaign's verdict: its checks merged (fail > unknown > pass)."""
    checks = []
    failed = sum(r.verdict == FAIL for r in rounds)
    checks.append(Check("failed rounds", FAIL if failed > limits.max_failed_rounds else PASS,
                        f"{failed} round(s) failed (max {limits.max_failed_rounds})"))
    unknown = [r for r in rounds if r.verdict == UNKNOWN]
    checks.append(Check("unknown rounds", UNKNOWN if unknown else PASS,
                        f"{len(unknown)} round(s) unknown" + (
                            f": round {unknown[0].round} ({unknown[0].cell}): "
                            f"{unknown[0].reason}" if unknown else "")))
    if len(rounds) < planned:
        checks.append(Check("rounds completed", UNKNOWN, f"{len(rounds)} of {planned} rounds "
                            f"ran" + (f" ({stopped})" if stopped else "")))
    else:
        checks.append(Check("rounds completed", PASS, f"all {planned} rounds ran"))
    if limits.max_write_rto_p95 is not None:
        over = [c for c in cells if c["write_rto"]["p95"] is not None
                and c["write_rto"]["p95"] > limits.max_write_rto_p95]
        checks.append(Check("max-write-rto-p95", FAIL if over else PASS, "; ".join(
            f"{c['label']}: p95 write RTO {c['write_rto']['p95']:.3f} s" for c in over)
            or f"every cell's p95 write RTO within {limits.max_write_rto_p95:g} s"))
    if limits.max_lost_acknowledged_total is not None:
        losses = [r.lost_acknowledged for r in rounds]
        if any(x is None for x in losses):
            checks.append(Check("max-lost-acknowledged-total", UNKNOWN, "the loss of some "
                                "round is unknown (its data was not validated)"))
        else:
            total = sum(losses)
            checks.append(Check("max-lost-acknowledged-total",
                                FAIL if total > limits.max_lost_acknowledged_total else PASS,
                                f"{total} acknowledged ops lost in all (max "
                                f"{limits.max_lost_acknowledged_total})"))
    verdict = merge(checks)
    return verdict.status, verdict.reasons, verdict.checks
