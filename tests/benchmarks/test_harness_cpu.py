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
several workers would save.

What the client's CPU means for throughput where the cluster and the load share the cores
(the load bench's "sharing every CPU" rows; issue: at least 0.9 of pgbench with
synchronous_commit off): a saturated machine's rate is its CPUs over the CPU it spends per
op, the client's plus the servers'. Each run is metered whole (the machine's CPU beside
the client tree's), so the table prints the share of pgbench's rate each row's costs allow."""

import os
import re
import subprocess
import sys
import time
from typing import NamedTuple

from .conftest import children_cpu, machine_busy, pgbench_script_run, run_ptor
from .test_load import CLIENTS, MIX, SECONDS, set_synchronous_commit

TARGET = 2.5  # ptor's CPU per acknowledged op over pgbench's per transaction, at most
MULTIPLEXED = 2  # connections per process in the floor of the shape that shares processes


class Cost(NamedTuple):
    """One run's CPU per op (seconds): the client's tree and the rest of the machine (the
    cluster's servers), over `ops` ops, the machine `busy` (share of every CPU)."""

    client: float
    servers: float
    ops: int
    busy: float


class MachineCpu:
    """Around a run: the CPU seconds the machine used, the waited-for children's (the
    client's) among them, and the wall time."""

    def __enter__(self):
        self.client, self.machine, self.started = children_cpu(), machine_busy(), \
            time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.client = children_cpu() - self.client
        self.machine = machine_busy() - self.machine
        self.seconds = time.monotonic() - self.started

    def cost(self, ops: int) -> Cost:
        return Cost(self.client / ops, (self.machine - self.client) / ops, ops,
                    self.machine / (self.seconds * os.cpu_count()))


def ptor_cost(lab, tmp_path, *extra) -> Cost:
    with MachineCpu() as meter:
        report = run_ptor(tmp_path, "--primary-pgdsn", lab.primary_dsn(), "--init",
                          "--parallel-workers", str(CLIENTS), "--warmup-duration", "2",
                          "--duration", str(SECONDS), "--expect", "any", *extra)
    assert report["verdict"] == "pass", report["verdict_reasons"]
    return meter.cost(report["ops"]["ok"])


def pgbench_cost(lab) -> Cost:
    """Over pgbench's run alone (not its table's preparation)."""
    meter = MachineCpu()
    out = pgbench_script_run(lab, "ptor_bench", MIX, CLIENTS, SECONDS, meter)
    return meter.cost(int(re.search(r"number of transactions actually processed: (\d+)",
                                    out).group(1)))


def floor_cost(lab, per_process: int = 1) -> Cost:
    with MachineCpu() as meter:
        done = subprocess.run([sys.executable, "-m", "tests.benchmarks.client_floor",
                               lab.primary_dsn(), str(CLIENTS), str(SECONDS),
                               str(per_process)],
                              capture_output=True, text=True, timeout=SECONDS + 120,
                              check=True)
    return meter.cost(int(done.stdout.split()[-1]))


def test_cpu_per_op_against_pgbench(bench_lab, tmp_path, capsys):
    lab = bench_lab
    set_synchronous_commit(lab, "off")
    try:
        rows = [("pgbench (client)", pgbench_cost(lab)),
                ("floor: psycopg2 alone", floor_cost(lab)),
                (f"floor, {MULTIPLEXED} per process", floor_cost(lab, MULTIPLEXED)),
                ("ptor sync repo mode", ptor_cost(lab, tmp_path)),
                ("ptor async repo mode", ptor_cost(lab, tmp_path, "--async-repo-mode"))]
    finally:
        set_synchronous_commit(lab, "on")
    pg, floor, sync = rows[0][1], rows[1][1], rows[3][1]
    with capsys.disabled():
        print(f"\nCPU per op, all in, {CLIENTS} clients, {SECONDS} s, synchronous_commit off, "
              f"sharing every CPU ({os.cpu_count()}). 'servers': the rest of the machine's "
              "CPU per op; 'sharing': the share of pgbench's rate the client reaches where "
              "the cluster and the client saturate the same cores, the machine's CPU per "
              "op, pgbench's over the row's")
        print(f"{'':>26} {'ops':>9} {'us/op':>7} {'x pgbench':>10} {'x floor':>8} "
              f"{'servers':>8} {'busy':>5} {'sharing':>8}")
        for name, cost in rows:
            print(f"{name:>26} {cost.ops:9d} {cost.client * 1e6:7.1f} "
                  f"{cost.client / pg.client:10.2f} {cost.client / floor.client:8.2f} "
                  f"{cost.servers * 1e6:8.1f} {cost.busy:5.0%} "
                  f"{(pg.client + pg.servers) / (cost.client + cost.servers):8.2f}")
    assert sync.client <= TARGET * pg.client, f"ptor's CPU per op within {TARGET} times pgbench's"
