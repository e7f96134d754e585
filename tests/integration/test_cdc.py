"""--cdc-slot on real servers: ptor's consumer reads a logical slot beside the load, and the
report says whether the slot survived the failover and which acknowledged changes the
consumer missed. The expected figures come from the test's own SQL over the ledger's raw
records (ops and received changes) and from the new primary's rows, never from ptor's
CDC check (verify/cdc.py)."""

import os
import re
import sqlite3

import psycopg2
import pytest

from ptor_harness.lab import cdc as lab_cdc
from ptor_harness.lab.patroni import PatroniLab
from ptor_harness.lab.repmgr import RepmgrLab

from .conftest import free_port_base, lab_dir, remove_lab
from .groundtruth import failover_command, lsn, switch_point

INIT = ("--init", "--parallel-workers", "3", "--warmup-duration", "1", "--observe-after", "2")


def ledger_of(run) -> sqlite3.Connection:
    return sqlite3.connect(os.path.join(run.report["run_dir"], "ledger.sqlite"))


# acknowledged ops with an effect, and whether the consumer received a change naming them
# (keys are never reused: a key has at most one delete that matched its row)
NOT_RECEIVED = """
SELECT o.worker, o.seq, o.kind, o.key, o.session FROM ledger_op o
WHERE o.outcome = 'ok' AND (o.kind = 'I' OR o.rows > 0) AND NOT EXISTS (
    SELECT 1 FROM ledger_cdc c WHERE c.worker = o.worker AND c.key = o.key
    AND c.kind = o.kind AND (o.kind = 'D' OR c.version = o.seq))
"""


def test_preflight_says_what_is_missing_and_a_created_slot_sees_every_change(make_lab,
                                                                              run_ptor):
    lab = make_lab("async")
    dsn = ("--primary-pgdsn", lab.primary_dsn())
    run = run_ptor(*dsn, *INIT, "--duration", "1", "--expect", "any", "--cdc-slot", "s1")
    assert run.code == 3 and "wal_level is replica" in run.stderr, run
    assert "Traceback" not in run.stderr
    lab_cdc.add(lab, "test_decoding")
    run = run_ptor(*dsn, *INIT, "--duration", "1", "--expect", "any", "--cdc-slot", "s1")
    assert run.code == 3 and "no replication slot s1" in run.stderr, run
    run = run_ptor(*dsn, *INIT, "--duration", "1", "--expect", "any",
                   "--cdc-slot", lab_cdc.SLOT)  # pgoutput, the default
    assert run.code == 3 and "--cdc-plugin test_decoding" in run.stderr, run
    run = run_ptor(*dsn, "--parallel-workers", "3", "--duration", "1", "--expect", "any",
                   "--cdc-slot", lab_cdc.SLOT, "--cdc-publication", "nobodys")
    assert run.code == 3 and "no publication nobodys" in run.stderr, run
    # a role that may create ptor's tables but not read a slot: told before the load
    primary = lab.nodes["node1"]
    primary.query("CREATE ROLE ptor_plain LOGIN")
    primary.query(f'GRANT CREATE ON DATABASE "{lab.dbname}" TO ptor_plain')
    plain = lab.primary_dsn().replace(f"user={lab.user.name}", "user=ptor_plain")
    assert plain != lab.primary_dsn()
    run = run_ptor("--primary-pgdsn", plain, *INIT, "--schema", "plain", "--duration", "1",
                   "--expect", "any", "--cdc-slot", lab_cdc.SLOT,
                   "--cdc-plugin", "test_decoding")
    assert run.code == 3 and "grant it REPLICATION" in run.stderr, run
    assert "Traceback" not in run.stderr
    assert primary.query("SELECT count(*) FROM pg_stat_activity WHERE "
                         "usename = 'ptor_plain' AND backend_type = 'walsender'") == [(0,)]

    # --init --cdc-create-slot: ptor's publication and the slot; no fault
    run = run_ptor(*dsn, *INIT, "--duration", "4", "--expect", "any", "--cdc-slot", "s1",
                   "--cdc-create-slot", "--rate", "1500")
    assert run.code == 0, run
    cdc = run.report["cdc"]
    assert cdc["slot_on_new_primary"] == "present" and cdc["caught_up"], cdc
    # the lag from an op's acknowledgement to its change's receipt, under a steady rate
    assert -0.1 < cdc["lag_p50_seconds"] <= cdc["lag_p99_seconds"] < 2, cdc
    with ledger_of(run) as ledger:
        missing = ledger.execute(NOT_RECEIVED).fetchall()
        effective = ledger.execute("SELECT count(*) FROM ledger_op WHERE outcome = 'ok' AND "
                                   "(kind = 'I' OR rows > 0)").fetchone()[0]
        received = ledger.execute("SELECT count(*) FROM ledger_cdc").fetchone()[0]
    assert missing == [] and effective > 500
    assert cdc["missed"] == 0 and cdc["phantom"] == 0 and cdc["duplicates"] == 0
    assert cdc["expected"] == effective and cdc["received"] == received == effective
    assert [c for c in run.report["checks"] if c["name"] == "change data capture"][0][
        "status"] == "pass"
    # the slot confirmed what the ledger holds: its position is past the load's changes
    assert cdc["confirmed_flush_lsn_on_new_primary"] >= max(
        ledger_of(run).execute("SELECT max(lsn) FROM ledger_cdc").fetchone())
    assert "Change data capture (slot s1, pgoutput)" in run.stdout

    # --reset drops ptor's publication, never one of somebody else's
    lab.nodes["node1"].query("CREATE PUBLICATION theirs FOR TABLES IN SCHEMA ptor")
    run = run_ptor(*dsn, "--reset")
    assert run.code == 0 and "publication ptor_cdc" in run.stdout + run.stderr, run
    names = {row[0] for row in lab.nodes["node1"].query("SELECT pubname FROM pg_publication")}
    assert names == {"theirs"}


