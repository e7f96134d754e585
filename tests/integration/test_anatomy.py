"""The failover's anatomy on a real streaming pair, checked against the test's own
observations; the lag at the fault against the test's own WAL sampling; an observer whose
nodes are unreachable or lack privileges."""

import os
import sqlite3
import sys
import time

import pytest

from .anatomy_checks import (
    CANONICAL,
    StandbyWatcher,
    check_against_own_observations,
    check_in_order,
    check_rejoin,
)
from .groundtruth import WalSampler


def test_kill_primary_anatomy_event_by_event(make_lab, run_ptor):
    lab = make_lab("sync")
    old = lab.nodes[lab.named("primary")]
    new = lab.nodes[lab.named("standby")]
    with StandbyWatcher(new, old) as watcher:
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers",
                       "3", "--warmup-duration", "1.5", "--duration", "60", "--observe-after",
                       "6", "--lab-dir", lab.dir, "--fault", "kill-primary:1")
    assert run.code == 0, run
    r = run.report
    check_in_order(r, CANONICAL)
    check_against_own_observations(r, new, r["run_dir"])
    check_rejoin(r, watcher)  # the old primary streaming from the new one again
    a = r["anatomy"]
    assert (a["old_primary"], a["new_primary"]) == (old.name, new.name)
    parts = a["detection_seconds"] + a["promotion_seconds"] + a["held_seconds"] + \
        a["routing_seconds"] + a["first_commit_seconds"]  # the sessions are known
    assert parts == pytest.approx(r["rto"]["injection_to_first_ok_seconds"], abs=0.001)
    assert 0 <= a["first_commit_seconds"] < 0.5  # a standby was streaming: no long wait
    assert a["replication_at_fault"][0]["sync_state"] == "sync"
    assert a["two_primaries"] == []
    assert r["rto"]["service_available_seconds"] is not None
    assert r["rto"]["sla_percent"] > 99.99
    assert r["rpo"]["lost_bytes"] == 0
    assert r["nodes"]["observer"] == "on" and r["nodes"]["samples_dropped"] == 0
    assert set(r["nodes"]["lanes"]) == {old.name, new.name, "endpoint"}
    assert [s["state"] for s in r["nodes"]["lanes"][old.name]][:2] == ["primary",
                                                                      "unreachable"]


THRESHOLD = 2_000_000  # bytes; the load below writes megabytes a second


def test_lag_at_the_fault_matches_the_wal_distance_the_test_measures(make_lab, run_ptor):
    """An asynchronous standby whose replay is paused falls behind by every byte the load
    writes: the lag ptor reports at the fault is within 10 % of the distance between the
    primary's WAL position (sampled by the test every 10 ms) and the standby's paused
    replay position (read by the test)."""
    lab = make_lab("async")
    primary = lab.nodes[lab.named("primary")]
    standby = lab.nodes[lab.named("standby")]
    run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "4",
             "--warmup-duration", "0", "--ops-per-worker", "10", "--expect", "any")
    standby.query("SELECT pg_wal_replay_pause()")
    deadline = time.monotonic() + 30  # the pause takes effect between records
    while standby.query("SELECT pg_get_wal_replay_pause_state()") != [("paused",)]:
        assert time.monotonic() < deadline, "the standby's replay never paused"
        time.sleep(0.01)
    (replayed,) = standby.query("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8")[0]
    sampler = WalSampler(primary)
    sampler.start()
    try:
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--parallel-workers", "4",
                       "--payload-bytes", "8192", "--warmup-duration", "1", "--duration",
                       "4", "--failover-command", "true", "--failover-after", "3",
                       "--expect", "any", "--standby-lag-threshold", str(THRESHOLD))
    finally:
        sampler.stop.set()
        sampler.join()
        standby.query("SELECT pg_wal_replay_resume()")
    assert run.code == 0, run
    seen = next(x for x in run.report["anatomy"]["replication_at_fault"]
                if x["seen_by"].startswith("primary"))
    truth = sampler.at(seen["at"]) - replayed
    assert truth > 1_000_000  # a megabyte or more behind: the check means something
    assert seen["replayed_bytes_behind"] == pytest.approx(truth, rel=0.10)
    # the primary's WAL rate over the load, against the test's own samples of its LSN
    phases = run.report["phases"]
    truth_rate = (sampler.at(phases["drain"]) - sampler.at(phases["warmup"])) / (
        phases["drain"] - phases["warmup"])
    assert truth_rate > 1_000_000  # megabytes a second: 8 KiB payloads that do not compress
    assert run.report["load"]["wal_bytes_per_second"] == pytest.approx(truth_rate, rel=0.10)
    itself = next(x for x in run.report["anatomy"]["replication_at_fault"]
                  if x["seen_by"] == "itself")
    assert itself["replayed_bytes_behind"] == pytest.approx(sampler.at(itself["at"]) -
                                                            replayed, rel=0.10)
    # the standby passed the threshold once, between two of the primary's samples, as the
    # test's own WAL samples put the crossing; it never caught up (its replay was paused)
    lagging = [e for e in run.report["anatomy"]["events"]
               if e["name"].startswith("standby lag")]
    assert [e["name"] for e in lagging] == ["standby lag above the threshold"], lagging
    (event,) = lagging
    assert sampler.at(event["at"]) - replayed > THRESHOLD * 0.9
    assert sampler.at(event["after"]) - replayed < THRESHOLD * 1.1


