"""The harness's CPU per op (issue: at most 2.5 times pgbench's client CPU per transaction,
all in): ptor's whole process tree (start, coordinator, fork server, workers, recorder,
probe, observer, reconciliation, report) against pgbench's, over the same 50/30/20
single-row statements with the same clients, synchronous_commit off, measured in the same
run as the CPU each tree used (getrusage of the waited-for children, before and after).

Beside them, the floor of ptor's shape (client_floor.py): one psycopg2 connection per
process running ptor's prepared statements and nothing else. pgbench serves its clients
from threads that each wait on several sockets at once; a process per connection sleeps
and wakes once per op, and on this project's 2-core VM that context switch is most of a
worker's CPU (docs/design.md, "Where the harness's CPU goes"). So the floor is also
measured with each process driving two connections at once: what a worker process serving
several workers would save."""

import os
import re
import subprocess
import sys

from .conftest import children_cpu, pgbench_script_run, run_ptor
from .test_load import CLIENTS, MIX, SECONDS, set_synchronous_commit

TARGET = 2.5  # ptor's CPU per acknowledged op over pgbench's per transaction, at most
MULTIPLEXED = 2  # connections per process in the floor of the shape that shares processes


def ptor_cpu_per_op(lab, tmp_path, *extra) -> tuple[float, int]:
    before = children_cpu()
    report = run_ptor(tmp_path, "--primary-pgdsn", lab.primary_dsn(), "--init",
                      "--parallel-workers", str(CLIENTS), "--warmup-duration", "2",
                      "--duration", str(SECONDS), "--expect", "any", *extra)
    used = children_cpu() - before
    assert report["verdict"] == "pass", report["verdict_reasons"]
    return used / report["ops"]["ok"], report["ops"]["ok"]


def pgbench_cpu_per_transaction(lab) -> tuple[float, int]:
    before = children_cpu()
    out = pgbench_script_run(lab, "ptor_bench", MIX, CLIENTS, SECONDS)
    used = children_cpu() - before
    done = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    return used / done, done


def floor_cpu_per_op(lab, per_process: int = 1) -> tuple[float, int]:
    before = children_cpu()
    done = subprocess.run([sys.executable, "-m", "tests.benchmarks.client_floor",
                           lab.primary_dsn(), str(CLIENTS), str(SECONDS), str(per_process)],
                          capture_output=True, text=True, timeout=SECONDS + 120, check=True)
    used = children_cpu() - before
    ops = int(done.stdout.split()[-1])
    return used / ops, ops


def test_cpu_per_op_against_pgbench(bench_lab, tmp_path, capsys):
    lab = bench_lab
    set_synchronous_commit(lab, "off")
    try:
        pg, pg_done = pgbench_cpu_per_transaction(lab)
        floor, floor_done = floor_cpu_per_op(lab)
        shared, shared_done = floor_cpu_per_op(lab, MULTIPLEXED)
        sync, sync_done = ptor_cpu_per_op(lab, tmp_path)
        asynchronous, async_done = ptor_cpu_per_op(lab, tmp_path, "--async-repo-mode")
    finally:
        set_synchronous_commit(lab, "on")
    with capsys.disabled():
        print(f"\nCPU per op, all in, {CLIENTS} clients, {SECONDS} s, synchronous_commit off, "
              f"sharing every CPU ({os.cpu_count()})")
        print(f"{'':>26} {'ops':>9} {'us/op':>7} {'x pgbench':>10} {'x floor':>8}")
        for name, cpu, done in (("pgbench (client)", pg, pg_done),
                                ("floor: psycopg2 alone", floor, floor_done),
                                (f"floor, {MULTIPLEXED} per process", shared, shared_done),
                                ("ptor sync repo mode", sync, sync_done),
                                ("ptor async repo mode", asynchronous, async_done)):
            print(f"{name:>26} {done:9d} {cpu * 1e6:7.1f} {cpu / pg:10.2f} "
                  f"{cpu / floor:8.2f}")
    assert sync <= TARGET * pg, f"ptor's CPU per op within {TARGET} times pgbench's"
