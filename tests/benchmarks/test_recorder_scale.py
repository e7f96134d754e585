"""The recorder keeps up with 32 workers: with synchronous_commit=off (the fastest load the
lab makes) the queue to the recorder never fills, every op reaches the ledger, and the
drain after the load takes moments, in both repo modes and with both ledger backends."""

import os

import pytest

from .conftest import load_rate, placement, run_ptor
from .test_load import set_synchronous_commit

WORKERS = int(os.environ.get("PTOR_BENCH_WORKERS", "32"))
SECONDS = int(os.environ.get("PTOR_BENCH_SECONDS", "15"))
rows = []


@pytest.mark.parametrize("ledger,mode", [("sqlite", "sync"), ("sqlite", "async"),
                                         ("postgresql", "sync"), ("postgresql", "async")])
def test_the_recorder_keeps_up_with_32_workers(bench_lab, tmp_path, capsys, ledger, mode):
    lab = bench_lab
    extra = ["--repo-pgdsn", lab.repo_dsn()] if ledger == "postgresql" else []
    extra += ["--async-repo-mode"] if mode == "async" else []
    set_synchronous_commit(lab, "off")
    try:
        with placement(lab, "apart"):
            r = run_ptor(tmp_path, "--primary-pgdsn", lab.primary_dsn(), "--init",
                         "--parallel-workers", str(WORKERS), "--warmup-duration", "2",
                         "--duration", str(SECONDS), "--expect", "any", *extra)
    finally:
        set_synchronous_commit(lab, "on")
    assert r["verdict"] == "pass", r["verdict_reasons"]
    harness = r["harness"]
    drain = r["phases"]["reconcile"] - r["phases"]["drain"]
    total = r["ops"]["ok"] + r["ops"]["failed"] + r["ops"]["indeterminate"]
    rows.append((ledger, mode, load_rate(r), harness["queue_peak_messages"],
                 harness["queue_capacity"], drain, r["recorder"]["ops"], total))
    with capsys.disabled():
        print(f"\n{WORKERS} workers, {SECONDS} s, synchronous_commit off, {ledger} ledger, "
              f"{mode} repo mode: {load_rate(r):.0f} ops/s, queue peak "
              f"{harness['queue_peak_messages']} of {harness['queue_capacity']} messages, "
              f"drain {drain:.2f} s, ledger {r['recorder']['ops']} of {total} ops")
    assert harness["queue_peak_messages"] < harness["queue_capacity"] / 2, "queue grew"
    assert r["recorder"]["ops"] == total, "every op reached the ledger"
    assert drain < 5.0, "the recorder had fallen behind: the drain took long"
