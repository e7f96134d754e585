"""The RPO envelope on synthetic rounds: the lag at the fault read from a report, the
least-squares slope, the points and the terminal's reading of them."""

import pytest

from ptor_harness.campaign import stats
from ptor_harness.campaign.envelope import envelope, lag_at_fault, slope, slope_line
from ptor_harness.campaign.outputs import rounds_csv


def a_report(lost_bytes, wal, rows, new="node2"):
    return {"verdict": "fail", "verdict_reasons": [], "run_id": "r", "run_dir": "/r",
            "phases": {"report": 10.0}, "rto": {"write_seconds": 1.5, "recovered": True},
            "rpo": {"lost_acknowledged_ops": 3, "lost_bytes": lost_bytes,
                    "lost_acknowledged_transactions": 3},
            "anatomy": {"new_primary": new, "replication_at_fault": rows,
                        "wal_bytes_per_second_before_fault": wal},
            "servers": {}, "brownout": {"seconds": 0.0}}


ROWS = [{"standby": "node2", "seen_by": "primary node1", "flushed_bytes_behind": 4096,
         "replayed_bytes_behind": 9000, "replay_lag_seconds": 0.25},
        {"standby": "node3", "seen_by": "primary node1", "flushed_bytes_behind": 99999,
         "replayed_bytes_behind": 99999, "replay_lag_seconds": 3.0},
        {"standby": "node2", "seen_by": "itself", "flushed_bytes_behind": None,
         "replayed_bytes_behind": 5000, "replay_lag_seconds": 0.5}]


def test_the_lag_of_the_standby_that_was_promoted():
    assert lag_at_fault(a_report(0, 1, ROWS)) == (5000, 0.5)  # node2's, not node3's
    assert lag_at_fault(a_report(0, 1, ROWS, new=None)) == (99999, 3.0)  # the most behind
    assert lag_at_fault(a_report(0, 1, [])) == (None, None)


def test_a_round_carries_its_envelope_figures():
    r = stats.round_from_report(1, "rate=500", a_report(192, 2_500_000, ROWS), 0.0, None)
    assert (r.lost_bytes, r.lost_transactions, r.wal_bytes_per_second_before_fault,
            r.lag_at_fault_bytes, r.lag_at_fault_seconds) == (192, 3, 2_500_000, 5000, 0.5)
    text = rounds_csv({"rounds": [r.as_dict()]})
    header, row = text.splitlines()
    values = dict(zip(header.split(","), row.split(",")))
    assert values["wal_bytes_per_second_before_fault"] == "2500000"
    assert values["lag_at_fault_bytes"] == "5000" and values["lost_bytes"] == "192"
    cell = stats.cell_summary("rate=500", {}, [r])
    assert cell["lag_at_fault_seconds"]["max"] == 0.5


def test_slope_and_envelope():
    assert slope([(1, 2), (2, 4), (3, 6)]) == pytest.approx(2.0)
    assert slope([(1, 2), (1, 5)]) is None and slope([]) is None
    rounds = [dict(round=n, cell="c", wal_bytes_per_second_before_fault=wal,
                   lag_at_fault_bytes=0, lost_acknowledged=0, lost_bytes=lost,
                   write_rto=rto)
              for n, wal, lost, rto in ((1, 1e6, 1000, 1.0), (2, 2e6, 3000, 1.2),
                                        (3, 3e6, 5000, 1.4), (4, None, 9, 9.0))]
    env = envelope(rounds)
    assert len(env["points"]) == 3  # the round without a WAL rate is no point
    assert env["lost_bytes_per_wal_mb_per_second"] == pytest.approx(2000.0)
    assert env["write_rto_seconds_per_wal_mb_per_second"] == pytest.approx(0.2)
    line = slope_line(env)
    assert "2,000 lost bytes" in line and "+0.200 s of write RTO" in line
    assert "(least squares; lost bytes r² 1.00; write RTO r² 1.00)" in line
    assert env["write_rto_r2"] == pytest.approx(1.0)
    assert slope_line(envelope(rounds[:1])) is None
    assert env["no_trend"] is None


