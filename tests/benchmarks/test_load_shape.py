"""The load's shape (`tox -e bench`): how closely `--rate` is met at 500 and 2,000 ops/s and
near the harness's own limit, the WAL each op writes at 64 / 1,024 / 8,192 payload bytes,
and what the incompressible payload costs, side by side with a repeated pattern of the
same size in the same run (the payload before it: what PostgreSQL compressed)."""

import os
import timeit

from ptor_harness.schema import payload

from .conftest import load_rate, pgbench_script_tps, run_ptor

CLIENTS = int(os.environ.get("PTOR_BENCH_CLIENTS", "4"))
SECONDS = int(os.environ.get("PTOR_BENCH_SECONDS", "10"))
INSERT_ONLY = ["--insert-percent", "100", "--update-percent", "0", "--delete-percent", "0"]
WAL = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8"


def drill(lab, tmp_path, *extra) -> dict:
    return run_ptor(tmp_path, "--primary-pgdsn", lab.primary_dsn(), "--init",
                    "--parallel-workers", str(CLIENTS), "--warmup-duration", "1",
                    "--duration", str(SECONDS), "--expect", "any", *extra)


def test_rate_accuracy(bench_lab, tmp_path, capsys):
    lab = bench_lab
    limit = load_rate(drill(lab, tmp_path))  # as fast as the workers can
    rows = []
    for target in (500, 2000, round(0.9 * limit)):
        report = drill(lab, tmp_path, "--rate", str(target))
        load = report["load"]
        rows.append((target, load["achieved_rate"], load["schedule_lag_seconds"]["p99"],
                     load["latency_from_due_seconds"]["p99"]))
    with capsys.disabled():
        print(f"\n--rate, {CLIENTS} workers, {SECONDS} s, sync standby; unbounded: "
              f"{limit:.0f} ops/s")
        print(f"{'target':>8} {'achieved':>9} {'ratio':>6} {'lag p99 s':>10} "
              f"{'from due p99 s':>15}")
        for target, achieved, lag, due in rows:
            print(f"{target:8d} {achieved:9.1f} {achieved / target:6.3f} {lag:10.4f} "
                  f"{due:15.4f}")
    for target, achieved, _, _ in rows[:2]:
        assert abs(achieved / target - 1) <= 0.05, (target, achieved)


def repeated(run_tag: str, worker: int, seq: int, size: int) -> str:
    """The payload before this one: the op's name repeated (compressible)."""
    base = f"{run_tag}:{worker}:{seq}:"
    return (base * (size // len(base) + 1))[:size]


def test_wal_per_op_and_the_payloads_cost(bench_lab, tmp_path, capsys):
    lab = bench_lab
    primary = lab.nodes[lab.named("primary")]
    wal_rows = []
    for size in (64, 1024, 8192):
        drill(lab, tmp_path, "--ops-per-worker", "10")  # tables made before measuring
        (before,), = primary.query(WAL)
        report = drill(lab, tmp_path, *INSERT_ONLY, "--payload-bytes", str(size),
                       "--ops-per-worker", "2000")
        (after,), = primary.query(WAL)
        wal_rows.append((size, (after - before) / report["ops"]["ok"], load_rate(report)))
    # the server's side: the same 8,192-byte inserts by pgbench, copied from a table of
    # payloads made beforehand, one compressible (repeated), one not (digests)
    sources = {"ptor_shape_repeated": "repeat(md5(g::text), 256)",
               "ptor_shape_digests": "(SELECT string_agg(encode(sha512(convert_to(g::text || "
                                     "i, 'UTF8')), 'hex'), '') FROM generate_series(0, 63) i)"}
    tps = {}
    for source, value in sources.items():
        primary.query(f"DROP TABLE IF EXISTS {source}")
        primary.query(f"CREATE TABLE {source} AS SELECT g AS id, {value} AS p "
                      "FROM generate_series(1, 1000) g")
        script = ("\\set id random(1, 1000)\n"
                  "INSERT INTO ptor_shape (last_seq, payload, written_at) "
                  f"SELECT 1, p, now() FROM {source} WHERE id = :id;\n")
        tps[source] = pgbench_script_tps(lab, "ptor_shape", script, CLIENTS, SECONDS)
        primary.query(f"DROP TABLE {source}")
    tps_repeated, tps_digests = tps["ptor_shape_repeated"], tps["ptor_shape_digests"]
    # the worker's side: building one payload
    costs = {size: (timeit.timeit(lambda s=size: repeated("t", 1, 123456, s), number=5000)
                    / 5000, timeit.timeit(lambda s=size: payload("t", 1, 123456, s),
                                          number=5000) / 5000)
             for size in (64, 1024, 8192)}
    with capsys.disabled():
        print("\nWAL per acknowledged insert (insert-only, the test's pg_current_wal_lsn)")
        print(f"{'payload':>8} {'WAL bytes/op':>13} {'ops/s':>8} {'build µs, repeated':>19} "
              f"{'build µs, digests':>18}")
        for size, per_op, rate in wal_rows:
            old, new = costs[size]
            print(f"{size:8d} {per_op:13.0f} {rate:8.0f} {old * 1e6:19.2f} {new * 1e6:18.2f}")
        print(f"pgbench inserts of 8,192 bytes: repeated {tps_repeated:.0f} tps, digests "
              f"{tps_digests:.0f} tps (ratio {tps_digests / tps_repeated:.2f})")
    for size, per_op, _ in wal_rows:
        assert per_op >= size, (size, per_op)
