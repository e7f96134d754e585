"""pg_auto_failover with its standby far behind at the fault (issue: the RPO envelope): what
the manager does, measured, and how ptor reports it. The lab's replication is synchronous
(pg_auto_failover's default with two nodes), so a standby can only fall behind in replay:
it has flushed every acknowledged commit but not applied it (a slow disk, a long query
holding replay back, a delayed standby). The test makes that state deterministic by pausing
replay on the standby, writing 40 MiB of WAL of its own (logical decoding messages: WAL
records, no table), then loading the primary with incompressible 8 kB payloads and crashing
it. The backlog is there before ptor starts, so it does not depend on how fast a busy
machine runs the load before the fault. What pg_auto_failover does: it promotes the standby
anyway (the monitor judges candidates by the WAL they received, not replayed), and the
promotion ends the pause and replays the backlog first, so nothing acknowledged is lost and
the outage grows by the replay. ptor reports the backlog at the fault, held here against
the test's own reading: the promoted node's timeline switch point (where the old primary's
WAL ended) minus the replay position the standby was paused at."""

from ptor_harness.lab.base import wait_until

MIB = 1024 * 1024
BACKLOG = 40 * MIB  # written before the drill; the premise below asks for 32 MiB


def write_wal(node, start_lsn: str, amount: int) -> None:
    """Write WAL on `node` until its insert position is `amount` bytes past `start_lsn`:
    1 MiB logical messages (records only, which no table or slot keeps), the last one
    transactional, so its commit waits until the synchronous standby has flushed them all."""
    def behind() -> int:
        return node.query("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), "
                          f"'{start_lsn}')::bigint")[0][0]
    while behind() < amount:
        node.query("SELECT count(pg_logical_emit_message(false, 'ptor-test-backlog', "
                   "convert_to(repeat('x', 1048576), 'UTF8'))) FROM generate_series(1, 8)")
    node.query("SELECT pg_logical_emit_message(true, 'ptor-test-backlog', 'end')")


def lsn_bytes(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def test_auto_failover_promotes_a_standby_far_behind_in_replay_after_replaying(
        auto_failover_lab, run_ptor):
    lab = auto_failover_lab
    lab.wait_settled(120)
    old = lab.current_primary()
    standby = next(n for n in lab.data_nodes() if n.name != old.name)
    standby.query("SELECT pg_wal_replay_pause()")
    wait_until("replay paused on the standby", lambda: standby.query(
        "SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused", 30, 0.1)
    (paused_at,) = standby.query("SELECT pg_last_wal_replay_lsn()::text")[0]
    try:
        write_wal(old, paused_at, BACKLOG)
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers",
                       "2", "--payload-bytes", "8192", "--warmup-duration", "2",
                       "--duration", "60", "--fault", "kill-primary:6", "--lab-dir", lab.dir,
                       "--max-outage", "60", "--observe-after", "2",
                       "--full-data-validation", timeout=400)
    finally:  # should the manager not have promoted it, the standby replays again
        if standby.query("SELECT pg_is_in_recovery()")[0][0]:
            standby.query("SELECT pg_wal_replay_resume()")
    r = run.report
    assert run.code == 0 and r["verdict"] == "pass", run
    # the manager promoted the lagging standby, after replaying what it had received
    assert r["servers"]["primary_after"]["port"] == standby.port
    assert "standby promoted" in [e["name"] for e in r["anatomy"]["events"]]
    assert standby.query("SELECT pg_is_in_recovery()")[0][0] is False
    timeline = r["servers"]["primary_after"]["timeline"]
    history = standby.query(f"SELECT pg_read_file('pg_wal/{timeline:08X}.history')")[0][0]
    switch_point = lsn_bytes(history.strip().splitlines()[-1].split()[1])
    truth = switch_point - lsn_bytes(paused_at)
    assert truth > 32 * MIB, (truth, history)
    (own_view,) = [x for x in r["anatomy"]["replication_at_fault"]
                   if x["seen_by"] == "itself"]
    # the observer's last sample before the kill: at most its 0.1 s interval (and one
    # sample's lateness) of the load's WAL short of the end
    reported = own_view["replayed_bytes_behind"]
    assert truth - 8 * MIB <= reported <= truth, (reported, truth)
    # synchronous: every acknowledged commit was flushed on the standby, and replayed
    assert r["rpo"]["lost_acknowledged_ops"] == 0 and r["ops"]["ok"] > 0
    assert r["validation"]["completed"] and r["validation"]["checksum_mismatches"] == 0
    lab.wait_settled(120)  # the crashed node rejoined: the lab is left healthy
