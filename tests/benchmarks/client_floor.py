"""The floor under ptor's load, for the CPU benchmark: what the design's shape costs before
any of ptor's own work. One process per client, each on one psycopg2 connection running
ptor's prepared op statements (drill/statements.py) in the same 50/30/20 mix on a table of
its own, as fast as it can, with no ledger, no outcome, no recorder, no probe: the CPU per
op that one-connection-per-process psycopg2 pays on this machine, measured beside pgbench
(one thread serving several clients) and ptor in the same run.

Run as `python -m tests.benchmarks.client_floor DSN CLIENTS SECONDS`: it prints the ops
done, and the caller reads the tree's CPU from getrusage."""

from __future__ import annotations

import multiprocessing
import random
import sys
import time

import psycopg2

from ptor_harness.drill.statements import op_statements, prepare_statements
from ptor_harness.ops import DELETE, INSERT, UPDATE

TABLE = "ptor_floor_{}"


def client(dsn: str, number: int, seconds: float, done) -> None:
    """One client: its own table, ptor's statements prepared, the mix until time is up."""
    table = TABLE.format(number)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, last_seq bigint, "
                "prev_seq bigint, payload text, written_at timestamptz)")
    prepare, sql = prepare_statements(op_statements(table))
    cur.execute(prepare)
    draw = random.Random(number).random
    keys: list[int] = []
    ops = next_key = 0
    data = "f" * 64
    end = time.time() + seconds
    while time.time() < end:
        ops += 1
        mix = draw()
        if mix < 0.5 or not keys:
            next_key += 1
            cur.execute(sql[INSERT], (next_key, ops, data, time.time()))
            keys.append(next_key)
            continue
        index = int(draw() * len(keys))
        key = keys[index]
        if mix < 0.8:
            cur.execute(sql[UPDATE], (ops, data, time.time(), key))
        else:
            keys[index] = keys[-1]
            keys.pop()
            cur.execute(sql[DELETE], (key,))
        cur.fetchone()
    cur.execute(f"DROP TABLE {table}")
    conn.close()
    done.put(ops)


def main(argv: list[str]) -> None:
    dsn, clients, seconds = argv[0], int(argv[1]), float(argv[2])
    done = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(dsn, n, seconds, done))
             for n in range(clients)]
    for proc in procs:
        proc.start()
    total = sum(done.get(timeout=seconds + 60) for _ in procs)
    for proc in procs:
        proc.join()
    print(total)


if __name__ == "__main__":
    main(sys.argv[1:])