def test_unreachable_and_unprivileged_nodes_change_nothing_but_say_so(make_lab, run_ptor):
    """One node that never answers, one reached as a role without pg_monitor: the drill's
    figures are whole (pass, nothing lost), the unreachable node's samples all say so,
    and the report names the privilege that would fill the unknown fields."""
    import socket

    lab = make_lab("sync")
    primary = lab.nodes[lab.named("primary")]
    primary.query("CREATE ROLE watcher LOGIN")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(10)
    dead_port = silent.getsockname()[1]
    dead = f"host=127.0.0.1 port={dead_port} dbname=postgres user=x"
    watcher = f"host=127.0.0.1 port={primary.port} dbname=postgres user=watcher"
    try:
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers",
                       "2", "--warmup-duration", "0.5", "--duration", "3", "--expect", "any",
                       "--node-dsn", dead, "--node-dsn", watcher)
    finally:
        silent.close()
    assert run.code == 0, run
    r = run.report
    assert r["verdict"] == "pass" and r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["ops"]["ok"] > 0
    nodes = r["nodes"]["nodes"]
    dead_name = f"127.0.0.1:{dead_port}"
    assert nodes[dead_name]["samples"] > 5 and nodes[dead_name]["reachable"] == 0
    assert "timed out" in nodes[dead_name]["never_reached"]
    watched = nodes[f"127.0.0.1:{primary.port}"]
    assert watched["reachable"] > 5 and watched["pg_monitor"] is False
    assert "pg_monitor" in r["nodes"]["unknown_fields"]
    assert f"127.0.0.1:{primary.port}" in r["nodes"]["unknown_fields"]


def test_an_endpoint_left_on_the_demoted_node_is_stale_routing(make_lab, run_ptor):
    """A DSN fixed on the old primary (no target_session_attrs, as a pooler or a static
    config would leave clients): after the kill the node comes back as a standby and every
    session the workers open there lands on it. The drill does not hang: it fails when
    writes stay away past --max-outage, and reports the stale routing and its length."""
    lab = make_lab("sync")
    old = lab.nodes[lab.named("primary")]
    started = time.monotonic()
    run = run_ptor("--primary-pgdsn", old.dsn(), "--init", "--parallel-workers", "2",
                   "--warmup-duration", "1", "--duration", "60", "--max-outage", "8",
                   "--lab-dir", lab.dir, "--fault", "kill-primary:1")
    assert time.monotonic() - started < 60
    r = run.report
    assert run.code == 1 and r["verdict"] == "fail", run
    assert r["rto"]["recovered"] is False
    stale = r["anatomy"]["stale_routing"]
    assert stale["standby_sessions"] > 0 and stale["seconds"] > 1.0, stale
    assert "Stale routing" in run.stdout


READ_ONLY_FOR_TWO_SECONDS = """
import sys, time, psycopg2
conn = psycopg2.connect(sys.argv[1]); conn.autocommit = True; cur = conn.cursor()
cur.execute("ALTER SYSTEM SET default_transaction_read_only = on")
cur.execute("SELECT pg_reload_conf()"); on = time.time()
cur.execute("SET default_transaction_read_only = off")  # this session, to undo it
time.sleep(2)
cur.execute("ALTER SYSTEM RESET default_transaction_read_only")
cur.execute("SELECT pg_reload_conf()"); off = time.time()
open(sys.argv[2], "w").write(f"{on} {off}")
"""