def test_a_slot_on_the_old_primary_only_is_missing_after_the_failover(make_lab, run_ptor):
    """A plain slot (the streaming lab's) lives on the primary it was made on: after a
    kill and promotion the new primary has none. Every acknowledged change the consumer
    had not received by then is missed, those acknowledged by the new primary included."""
    lab = make_lab("sync")
    lab_cdc.add(lab, "pgoutput")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), *INIT, "--duration", "30",
                   "--lab-dir", lab.dir, "--fault", "kill-primary:1",
                   "--cdc-slot", lab_cdc.SLOT)
    assert run.code == 1, run
    r, cdc = run.report, run.report["cdc"]
    assert r["rpo"]["lost_acknowledged_ops"] == 0  # sync: the loss is the pipeline's only
    assert cdc["slot_on_new_primary"] == "missing"
    assert any(c["name"] == "change data capture" and c["status"] == "fail" and
               "missing on the new primary" in c["detail"] for c in r["checks"]), r["checks"]
    after = r["servers"]["primary_after"]
    with ledger_of(run) as ledger:
        missing = ledger.execute(NOT_RECEIVED).fetchall()
        sessions = {(w, s): (port, tl) for w, s, port, tl in ledger.execute(
            "SELECT worker, session, port, timeline FROM ledger_session")}
    assert cdc["missed"] == len(missing), cdc
    # a change decoded on the old primary once its commit was flushed there, before the
    # synchronous standby had it (an op in doubt), is past the switch point: a phantom
    past = phantoms_past_the_switch(lab, run)
    assert cdc["phantom"] == past, (cdc["phantom"], past, cdc["examples"]["phantom"])
    on_new = [m for m in missing if sessions.get((m[0], m[4])) == (after["port"],
                                                                    after["timeline"])]
    assert len(on_new) > 100, "the load went on on the new primary for seconds"
    # those changes are on the new primary: an insert's row is there unless deleted since
    conn = psycopg2.connect(f"host=127.0.0.1 port={after['port']} dbname=postgres "
                            f"user={lab.user.name}")
    try:
        with conn.cursor() as cur:
            for worker, seq, kind, key, _session in on_new:
                if kind != "I":
                    continue
                cur.execute(f"SELECT last_seq FROM ptor.worker_{worker} WHERE id = %s", (key,))
                row = cur.fetchone()
                if row is None:  # deleted by a later acknowledged op of the same worker
                    with ledger_of(run) as ledger:
                        assert ledger.execute(
                            "SELECT 1 FROM ledger_op WHERE worker = ? AND key = ? AND "
                            "kind = 'D' AND outcome = 'ok' AND seq > ?",
                            (worker, key, seq)).fetchone(), (worker, key, seq)
                else:
                    assert row[0] >= seq
    finally:
        conn.close()
    assert "slot on the new primary                         missing" in run.stdout


