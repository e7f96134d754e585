"""Reconciliation at scale (docs/design.md: 10 million ledger ops checked in under 30 s on a
2-core machine, memory flat). A synthetic run of N ops over 8 workers is written straight
into an embedded ledger, with an intent for every op as sync repo mode records it, and into
the lab primary's tables (SQL does it in seconds); then a fresh process does what the
coordinator does after a load (ANALYZE, the metrics pass beside the confirmation of the
primary and the streamed merge join, the higher half of the workers joined in a share
beside it) and reports its time and peak RSS (its own and its children's)."""

import multiprocessing
import os
import resource
import sqlite3
import time

from ptor_harness import db, schema
from ptor_harness.drill.metrics_pass import MetricsPass
from ptor_harness.drill.reconcile_share import ShareCheck, start_share
from ptor_harness.ledger import LedgerSpec
from ptor_harness.ledger.sqlite import SqliteLedger
from ptor_harness.verify.validation import confirm_primary, reconcile_run

SIZES = [int(n) for n in os.environ.get("PTOR_BENCH_RECONCILE_OPS",
                                        "1000000,10000000").split(",")]
WORKERS = 8
RUN = "bench"
PAYLOAD = 64


def build_ledger(path: str, ops: int) -> None:
    """Per worker: inserts of keys 1..n, then updates of every third key, all `ok`; each
    update replaced its key's insert (prev_seq = the insert's seq = the key)."""
    SqliteLedger(path, RUN).close()  # the real schema
    conn = sqlite3.connect(path)
    per_worker = ops // WORKERS
    inserts = per_worker * 3 // 4
    conn.execute("PRAGMA synchronous=OFF")
    for worker in range(WORKERS):
        conn.execute(f"""
            WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {inserts})
            INSERT INTO ledger_op SELECT '{RUN}', {worker}, n, 'I', n, n * 1e-4, n * 1e-4
              + 5e-4, 'ok', NULL, 1, 1, NULL FROM s""")
        conn.execute(f"""
            WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s
                                    WHERE n < {per_worker - inserts})
            INSERT INTO ledger_op SELECT '{RUN}', {worker}, {inserts} + n, 'U', n * 3,
              ({inserts} + n) * 1e-4, ({inserts} + n) * 1e-4 + 5e-4, 'ok', NULL, 1, 1, n * 3
              FROM s""")
        conn.execute(f"""
            INSERT INTO ledger_intent (run_id, worker, seq, kind, key)
            SELECT run_id, worker, seq, kind, key FROM ledger_op
            WHERE run_id = '{RUN}' AND worker = {worker}""")
        conn.commit()
    conn.close()


def build_primary(dsn: str, ops: int) -> None:
    """The rows those ops leave: every key, its last writer's seq and that op's payload
    (schema.payload_sql, as the full check recomputes it)."""
    per_worker = ops // WORKERS
    inserts = per_worker * 3 // 4
    conn = db.connect(dsn, "ptor-bench", 5.0, autocommit=False)
    schema.init_primary(conn, "ptor", WORKERS)
    with conn.cursor() as cur:
        for worker in range(WORKERS):
            table = schema.worker_table("ptor", worker)
            cur.execute(f"TRUNCATE {table}")
            cur.execute(f"""
                INSERT INTO {table} (id, last_seq, payload, written_at)
                SELECT id, last_seq, {schema.payload_sql(PAYLOAD)}, now()
                FROM (SELECT g AS id, CASE WHEN mod(g, 3) = 0 AND g / 3 <= {per_worker - inserts}
                                           THEN {inserts} + g / 3 ELSE g END AS last_seq
                      FROM generate_series(1, {inserts}) g) k,
                LATERAL {schema.PAYLOAD_BASE_SQL} p""",
                        {"tag": RUN, "worker": worker, "size": PAYLOAD})
    conn.commit()
    conn.close()


def reconcile_in_child(dsn: str, path: str, full: bool, out) -> None:
    started = time.monotonic()
    spec = LedgerSpec(RUN, None, "ptor", path, True)
    ledger = spec.open()
    ledger.analyze()
    ops = ledger.count("ledger_op")
    metrics = MetricsPass(spec, ledger, WORKERS, 1, ops)
    confirmed = confirm_primary([("endpoint", dsn)], "ptor", 5.0, time.monotonic() + 30, 0.0)
    conn = confirmed.conn
    share = start_share(conn, ShareCheck(spec, confirmed.dsn, 5.0, 0.0, "ptor",
                                         list(range(WORKERS // 2, WORKERS)), RUN, PAYLOAD,
                                         full, [], confirmed.identity, False, 1), ops)
    findings = reconcile_run(conn, ledger, "ptor", WORKERS, RUN, PAYLOAD, full, [],
                             confirmed.identity, share=share)
    conn.close()
    ok = sum(w.ok for w in metrics.result().workers.values())
    ledger.close()
    rss = max(resource.getrusage(who).ru_maxrss
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    out.put((time.monotonic() - started, rss, findings.keys_checked, findings.lost_total,
             findings.mismatched_rows, ok))


def measure(dsn: str, path: str, full: bool) -> tuple:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=reconcile_in_child, args=(dsn, path, full, out))
    child.start()
    result = out.get(timeout=1800)
    child.join()
    return result


def test_reconciliation_scales_flat(bench_lab, tmp_path, capsys):
    dsn = bench_lab.primary_dsn()
    results = []
    for ops in SIZES:
        path = str(tmp_path / f"ledger-{ops}.sqlite")
        started = time.monotonic()
        build_ledger(path, ops)
        build_primary(dsn, ops)
        built = time.monotonic() - started
        for full in (False, True):
            seconds, rss_kb, keys, lost, mismatched, ok = measure(dsn, path, full)
            assert lost == 0 and mismatched == 0 and ok == ops // WORKERS * WORKERS
            assert keys == (ops // WORKERS) * 3 // 4 * WORKERS
            results.append((ops, full, seconds, rss_kb / 1024, built))
        os.remove(path)
    with capsys.disabled():
        print(f"\nreconciliation, {WORKERS} workers, embedded ledger, 2-core machine")
        print(f"{'ledger ops':>12} {'check':>6} {'seconds':>8} {'peak RSS MiB':>13} "
              f"{'(data built in)':>16}")
        for ops, full, seconds, rss, built in results:
            print(f"{ops:12,} {'full' if full else 'quick':>6} {seconds:8.1f} {rss:13.0f} "
                  f"{built:15.0f}s")
    biggest = [r for r in results if r[0] == max(SIZES)]
    smallest = [r for r in results if r[0] == min(SIZES)]
    if max(SIZES) >= 10_000_000:  # both the default (quick) and the full check
        assert all(r[2] < 30 for r in biggest), "10 million ops in under 30 s"
    if max(SIZES) > min(SIZES):
        assert max(r[3] for r in biggest) < 1.5 * max(r[3] for r in smallest), \
            "peak memory must not grow with the ledger"