def test_no_slope_is_read_over_rates_too_close_for_a_trend():
    """Three rounds of one load (1.38-1.42 MB/s) read "+7.8 s of write RTO per MB/s":
    noise as a trend. Under a 1.5 times spread no slope is read, and the line says why."""
    rounds = [dict(round=n, cell="all", wal_bytes_per_second_before_fault=wal,
                   lag_at_fault_bytes=0, lost_acknowledged=lost, lost_bytes=64 * lost,
                   write_rto=rto)
              for n, wal, lost, rto in ((1, 1.383e6, 1, 1.87), (2, 1.378e6, 0, 1.32),
                                        (3, 1.417e6, 3, 1.82))]
    env = envelope(rounds)
    assert env["lost_bytes_per_wal_mb_per_second"] is None
    assert env["write_rto_seconds_per_wal_mb_per_second"] is None
    assert len(env["points"]) == 3  # the points stay, for the picture and the CSV
    assert slope_line(env) == (
        "envelope over 3 rounds: no slope read; the rounds' WAL rates before the fault "
        "(1.38 to 1.42 MB/s) are too close for a trend: vary the load (--vary rate=... or "
        "payload-bytes=...) so the largest is at least 1.5 times the smallest")
    # 1.0 against 1.5 MB/s is just enough
    rounds[2]["wal_bytes_per_second_before_fault"] = 1.5 * 1.378e6
    assert envelope(rounds)["no_trend"] is None
    assert envelope(rounds, ["rate", "payload-bytes"])["no_trend"] is None


def test_no_slope_is_read_across_cells_that_differ_in_more_than_the_load():
    """--vary synchronous-commit=on,off --vary pooler=none,pgbouncer: the loss comes of
    synchronous_commit off, not of the rate; a slope across those cells read "28,765
    lost bytes per MB/s"."""
    rounds = [dict(round=1, cell=cell, wal_bytes_per_second_before_fault=wal,
                   lag_at_fault_bytes=0, lost_acknowledged=lost, lost_bytes=64 * lost,
                   write_rto=0.1)
              for cell, wal, lost in (("on", 1e6, 0), ("off", 3e6, 2753))]
    env = envelope(rounds, ["synchronous-commit", "pooler", "rate", "pooler"])
    assert env["lost_bytes_per_wal_mb_per_second"] is None and len(env["points"]) == 2
    assert slope_line(env) == (
        "envelope over 2 rounds: no slope read; the cells differ in synchronous-commit, "
        "pooler, not only in the load: a slope across them would mix that with the write "
        "rate; vary only the load (rate, payload-bytes, background-load, ...) to read one")


def test_a_slope_the_rounds_scatter_about_is_said_as_no_trend():
    """pg_auto_failover, 2 and 4 workers, 2 rounds each: its outage is the manager's
    timers whatever the rate, and the slope read "+0.912 s of write RTO per MB/s" alone."""
    from ptor_harness.campaign.envelope import r_squared

    rounds = [dict(round=n, cell="c", wal_bytes_per_second_before_fault=wal,
                   lag_at_fault_bytes=0, lost_acknowledged=0, lost_bytes=0, write_rto=rto)
              for n, wal, rto in ((1, 0.5e6, 7.04), (2, 0.52e6, 6.43), (3, 1.0e6, 6.73),
                                  (4, 0.98e6, 6.70))]
    env = envelope(rounds, ["parallel-workers"])
    assert env["write_rto_r2"] < 0.5 and env["lost_bytes_r2"] is None  # 0 lost: flat
    line = slope_line(env)
    assert "0 lost bytes" in line and "write RTO r² " in line
    assert "the rounds scatter about it more than they follow the rate, no trend shown" in line
    assert r_squared([(1, 1), (2, 2)]) == pytest.approx(1.0)
    assert r_squared([(1, 1), (1, 2)]) is None
