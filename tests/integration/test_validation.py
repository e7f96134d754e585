"""A check that cannot finish is never a pass: the primary vanishes mid-validation."""

import signal
import time

import pytest

from ptor_harness import db, schema
from ptor_harness.ops import INSERT
from ptor_harness.verify.validation import (
    ValidationIncomplete,
    again_while_interrupted,
    confirm_primary,
    reconcile_run,
)

from ..unit.synthetic import op


class OneInsertEach:
    """A ledger of two workers, one acknowledged insert each."""

    def ops_by_key(self, worker):
        return [op(1, INSERT, 1, 1.0, worker=worker)]


class LedgerThatOutlivesThePrimary:
    """A ledger of two workers, one insert each; reading worker 1's ops kills the primary,
    so the check dies half way through (between the two workers' row streams)."""

    def __init__(self, primary_node) -> None:
        self.node = primary_node

    def ops_by_key(self, worker):
        if worker == 1:
            self.node.kill(signal.SIGKILL)
        return [op(1, INSERT, 1, 1.0, worker=worker)]


class LedgerThatBreaksTheCheckOnce:
    """Reading worker 1's ops the first time, the server ends the check's session (as a
    manager restarting the node it promoted does): the next read on it fails."""

    def __init__(self, primary_node) -> None:
        self.node, self.broken = primary_node, False

    def ops_by_key(self, worker):
        if worker == 1 and not self.broken:
            self.broken = True
            (ended,) = self.node.query(
                "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                "WHERE application_name = 'ptor-validation'")[0]
            assert ended == 1
        return [op(1, INSERT, 1, 1.0, worker=worker)]


def two_workers_one_row_each(lab) -> None:
    conn = db.connect(lab.primary_dsn(), "ptor-test", 2.0, autocommit=False)
    schema.init_primary(conn, "ptor", 2)
    with conn.cursor() as cur:
        for worker in range(2):
            cur.execute(f"INSERT INTO {schema.worker_table('ptor', worker)} "
                        "(id, last_seq, payload, written_at) VALUES (1, 1, 'x', now())")
    conn.commit()
    conn.close()


def check_once(lab, ledger, statement_timeout: float = 5.0):
    """Confirm the primary and reconcile the two workers' ledgers with it."""
    confirmed = confirm_primary([("endpoint", lab.primary_dsn())], "ptor", 2.0,
                                time.monotonic() + 10, statement_timeout)
    try:
        return reconcile_run(confirmed.conn, ledger, "ptor", 2, "run", 64, False, [])
    finally:
        confirmed.conn.close()


def test_primary_vanishing_mid_check_makes_validation_incomplete(make_lab):
    lab = make_lab("sync")
    two_workers_one_row_each(lab)
    ledger = LedgerThatOutlivesThePrimary(lab.nodes["node1"])
    with pytest.raises(ValidationIncomplete, match="reading the primary failed mid-check") \
            as raised:
        check_once(lab, ledger)
    assert raised.value.interrupted  # the server went away: worth starting again


def test_a_check_the_server_broke_off_runs_again_to_the_end(make_lab):
    lab = make_lab("sync")
    two_workers_one_row_each(lab)
    ledger, interrupted = LedgerThatBreaksTheCheckOnce(lab.nodes["node1"]), []
    findings = again_while_interrupted(lambda: check_once(lab, ledger), 3, interrupted, str)
    assert len(interrupted) == 1 and "mid-check" in interrupted[0], interrupted
    assert findings.keys_checked == 2 and findings.lost_total == 0


def test_a_check_that_times_out_is_not_started_again(make_lab):
    """A statement timeout would recur: the check ends incomplete at once."""
    lab = make_lab("sync")
    two_workers_one_row_each(lab)
    holder = db.connect(lab.primary_dsn(), "ptor-test", 2.0, autocommit=False)
    try:
        with holder.cursor() as cur:
            cur.execute(f"LOCK TABLE {schema.worker_table('ptor', 1)} IN ACCESS EXCLUSIVE MODE")
        interrupted, attempts = [], []

        def attempt():
            attempts.append(1)
            return check_once(lab, OneInsertEach(), statement_timeout=1.0)

        with pytest.raises(ValidationIncomplete, match="mid-check") as raised:
            again_while_interrupted(attempt, 3, interrupted, str)
        assert not raised.value.interrupted and interrupted == [] and len(attempts) == 1
    finally:
        holder.close()


def test_the_full_check_finds_a_payload_no_op_wrote(make_lab, run_ptor):
    """The full check compares every row's payload, on the server, with the one its
    last_seq's op wrote: a real drill's rows all match; one tampered row is found, and
    only by the full check."""
    import glob
    import os

    from ptor_harness.ledger import LedgerSpec

    lab = make_lab("sync")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "2",
                   "--warmup-duration", "0", "--ops-per-worker", "400", "--duration", "60",
                   "--full-data-validation", "--expect", "any")
    assert run.code == 0, run
    r = run.report
    assert r["validation"]["mode"] == "full" and r["validation"]["checksum_mismatches"] == 0
    node = lab.nodes[lab.named("primary")]
    table = schema.worker_table("ptor", 1)
    (key, last_seq), = node.query(f"SELECT id, last_seq FROM {table} ORDER BY id LIMIT 1")
    node.query(f"UPDATE {table} SET payload = overlay(payload placing '#' from 1 for 1) "
               "WHERE id = %s", (key,))
    (path,) = glob.glob(os.path.join(run.out_dir, "*", "ledger.sqlite"))
    ledger = LedgerSpec(r["run_id"], None, "ptor", path, True).open()
    conn, _, _, _ = confirm_primary([("endpoint", lab.primary_dsn())], "ptor", 2.0,
                                 time.monotonic() + 10, 5.0)
    try:
        size = r["scenario"]["payload_bytes"]
        full = reconcile_run(conn, ledger, "ptor", 2, r["run_id"], size, True, [])
        quick = reconcile_run(conn, ledger, "ptor", 2, r["run_id"], size, False, [])
    finally:
        conn.close()
        ledger.close()
    assert full.checksum_mismatches == 1 and full.mismatched_rows == 1
    assert full.checksum_examples == [{"worker": 1, "key": key, "last_seq": last_seq}]
    assert quick.checksum_mismatches == 0 and quick.mismatched_rows == 0


