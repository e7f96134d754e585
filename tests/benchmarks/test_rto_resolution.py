"""RTO resolution (DESIGN.md: within 100 ms of an independent 10 ms probe of the same
outage). While ptor drills a kill of the primary, a probe of its own (one thread, its own
table, one INSERT every 10 ms through the same DSN, reconnecting at once) logs every
attempt; the probe's outage is its longest gap between two ok writes."""

import os
import threading
import time

import psycopg2

from .conftest import run_ptor

ROUNDS = int(os.environ.get("PTOR_BENCH_RTO_ROUNDS", "3"))


class Probe(threading.Thread):
    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.ok_at: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        conn = None
        while not self.stopped.is_set():
            started = time.time()
            try:
                if conn is None:
                    conn = psycopg2.connect(self.dsn, connect_timeout=2,
                                            application_name="ptor-bench-probe")
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO ptor_probe (at) VALUES (now())")
                self.ok_at.append(time.time())
            except psycopg2.Error:
                if conn is not None:
                    conn.close()
                conn = None
            self.stopped.wait(max(0.0, 0.01 - (time.time() - started)))

    def outage(self) -> float:
        return max(b - a for a, b in zip(self.ok_at, self.ok_at[1:]))


def test_write_rto_matches_an_independent_probe(bench_lab, tmp_path, capsys):
    lab = bench_lab
    results = []
    for _ in range(ROUNDS):
        lab.reload()  # the previous round's fault moved the primary
        lab.nodes[lab.named("primary")].query(
            "CREATE TABLE IF NOT EXISTS ptor_probe (id bigserial PRIMARY KEY, at timestamptz)")
        probe = Probe(lab.primary_dsn())
        probe.start()
        report = run_ptor(tmp_path, "--primary-pgdsn", lab.primary_dsn(), "--init",
                          "--parallel-workers", "4", "--warmup-duration", "2",
                          "--duration", "30", "--observe-after", "2", "--lab-dir", lab.dir,
                          "--fault", "kill-primary:2")
        probe.stopped.set()
        probe.join()
        assert report["verdict"] == "pass", report["verdict_reasons"]
        results.append((report["rto"]["write_seconds"], probe.outage()))
    with capsys.disabled():
        print("\nRTO resolution: ptor's write RTO against a 10 ms probe of the same outage")
        print(f"{'ptor write RTO':>15} {'probe outage':>13} {'difference':>11}")
        for rto, probed in results:
            print(f"{rto:14.3f}s {probed:12.3f}s {abs(rto - probed):10.3f}s")
    assert all(abs(rto - probed) <= 0.1 for rto, probed in results)
