"""The floor under ptor's load, for the CPU benchmark: what the design's shape costs before
any of ptor's own work. One process per client, each on one psycopg2 connection running
ptor's prepared op statements (drill/statements.py) in the same 50/30/20 mix on a table of
its own, as fast as it can, with no ledger, no outcome, no recorder, no probe: the CPU per
op that one-connection-per-process psycopg2 pays on this machine, measured beside pgbench
(one thread serving several clients) and ptor in the same run.

With PER_PROCESS above 1, each process drives that many clients' connections at once
(psycopg2's asynchronous connections, one `poll()` over their sockets, as pgbench's threads
wait on several clients): the floor of a shape where a worker process serves several
workers, which tells what that shape would save before any of ptor's own work.

Run as `python -m tests.benchmarks.client_floor DSN CLIENTS SECONDS [PER_PROCESS]`: it
prints the ops done, and the caller reads the tree's CPU from getrusage."""

from __future__ import annotations

import multiprocessing
import random
import select
import sys
import time

import psycopg2
import psycopg2.extensions

from ptor_harness.drill.statements import op_statements, prepare_statements
from ptor_harness.ops import DELETE, INSERT, UPDATE

TABLE = "ptor_floor_{}"


class Mix:
    """One client's table, its live keys and its draw of the next op."""

    def __init__(self, dsn: str, number: int) -> None:
        self.table = TABLE.format(number)
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.table}")
            cur.execute(f"CREATE TABLE {self.table} (id bigint PRIMARY KEY, last_seq bigint, "
                        "prev_seq bigint, payload text, written_at timestamptz)")
        conn.close()
        self.prepare, self.sql = prepare_statements(op_statements(self.table))
        self.draw = random.Random(number).random
        self.keys: list[int] = []
        self.ops = self.next_key = 0

    def send(self, cur) -> None:
        """Send the next op on `cur` (on an asynchronous connection it returns at once)."""
        self.ops += 1
        mix, data = self.draw(), "f" * 64
        if mix < 0.5 or not self.keys:
            self.next_key += 1
            cur.execute(self.sql[INSERT], (self.next_key, self.ops, data, time.time()))
            self.keys.append(self.next_key)
            return
        index = int(self.draw() * len(self.keys))
        key = self.keys[index]
        if mix < 0.8:
            cur.execute(self.sql[UPDATE], (self.ops, data, time.time(), key))
        else:
            self.keys[index] = self.keys[-1]
            self.keys.pop()
            cur.execute(self.sql[DELETE], (key,))

    def drop(self, dsn: str) -> None:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE {self.table}")
        conn.close()


def client(dsn: str, number: int, seconds: float, done) -> None:
    """One client: its own table, ptor's statements prepared, the mix until time is up."""
    mix = Mix(dsn, number)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(mix.prepare)
    end = time.time() + seconds
    while time.time() < end:
        mix.send(cur)
        if cur.description:
            cur.fetchone()
    conn.close()
    mix.drop(dsn)
    done.put(mix.ops)


def settle(conn) -> None:
    """Wait for an asynchronous connection's pending work (connect, a statement)."""
    while (state := conn.poll()) != psycopg2.extensions.POLL_OK:
        wanted = [conn.fileno()]
        if state == psycopg2.extensions.POLL_READ:
            select.select(wanted, [], [])
        else:
            select.select([], wanted, [])


def clients(dsn: str, first: int, count: int, seconds: float, done) -> None:
    """`count` clients in one process: each on an asynchronous connection, the next op
    sent as soon as its last one's result is in, one poll() over every socket."""
    mixes, conns, cursors = [], [], []
    for number in range(first, first + count):
        mixes.append(Mix(dsn, number))
        conn = psycopg2.connect(dsn, async_=True)
        settle(conn)
        cur = conn.cursor()
        cur.execute(mixes[-1].prepare)
        settle(conn)
        conns.append(conn)
        cursors.append(cur)
    by_socket = {conn.fileno(): n for n, conn in enumerate(conns)}
    poller = select.poll()
    end = time.time() + seconds

    def advance(n: int) -> None:
        """Take in client n's results and send its next ops until one is in flight."""
        conn, cur = conns[n], cursors[n]
        while True:
            state = conn.poll()
            if state == psycopg2.extensions.POLL_READ:
                return
            if state == psycopg2.extensions.POLL_WRITE:
                select.select([], [conn.fileno()], [])
                continue
            if cur.description:
                cur.fetchone()
            if time.time() >= end:
                poller.unregister(conn.fileno())
                del by_socket[conn.fileno()]
                return
            mixes[n].send(cur)

    for n, conn in enumerate(conns):
        poller.register(conn.fileno(), select.POLLIN)
        mixes[n].send(cursors[n])
        advance(n)
    while by_socket:
        for fd, _event in poller.poll():
            advance(by_socket[fd])
    for conn, mix in zip(conns, mixes):
        conn.close()
        mix.drop(dsn)
    done.put(sum(mix.ops for mix in mixes))


def main(argv: list[str]) -> None:
    dsn, count, seconds = argv[0], int(argv[1]), float(argv[2])
    per_process = int(argv[3]) if len(argv) > 3 else 1
    done = multiprocessing.Queue()
    if per_process == 1:
        procs = [multiprocessing.Process(target=client, args=(dsn, n, seconds, done))
                 for n in range(count)]
    else:
        procs = [multiprocessing.Process(
            target=clients, args=(dsn, first, min(per_process, count - first), seconds, done))
            for first in range(0, count, per_process)]
    for proc in procs:
        proc.start()
    total = sum(done.get(timeout=seconds + 60) for _ in procs)
    for proc in procs:
        proc.join()
    print(total)


if __name__ == "__main__":
    main(sys.argv[1:])