def test_repmgrs_plain_slot_is_missing_after_its_failover(run_ptor):
    """ptor-lab up --cdc on repmgr: a plain slot on the primary, which repmgr does not copy.
    After a kill and repmgrd's promotion the new primary has no slot (the test asks it),
    the drill fails, and every acknowledged change the consumer never received is missed
    (the test's own SQL over the ledger)."""
    lab = RepmgrLab.up(os.path.join(lab_dir(), "lab"), free_port_base(3), "sync")
    try:
        lab_cdc.add(lab, "test_decoding")
        lab.wait_settled(120)
        old = lab.current_primary()
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), *INIT, "--duration", "60",
                       "--lab-dir", lab.dir, "--fault", "kill-primary:1",
                       "--cdc-slot", lab_cdc.SLOT, "--cdc-plugin", "test_decoding")
        assert run.code == 1, run
        r, cdc = run.report, run.report["cdc"]
        after = r["servers"]["primary_after"]
        assert after["port"] != old.port and r["rpo"]["lost_acknowledged_ops"] == 0
        (new,) = [n for n in lab.data_nodes() if n.port == after["port"]]
        assert new.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                         (lab_cdc.SLOT,)) == [(0,)]
        assert cdc["slot_on_new_primary"] == "missing"
        with ledger_of(run) as ledger:
            missing = ledger.execute(NOT_RECEIVED).fetchall()
        assert cdc["missed"] == len(missing) > 0, cdc
        assert any(c["name"] == "change data capture" and c["status"] == "fail"
                   for c in r["checks"]), r["checks"]
    finally:
        remove_lab(lab)


def phantoms_past_the_switch(lab, run) -> int:
    """Distinct changes the consumer received from the old primary (on a connection to
    the old timeline) whose commit record ends past the new primary's switch point (its
    timeline history): not in its history."""
    after = run.report["servers"]["primary_after"]
    (new,) = [n for n in lab.data_nodes() if n.port == after["port"]]
    switch = switch_point(new, after["timeline"])
    connections = run.report["cdc"]["connections"]
    assert connections[-1]["connection"] == len(connections), "every connection listed"
    old = [c["connection"] for c in connections if c["timeline"] == after["timeline"] - 1]
    with ledger_of(run) as ledger:
        return ledger.execute(
            "SELECT count(DISTINCT worker || ':' || key || ':' || kind || ':' || version) "
            f"FROM ledger_cdc WHERE lsn > ? AND connection IN ({','.join('?' * len(old))})",
            (switch, *old)).fetchone()[0]


STREAM_START = re.compile(r"walsender LOG:  starting logical decoding for slot \S+\n"
                          r".*walsender DETAIL:  Streaming transactions committing after "
                          r"([0-9A-F]+/[0-9A-F]+)")


def redelivered_by_the_server(lab, run) -> int:
    """What the new leader sent again, in its own words: each time the consumer started
    streaming there, its log says from where ("Streaming transactions committing after
    X"; the lab's log_line_prefix names the walsender, which Patroni's advances of its
    slot copies on a replica are not). A change the consumer had received before that
    stream, committed past X and in the new leader's history (not past the switch point
    on the old timeline: a phantom), comes again."""
    r = run.report
    after = r["servers"]["primary_after"]
    (new,) = [n for n in lab.data_nodes() if n.port == after["port"]]
    with open(lab.manager(new.name).logfile) as log:
        text = log.read()
    text = text[text.rindex("received promote request"):]
    starts = [lsn(x) for x in STREAM_START.findall(text)]
    streams = [c["connection"] for c in r["cdc"]["connections"]
               if c["timeline"] == after["timeline"] and c["error"] is None]
    assert len(starts) == len(streams) > 0, (starts, r["cdc"]["connections"])
    older = {c["connection"] for c in r["cdc"]["connections"]
             if c["timeline"] is not None and c["timeline"] < after["timeline"]}
    switch = switch_point(new, after["timeline"])
    with ledger_of(run) as ledger:
        rows = ledger.execute(
            "SELECT worker, key, kind, version, lsn, connection FROM ledger_cdc").fetchall()
    again = 0
    for start, stream in zip(starts, streams):
        again += len({row[:4] for row in rows if row[5] < stream and row[4] > start and (
            row[5] not in older or row[4] <= switch)})
    return again