def test_the_servers_payload_rule_is_the_workers(make_lab):
    """The full check rebuilds each row's payload in SQL (schema.payload_sql); it must be
    byte for byte the one the worker wrote (schema.payload), for short and long payloads,
    sizes that are and are not a multiple of the pattern, and large seqs."""
    lab = make_lab("sync")
    conn = db.connect(lab.primary_dsn(), "ptor-test", 2.0)
    cases = [("20261126T101010Z-abcdef", w, seq, size) for w in (0, 7, 511)
             for seq in (1, 42, 9_999_999_999)
             for size in (16, 31, 64, 100, 127, 128, 129, 4096, 8192)]
    cases.append(("20261126T101010Z-abcdef", 3, 5, 1024 * 1024))  # the largest allowed
    with conn.cursor() as cur:
        for tag, worker, seq, size in cases:
            cur.execute(f"SELECT {schema.payload_sql(size)} FROM (VALUES (%(seq)s::bigint)) "
                        f"v(last_seq), LATERAL {schema.PAYLOAD_BASE_SQL} p",
                        {"tag": tag, "worker": worker, "seq": seq, "size": size})
            assert cur.fetchone()[0] == schema.payload(tag, worker, seq, size), \
                (worker, seq, size)
    conn.close()


@pytest.mark.parametrize("size", [64, 1024, 8192])
def test_each_op_writes_at_least_its_payload_in_wal(make_lab, run_ptor, size):
    """The payload does not compress: the primary's WAL grows by at least --payload-bytes
    per acknowledged INSERT (measured by the test, pg_current_wal_lsn before and after;
    a repeated pattern wrote 297 bytes of WAL per 8,192-byte op)."""
    lab = make_lab("async")
    primary = lab.nodes[lab.named("primary")]
    common = ["--primary-pgdsn", lab.primary_dsn(), "--parallel-workers", "2",
              "--warmup-duration", "0", "--insert-percent", "100", "--update-percent", "0",
              "--delete-percent", "0", "--expect", "any"]
    assert run_ptor(*common, "--init", "--ops-per-worker", "10").code == 0
    lsn = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8"
    (before,), = primary.query(lsn)
    run = run_ptor(*common, "--ops-per-worker", "400", "--payload-bytes", str(size),
                   "--full-data-validation")
    (after,), = primary.query(lsn)
    assert run.code == 0, run
    acknowledged = run.report["ops"]["ok"]
    assert acknowledged == 800 and run.report["validation"]["mismatched_rows"] == 0
    assert (after - before) / acknowledged >= size, (after - before) / acknowledged