def test_a_primary_held_read_only_is_not_stale_routing(make_lab, run_ptor, tmp_path):
    """The primary set read-only for 2 s under the load (default_transaction_read_only, as
    pg_auto_failover sets it on a node it promotes, or an operator or a provider's
    full-disk guard would), no failover: the writes it refused are the primary's own,
    between the test's own times of the change and of its undoing, as many as the test
    counts in the ledger; none is called stale routing, and the account says why writes
    failed."""
    lab = make_lab("sync")
    primary = lab.nodes[lab.named("primary")]
    script, times = tmp_path / "read_only.py", tmp_path / "times"
    script.write_text(READ_ONLY_FOR_TWO_SECONDS)
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "3",
                   "--warmup-duration", "1", "--duration", "6", "--expect", "any",
                   "--failover-after", "1", "--failover-command",
                   f"{sys.executable} {script} '{primary.dsn()}' {times}")
    r = run.report
    on, off = map(float, times.read_text().split())
    with sqlite3.connect(os.path.join(r["run_dir"], "ledger.sqlite")) as ledger:
        (refused,) = ledger.execute("SELECT count(*) FROM ledger_op WHERE outcome = 'failed' "
                                    "AND error LIKE '25006:%'").fetchone()
    held, stale = r["anatomy"]["refused_by_primary"], r["anatomy"]["stale_routing"]
    # a worker whose write was refused leaves the read-only server and waits for a
    # writable one: a refusal or so a worker
    assert refused >= 1 and held["refused_writes"] == refused, (held, refused)
    assert on - 0.05 <= held["first_at"] <= held["last_at"] <= off + 0.5, (held, on, off)
    assert off - on - 0.1 <= r["rto"]["write_seconds"] <= off - on + 1.0, (r["rto"], on, off)
    assert stale["refused_writes"] == 0 and stale["standby_sessions"] == 0, stale
    assert "Stale routing" not in run.stdout and "Read-only primary" in run.stdout
    assert "the primary itself refused writes as read-only" in " ".join(r["account"])
    assert r["servers"]["primary_after"]["port"] == primary.port
    assert run.code == 0 and r["rto"]["recovered"], run


def test_the_anatomy_starts_before_the_fault(make_lab, run_ptor):
    """The synchronous standby crashes 4 s before the primary is killed, and the commits
    waiting for it are cancelled meanwhile: the anatomy shows the standby stopping before
    the fault (within the observer's sampling of the lab's own crash), says that no standby
    was streaming at the fault and since when, and the account says it first."""
    lab = make_lab("sync")
    # a warmup holding whole seconds: the brownout's baseline (a 1 s warmup has none)
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "3",
                   "--warmup-duration", "3", "--duration", "30", "--observe-after", "2",
                   "--lab-dir", lab.dir,
                   "--fault", "stop-sync-standby:1, cancel-sync-waits=2:2, kill-primary:5")
    r = run.report
    stop, _cancel, kill = r["faults"]
    assert kill["name"] == "kill-primary" and r["rto"]["detection_seconds"] < 1, r["faults"]
    stopped = [e for e in r["anatomy"]["events"] if e["name"] == "standby stopped streaming"
               and e["at"] < kill["started_at"]]
    assert stopped, r["anatomy"]["events"]
    # the crash, as the lab did it, and the primary's first sample without the standby
    assert stop["started_at"] <= stopped[-1]["at"] <= stop["ended_at"] + 2.0
    assert r["anatomy"]["no_standby_since"] == stopped[-1]["at"]
    assert r["anatomy"]["replication_at_fault"] == [] or all(
        row["seen_by"] == "itself" for row in r["anatomy"]["replication_at_fault"])
    before = -stopped[-1]["seconds_after_fault"]
    assert r["account"][0].startswith(f"{before:.2f} s before the fault the primary lost a "
                                      "standby"), r["account"]
    assert "no standby was streaming" in r["account"][0]
    # the commits waiting for the stopped standby: a stall before the fault, starting once
    # the standby was stopped and before the cancel, in a second the test's own count of
    # the ledger's acknowledgements finds below half the second before the stop
    stalls = [e for e in r["anatomy"]["events"] if e["name"] == "commits stalled"
              and int(stop["started_at"]) <= e["at"] <= _cancel["started_at"]]
    assert stalls, (r["anatomy"]["events"], r["faults"])
    start = stalls[0]["at"]
    with sqlite3.connect(os.path.join(r["run_dir"], "ledger.sqlite")) as ledger:
        def acked(since: float, until: float) -> int:
            return ledger.execute("SELECT count(*) FROM ledger_op WHERE outcome = 'ok' AND "
                                  "t_end >= ? AND t_end < ?", (since, until)).fetchone()[0]
        healthy = acked(stop["started_at"] - 1, stop["started_at"])
        assert healthy > 50 and acked(start, start + 1) < 0.5 * healthy
    assert r["account"][1].startswith("Before the fault: commits stalled "), r["account"]
    assert all(e["seconds_after_fault"] < 0 for e in stalls)