@pytest.mark.parametrize("fault", ["kill-primary", "switchover"])
def test_patronis_permanent_slot_survives_a_failover(run_ptor, fault):
    """Patroni keeps a copy of a permanent slot on the replica: after a kill or a
    switchover the new leader has the slot, the consumer resumes there and misses nothing;
    what the copy had not yet confirmed comes again (duplicates: counted by the test's own
    SQL over the receipts, and equal to what the new leader's log says it streamed
    again)."""
    lab = PatroniLab.up(os.path.join(lab_dir(), "lab"), free_port_base(9), "sync")
    try:
        lab_cdc.add(lab, "pgoutput")
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), *INIT, "--duration", "40",
                       "--lab-dir", lab.dir, "--fault", f"{fault}:2",
                       "--cdc-slot", lab_cdc.SLOT, timeout=300)
        r, cdc = run.report, run.report["cdc"]
        assert r["servers"]["primary_after"]["port"] != r["servers"]["primary_before"]["port"]
        assert cdc["slot_on_new_primary"] == "present", cdc
        with ledger_of(run) as ledger:
            missing = ledger.execute(NOT_RECEIVED).fetchall()
            again = ledger.execute(
                "SELECT count(*) - count(DISTINCT worker || ':' || key || ':' || kind || ':' "
                "|| version) FROM ledger_cdc").fetchone()[0]
        lost = {(e["worker"], e["seq"]) for e in r["rpo"]["examples"]}
        assert r["rpo"]["lost_acknowledged_ops"] == 0, r["rpo"]
        assert missing == [] and cdc["missed"] == 0 and lost == set(), cdc
        assert cdc["duplicates"] == again == redelivered_by_the_server(lab, run), cdc
        assert cdc["phantom"] == phantoms_past_the_switch(lab, run)
        assert cdc["outage"]["first_after_fault"] is not None  # it resumed on the new leader
        # the consumer's outage is the longest silence in its receipts from the fault on
        # (the test's own look at the ledger's receipt times; the load never pauses that
        # long otherwise)
        with ledger_of(run) as ledger:
            received = [at for (at,) in ledger.execute(
                "SELECT received_at FROM ledger_cdc ORDER BY received_at")]
        silences = [(b - a, a, b) for a, b in zip(received, received[1:])
                    if b > r["phases"]["fault"]]
        longest, since, until = max(silences)
        assert (cdc["outage"]["last_before"], cdc["outage"]["first_after"]) == (since, until)
        assert cdc["outage"]["seconds"] == pytest.approx(longest) and longest > 0.2, cdc
        resumed = [c for c in cdc["connections"] if c["timeline"] == r["servers"][
            "primary_after"]["timeline"] and c["error"] is None]
        assert resumed, cdc["connections"]
        assert run.code == (1 if cdc["phantom"] else 0), run
    finally:
        remove_lab(lab)


def test_a_consumer_ahead_of_a_stale_standby_receives_phantom_changes(make_lab, run_ptor):
    """Async pair, the standby stopped for 3 s while the load and the consumer go on, then
    the primary killed and the stale standby promoted: every change the consumer received
    past the switch point is a phantom (downstream holds what the database lost), and the
    count equals the test's own, from the new primary's timeline history."""
    lab = make_lab("async")
    lab_cdc.add(lab, "test_decoding")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), *INIT, "--duration", "30",
                   "--failover-after", "1", "--cdc-slot", lab_cdc.SLOT,
                   "--cdc-plugin", "test_decoding", "--failover-command",
                   failover_command(lab, "stop-node node2; sleep 3; failover"))
    assert run.code == 1, run
    r, cdc = run.report, run.report["cdc"]
    past = phantoms_past_the_switch(lab, run)
    assert cdc["phantom"] == past and past > 100, (cdc["phantom"], past)
    assert r["rpo"]["lost_acknowledged_ops"] >= cdc["phantom"] - r["ops"]["indeterminate"]
    assert any(c["name"] == "change data capture" and c["status"] == "fail"
               for c in r["checks"])