def test_a_node_of_another_cluster_is_never_the_truth(make_lab):
    """Where the endpoint leads to a standby, a node the observer watches may stand in,
    but only one of the cluster the drill wrote to (its system identifier)."""
    lab, other = make_lab("sync"), make_lab("sync")
    standby = ("endpoint", lab.nodes["node2"].dsn())
    system = lab.nodes["node1"].query(
        "SELECT system_identifier::text FROM pg_control_system()")[0][0]
    conn = db.connect(lab.nodes["node1"].dsn(), "ptor-test", 2.0)
    schema.init_primary(conn, "ptor", 1)
    conn.close()
    with pytest.raises(ValidationIncomplete, match="node9 is not of the cluster"):
        confirm_primary([standby, ("node9", other.nodes["node1"].dsn())], "ptor", 2.0,
                        time.monotonic() + 1, 5.0, system)
    conn, identity, label, _ = confirm_primary(
        [standby, ("node9", other.nodes["node1"].dsn()), ("node1", lab.nodes["node1"].dsn())],
        "ptor", 2.0, time.monotonic() + 5, 5.0, system)
    conn.close()
    assert (label, identity.port, identity.system_id) == ("node1", lab.nodes["node1"].port,
                                                          system)


def test_a_stale_primary_is_never_the_truth(make_lab):
    """The old primary still accepts writes after the standby was promoted (thawed from a
    freeze, or not yet fenced): on an older timeline than the one the workers wrote to, it
    is refused while a grace lasts, and the promoted node is read instead."""
    lab = make_lab("sync")
    old, new = lab.nodes["node1"], lab.nodes["node2"]
    conn = db.connect(old.dsn(), "ptor-test", 2.0)
    schema.init_primary(conn, "ptor", 1)
    conn.close()
    old.query("ALTER SYSTEM RESET synchronous_standby_names")
    old.query("SELECT pg_reload_conf()")
    lab.promote(new)  # two primaries: node1 on timeline 1, node2 on timeline 2
    system = old.query("SELECT system_identifier::text FROM pg_control_system()")[0][0]
    conn, identity, label, _ = confirm_primary(
        [("endpoint", old.dsn()), ("node2", new.dsn())], "ptor", 2.0, time.monotonic() + 5,
        5.0, system, 2)
    conn.close()
    assert (label, identity.port, identity.timeline) == ("node2", new.port, 2)
    # a cluster still on the older timeline after the grace (here 2 s of a 4 s budget) is
    # read as it is, and says so
    started = time.monotonic()
    conn, identity, label, _ = confirm_primary([("endpoint", old.dsn())], "ptor", 2.0,
                                            time.monotonic() + 4, 5.0, system, 2)
    conn.close()
    assert time.monotonic() - started >= 2.0  # refused while the grace lasted
    assert identity.timeline == 1 and label == (
        "endpoint (timeline 1: the cluster went back from timeline 2, which the workers "
        "wrote to)")
