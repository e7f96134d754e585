"""RTO resolution: ptor's write RTO against an independent 10 ms probe of the same outage,
for outages of 0.1 s, 3 s and 10 s (issue #17: mean difference <= 20 ms, worst <= 40 ms at
every length, at most 100 connection attempts a second from ptor during the outage).

While ptor drills, a probe of the benchmark's own (not ptor's code: one thread, its own
table, one INSERT every 10 ms through the same DSN; after a failure it reconnects at once,
with no pause, as fast as connections are refused) logs every ok write; its outage is its
longest gap between two. Outages: the lab's kill-primary (kill and
promote at once, about 0.1 s), and a kill with the promotion 3 s or 10 s later (the old
primary is then rewound and rejoined for the next round)."""

import os
import statistics
import sys
import threading
import time

import psycopg2

from .conftest import run_ptor

ROUNDS = int(os.environ.get("PTOR_BENCH_RTO_ROUNDS", "3"))
OUTAGES = [float(x) for x in os.environ.get("PTOR_BENCH_RTO_OUTAGES", "0,3,10").split(",")]
WORKERS = int(os.environ.get("PTOR_BENCH_RTO_WORKERS", "4"))


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
                continue  # reconnect at once: no pause after a failure
            self.stopped.wait(max(0.0, 0.01 - (time.time() - started)))

    def outage(self) -> float:
        return max(b - a for a, b in zip(self.ok_at, self.ok_at[1:]))


def lab_cli(lab, *args: str) -> str:
    return " ".join([sys.executable, "-m", "ptor_harness.lab.cli", args[0], "--dir", lab.dir,
                     *args[1:]])


def ensure_pair(lab) -> tuple:
    """The primary and a streaming synchronous standby. A rewound old primary that cannot
    follow the new timeline (it wrote WAL past the fork point) is cloned afresh."""
    from ptor_harness.lab.pg import LabError

    lab.reload()  # the previous round moved the primary
    old, new = lab.named("primary"), lab.named("standby")
    primary, standby = lab.nodes[old], lab.nodes[new]
    try:
        lab.wait_replication(primary, "sync", timeout=15)
        replays(primary)
    except LabError:
        standby.stop()
        lab.clone(standby, primary)
        standby.start()
        lab.attach_standby(primary)
        replays(primary)
    return old, new


def replays(primary, timeout: float = 10.0) -> None:
    """The standby replays what the primary writes now (streaming alone can be a moment
    before it finds it cannot follow): a write that does not wait for it, then its replay
    position, or LabError."""
    from ptor_harness.lab.base import wait_until

    conn = primary.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = local")
            cur.execute("CREATE TABLE IF NOT EXISTS ptor_probe (id bigserial PRIMARY KEY, "
                        "at timestamptz)")
            cur.execute("INSERT INTO ptor_probe (at) VALUES (now())")
            cur.execute("SELECT pg_current_wal_lsn()::text")
            lsn = cur.fetchone()[0]
    finally:
        conn.close()
    wait_until("the standby to replay", lambda: primary.query(
        "SELECT 1 FROM pg_stat_replication WHERE replay_lsn >= %s::pg_lsn", (lsn,)),
        timeout, 0.05)


def one_round(lab, tmp_path, delay: float) -> tuple:
    old, new = ensure_pair(lab)
    lab.nodes[old].query(
        "CREATE TABLE IF NOT EXISTS ptor_probe (id bigserial PRIMARY KEY, at timestamptz)")
    if delay:
        fault = ["--failover-command", f"{lab_cli(lab, 'stop-node', old)} && sleep {delay:g} "
                 f"&& {lab_cli(lab, 'failover')}", "--failover-after", "2"]
    else:
        fault = ["--lab-dir", lab.dir, "--fault", "kill-primary:2"]
    probe = Probe(lab.primary_dsn())
    probe.start()
    report = run_ptor(tmp_path, "--primary-pgdsn", lab.primary_dsn(), "--init",
                      "--parallel-workers", str(WORKERS), "--warmup-duration", "2",
                      "--duration", "60", "--observe-after", "2", *fault)
    probe.stopped.set()
    probe.join()
    if delay:  # rewind the old primary and rejoin it, so the next round has a pair again
        lab.reload()
        lab.rejoin(lab.nodes[old], lab.nodes[new])
        lab.set_role(old, "standby")
        lab.save()
    assert report["verdict"] == "pass", report["verdict_reasons"]
    (window,) = [w for w in report["windows"] if w["write_rto_seconds"] is not None
                 and w["write_rto_seconds"] == report["rto"]["write_seconds"]]
    return (report["rto"]["write_seconds"], probe.outage(), report["rto"]["probe_seconds"],
            window["connect_attempts_per_second"])


def test_write_rto_matches_an_independent_probe(bench_lab, tmp_path, capsys):
    lab = bench_lab
    results = {delay: [one_round(lab, tmp_path, delay) for _ in range(ROUNDS)]
               for delay in OUTAGES}
    with capsys.disabled():
        print(f"\nRTO resolution: ptor's write RTO ({WORKERS} workers) against an independent "
              "10 ms write probe of the same outage")
        print(f"{'promotion delay':>15} {'ptor RTO':>9} {'probe':>8} {'diff':>7} "
              f"{'ptor probe':>11} {'attempts/s':>11}")
        for delay, rows in results.items():
            for rto, probed, own, attempts in rows:
                print(f"{delay:14g}s {rto:8.3f}s {probed:7.3f}s {(rto - probed) * 1000:5.0f}ms "
                      f"{own if own is None else round(own, 3)!s:>11} {attempts:11.1f}")
            diffs = [abs(rto - probed) for rto, probed, _own, _a in rows]
            print(f"{'':>15} mean difference {statistics.mean(diffs) * 1000:.0f} ms, worst "
                  f"{max(diffs) * 1000:.0f} ms")
    for delay, rows in results.items():
        diffs = [abs(rto - probed) for rto, probed, _own, _a in rows]
        assert statistics.mean(diffs) <= 0.020, f"mean difference above 20 ms ({delay:g} s)"
        assert max(diffs) <= 0.040, f"a difference above 40 ms ({delay:g} s)"
        assert all(attempts <= 100 for _r, _p, _o, attempts in rows), \
            f"more than 100 connection attempts a second ({delay:g} s)"
