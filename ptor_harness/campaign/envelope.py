"""The RPO envelope (pure): loss and write RTO against the write rate, over a campaign's
rounds. A single drill says what was lost at its load; a DBA choosing synchronous or
asynchronous replication, or sizing Patroni's `maximum_lag_on_failover`, needs what is lost
at their peak. Each round gives one point: the primary's WAL rate over the seconds before
the fault (the node observer's), the standby's lag at the fault, the acknowledged ops,
bytes and transactions lost and the write RTO; a least-squares slope reads the trend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

MB = 1e6
# The least spread of WAL rates (the largest over the smallest) a slope is read over:
# rounds of one load differ by a few percent, and a slope over them is noise read as a
# trend (three rounds at 1.38-1.42 MB/s read "+7.8 s of write RTO per MB/s").
TREND_SPREAD = 1.5
# The --vary keys that change only the write load: cells that differ in anything else
# (synchronous-commit, a pooler, the fault) differ in what their loss and RTO come of, and
# a slope across them mixes that with the rate ("28,765 lost bytes per MB/s" of cells with
# synchronous_commit on and off).
LOAD_KEYS = ("rate", "payload-bytes", "background-load", "parallel-workers",
             "ops-per-transaction", "insert-percent", "update-percent", "delete-percent")


def lag_at_fault(report: dict) -> tuple[Optional[int], Optional[float]]:
    """(bytes, seconds) the promoted standby was behind at the fault: as it saw itself or
    as the old primary saw it, the WAL it had received (flushed) where known, else what it
    had replayed; without a promotion the most behind of the standbys."""
    anatomy = report.get("anatomy") or {}
    rows = anatomy.get("replication_at_fault") or []
    promoted = [r for r in rows if r.get("standby") == anatomy.get("new_primary")]
    chosen = promoted or rows
    behind = [r.get("flushed_bytes_behind") if r.get("flushed_bytes_behind") is not None
              else r.get("replayed_bytes_behind") for r in chosen]
    seconds = [r.get("replay_lag_seconds") for r in chosen]
    return (max((b for b in behind if b is not None), default=None),
            max((s for s in seconds if s is not None), default=None))


def spreads(points: Sequence[tuple[float, float]]) -> Optional[tuple[float, float, float]]:
    """The sums of squares about the means, (xx, xy, yy), that both the least-squares
    slope and its r² are read from; None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    return (sum((x - mean_x) ** 2 for x, _ in points),
            sum((x - mean_x) * (y - mean_y) for x, y in points),
            sum((y - mean_y) ** 2 for _, y in points))


def slope(points: Sequence[tuple[float, float]]) -> Optional[float]:
    """The least-squares slope of y over x; None with fewer than two distinct x."""
    s = spreads(points)
    return None if s is None else s[1] / s[0]


def r_squared(points: Sequence[tuple[float, float]]) -> Optional[float]:
    """How much of y's spread the least-squares line over x explains (0 to 1); None with
    fewer than two distinct x, or where y does not vary (the line is flat and exact)."""
    s = spreads(points)
    return None if s is None or s[2] == 0 else s[1] * s[1] / (s[0] * s[2])


# below this r², a slope is said with the warning that the rounds scatter about it more
# than they follow the rate (4 rounds of 2 and 4 workers on pg_auto_failover read "+0.912
# s of write RTO per MB/s", its outage being the manager's timers, whatever the rate)
TREND_R2 = 0.5


def envelope(rounds: Sequence[dict], varied: Sequence[str] = ()) -> dict:
    """Points (one per round with a WAL rate at the fault) and the slopes of lost bytes
    and of the write RTO per MB/s of WAL, where the cells differ only in the load
    (`varied`: the campaign's --vary keys) and the rates span enough for a trend
    (TREND_SPREAD); else `no_trend` says why."""
    points = [{"round": r["round"], "cell": r["cell"],
               "wal_mb_per_second": r["wal_bytes_per_second_before_fault"] / MB,
               "lag_at_fault_bytes": r["lag_at_fault_bytes"],
               "lost_acknowledged": r["lost_acknowledged"], "lost_bytes": r["lost_bytes"],
               "write_rto": r["write_rto"]}
              for r in rounds if r.get("wal_bytes_per_second_before_fault") is not None]
    return dict(trend(points, varied), points=points)


def trend(points: list[dict], varied: Sequence[str] = ()) -> dict:
    """The slopes over an envelope's points, or `no_trend` saying why none is read (also
    for a campaign.json written before format 4, whose slopes took any cells and spread)."""
    rates = [p["wal_mb_per_second"] for p in points]
    other = [key for key in dict.fromkeys(varied) if key not in LOAD_KEYS]
    no_trend = None
    if len(points) >= 2 and other:
        no_trend = (f"the cells differ in {', '.join(other)}, not only in the load: a slope "
                    "across them would mix that with the write rate; vary only the load "
                    "(rate, payload-bytes, background-load, ...) to read one")
    elif len(points) >= 2 and (min(rates) <= 0 or max(rates) < TREND_SPREAD * min(rates)):
        no_trend = (f"the rounds' WAL rates before the fault ({min(rates):.2f} to "
                    f"{max(rates):.2f} MB/s) are too close for a trend: vary the load "
                    "(--vary rate=... or payload-bytes=...) so the largest is at least "
                    f"{TREND_SPREAD:g} times the smallest")
    lost_points = [(p["wal_mb_per_second"], p["lost_bytes"])
                   for p in points if p["lost_bytes"] is not None]
    rto_points = [(p["wal_mb_per_second"], p["write_rto"])
                  for p in points if p["write_rto"] is not None]
    lost = None if no_trend else slope(lost_points)
    rto = None if no_trend else slope(rto_points)
    return {"lost_bytes_per_wal_mb_per_second": lost,
            "write_rto_seconds_per_wal_mb_per_second": rto, "no_trend": no_trend,
            "lost_bytes_r2": None if lost is None else r_squared(lost_points),
            "write_rto_r2": None if rto is None else r_squared(rto_points)}


def slope_line(env: dict) -> Optional[str]:
    """The terminal's last line: the slopes read in words, or None without them."""
    lost, rto = env["lost_bytes_per_wal_mb_per_second"], \
        env["write_rto_seconds_per_wal_mb_per_second"]
    if env.get("no_trend"):
        return f"envelope over {len(env['points'])} rounds: no slope read; {env['no_trend']}"
    if lost is None and rto is None:
        return None
    parts, fits = [], []
    for value, said, r2_key, what in ((lost, f"{lost or 0:,.0f} lost bytes", "lost_bytes_r2",
                                       "lost bytes"),
                                      (rto, f"{rto or 0:+.3f} s of write RTO", "write_rto_r2",
                                       "write RTO")):
        if value is None:
            continue
        parts.append(said)
        r2 = env.get(r2_key)  # absent from a campaign.json before format 5
        if r2 is not None:
            fits.append(f"{what} r² {r2:.2f}" + (
                ": the rounds scatter about it more than they follow the rate, no trend "
                "shown" if r2 < TREND_R2 else ""))
    return (f"envelope over {len(env['points'])} rounds: each MB/s more of WAL before the "
            f"fault came with {' and '.join(parts)} (least squares"
            + "".join(f"; {f}" for f in fits) + ")")
