"""What the CDC consumer costs the load (issue: it keeps up with ptor's load at 10,000 ops/s
on this machine without slowing it by more than 5 %): the same drill, --rate 10000, 8
workers, without and with --cdc-slot, alternating, on one lab (its primary at wal_level =
logical for both, so only the consumer differs). Every run with the consumer must catch up
with the load's last write and miss nothing.

On this project's 2 shared cores the load alone stays below 10,000 ops/s: every process is
then short of CPU, and whatever the consumer and the server's logical decoding use comes
off the load. So the same pair is also run at a rate the load reaches alone (SUSTAINED),
where the ratio says whether the consumer keeps up without holding the load back. Beside
each ratio the bench prints the share of the machine's CPU the server's walsender spent
decoding for the consumer: cost the cluster pays for any CDC consumer, which on saturated
shared cores comes off the load before ptor's consumer does anything."""

import contextlib
import os
import statistics

import psutil

from ptor_harness.lab import cdc as lab_cdc

from .conftest import ProcessCpu, load_rate, run_ptor

RATE = 10000
SUSTAINED = int(os.environ.get("PTOR_BENCH_CDC_SUSTAINED_RATE", "5000"))
ROUNDS = int(os.environ.get("PTOR_BENCH_CDC_ROUNDS", "2"))
TARGET = 0.95  # the load with the consumer, over the load without, at least


def walsender_cpu(lab) -> ProcessCpu:
    """The CPU the lab's walsenders use while a drill runs (sampled every 0.1 s, since a
    walsender exits with its consumer): the server's side of logical decoding, which every
    CDC consumer costs a cluster, ptor's or any other. The physical walsenders to the
    standbys run with and without the consumer alike, so the difference is decoding's."""
    postmasters = [psutil.Process(node.pid) for node in lab.nodes.values() if node.running()]

    def walsenders() -> list:
        found = []
        for postmaster in postmasters:
            with contextlib.suppress(psutil.Error):
                found += [p for p in postmaster.children()
                          if "walsender" in " ".join(p.cmdline())]
        return found

    return ProcessCpu(walsenders, 0.1)


def used(sampler: ProcessCpu) -> float:
    """CPU seconds used while watched: a walsender first seen mid-run counts from its
    first sample (it started then)."""
    return sum(last - first for _title, first, last in sampler.seen.values())


def pair(bench_lab, tmp_path, rate: int) -> tuple:
    """(the median ratio with / without the consumer, the loads' medians, worst lag p99,
    the share of the machine's CPU the server's logical decoding took beside the load)."""
    args = ["--primary-pgdsn", bench_lab.primary_dsn(), "--init", "--parallel-workers", "8",
            "--warmup-duration", "2", "--duration", "10", "--rate", str(rate),
            "--expect", "any"]
    alone, beside, lags, decoding = [], [], [], []
    cores = len(os.sched_getaffinity(0))
    for _ in range(ROUNDS):
        with walsender_cpu(bench_lab) as without:
            alone.append(load_rate(run_ptor(tmp_path, *args)))
        with walsender_cpu(bench_lab) as with_consumer:
            report = run_ptor(tmp_path, *args, "--cdc-slot", lab_cdc.SLOT)
        cdc = report["cdc"]
        assert cdc["caught_up"] and cdc["missed"] == 0 and cdc["phantom"] == 0, cdc
        beside.append(load_rate(report))
        lags.append(cdc["lag_p99_seconds"])
        decoding.append((used(with_consumer) - used(without) * with_consumer.seconds
                         / without.seconds) / (cores * with_consumer.seconds))
    return (statistics.median(b / a for a, b in zip(alone, beside)),
            statistics.median(alone), statistics.median(beside), max(lags),
            statistics.median(decoding))


def test_the_consumer_keeps_up_without_slowing_the_load(bench_lab, tmp_path, capsys):
    lab_cdc.add(bench_lab, "pgoutput")
    rows = {rate: pair(bench_lab, tmp_path, rate) for rate in (SUSTAINED, RATE)}
    with capsys.disabled():
        print(f"\nCDC consumer's cost, 8 workers, {ROUNDS} rounds alternating")
        for rate, (ratio, alone, beside, lag, decoding) in rows.items():
            print(f"  --rate {rate}: load without {alone:,.0f} ops/s, with {beside:,.0f} "
                  f"ops/s; with / without {ratio:.3f} (target at least {TARGET}); consumer "
                  f"lag p99 {lag:.3f} s; the server's logical decoding (its walsender) "
                  f"took {decoding:.1%} of the machine's CPU")
    assert rows[SUSTAINED][0] >= TARGET
    assert rows[RATE][0] >= TARGET
