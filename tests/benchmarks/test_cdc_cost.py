"""What the CDC consumer costs the load (issue: it keeps up with ptor's load at 10,000 ops/s
on this machine without slowing it by more than 5 %): the same drill, --rate 10000, 8
workers, without and with --cdc-slot, alternating, on one lab (its primary at wal_level =
logical for both, so only the consumer differs). Every run with the consumer must catch up
with the load's last write and miss nothing."""

import os
import statistics

from ptor_harness.lab import cdc as lab_cdc

from .conftest import load_rate, run_ptor

RATE = 10000
ROUNDS = int(os.environ.get("PTOR_BENCH_CDC_ROUNDS", "2"))
TARGET = 0.95  # the load with the consumer, over the load without, at least


def test_the_consumer_keeps_up_without_slowing_the_load(bench_lab, tmp_path, capsys):
    lab_cdc.add(bench_lab, "pgoutput")
    args = ["--primary-pgdsn", bench_lab.primary_dsn(), "--init", "--parallel-workers", "8",
            "--warmup-duration", "2", "--duration", "10", "--rate", str(RATE),
            "--expect", "any"]
    alone, beside, lags = [], [], []
    for _ in range(ROUNDS):
        alone.append(load_rate(run_ptor(tmp_path, *args)))
        report = run_ptor(tmp_path, *args, "--cdc-slot", lab_cdc.SLOT)
        cdc = report["cdc"]
        assert cdc["caught_up"] and cdc["missed"] == 0 and cdc["phantom"] == 0, cdc
        beside.append(load_rate(report))
        lags.append(cdc["lag_p99_seconds"])
    ratio = statistics.median(b / a for a, b in zip(alone, beside))
    with capsys.disabled():
        print(f"\nCDC consumer's cost, --rate {RATE}, 8 workers, {ROUNDS} rounds alternating")
        print(f"  load without: {statistics.median(alone):,.0f} ops/s; with: "
              f"{statistics.median(beside):,.0f} ops/s; with / without {ratio:.3f} "
              f"(target at least {TARGET}); consumer lag p99 {max(lags):.3f} s")
    assert ratio >= TARGET
