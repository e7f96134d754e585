"""The embedded ledger: batches in, merged streams out (intents without outcome are in doubt)."""

from ptor_harness.ledger import LedgerSpec, copy_rows
from ptor_harness.ops import CdcChange, Op


def test_write_read_merge_and_retract(tmp_path):
    spec = LedgerSpec("run1", None, "ptor", str(tmp_path / "ledger.sqlite"), durable=True)
    ledger = spec.open()
    ledger.create_run(1.0, {"primary_pgdsn": "host=x password=********"})
    intents = [(0, 1, "I", 10), (0, 2, "U", 10), (0, 3, "I", 11), (0, 4, "I", 12)]
    ops = [(0, 1, "I", 10, 1.0, 1.1, "ok", None, 1, 1, None)]
    identities = [(0, 1, 0.5, "127.0.0.1", 5432, False, "42", 1, 0.25)]
    ledger.write(intents, ops, identities, retracts=[(0, 4)])
    ledger.commit()
    ledger.close()
    reader = spec.open()
    by_seq = list(reader.ops_by_seq(0))
    assert [o.seq for o in by_seq] == [1, 2, 3]  # seq 4 was retracted: never sent
    assert by_seq[0] == Op(0, 1, "I", 10, 1.0, 1.1, "ok", None, 1, 1, None)
    assert by_seq[1].outcome is None and by_seq[1].in_doubt
    assert [(o.key, o.seq) for o in reader.ops_by_key(0)] == [(10, 1), (10, 2), (11, 3)]
    # the metrics pass's lean read: the same ops, five columns
    assert list(reader.op_timings(0)) == [(o.seq, o.kind, o.t_start, o.t_end, o.outcome)
                                          for o in by_seq]
    (ident,) = reader.identities()
    assert ident.port == 5432 and ident.in_recovery is False and ident.started_at == 0.25
    assert reader.count("ledger_op") == 1 and reader.count("ledger_intent") == 3
    reader.record_event(2.0, "phase:load", {"x": 1})
    assert reader.events() == [(2.0, "phase:load", {"x": 1})]
    reader.finish_run(3.0, "pass", {"verdict": "pass"})
    reader.close()


def test_copy_rows_escapes_specials():
    text = copy_rows([(1, None, "a\tb\\c\nd", 1.5, True)])
    assert text == "1\t\\N\ta\\tb\\\\c\\nd\t1.5\tt\n"


def test_a_format_1_ledger_gains_the_version_chain_columns(tmp_path):
    """A run folder from an older ptor (no prev_seq, no started_at) can still be
    reconciled: opening it adds the columns, its old rows read back with None."""
    import sqlite3

    path = str(tmp_path / "ledger.sqlite")
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE ledger_op (run_id TEXT, worker INTEGER, seq INTEGER, kind TEXT,
            key INTEGER, t_start REAL, t_end REAL, outcome TEXT, error TEXT, session INTEGER,
            rows INTEGER, PRIMARY KEY (run_id, worker, seq)) WITHOUT ROWID;
        CREATE TABLE ledger_session (run_id TEXT, worker INTEGER, session INTEGER, at REAL,
            addr TEXT, port INTEGER, in_recovery INTEGER, system_id TEXT, timeline INTEGER);
        INSERT INTO ledger_op VALUES ('old', 0, 1, 'U', 5, 1.0, 1.1, 'ok', NULL, 1, 1);
        INSERT INTO ledger_session VALUES ('old', 0, 1, 0.5, '127.0.0.1', 5432, 0, '42', 1);
    """)
    old.commit()
    old.close()
    ledger = LedgerSpec("old", None, "ptor", path, durable=True).open()
    (op,) = ledger.ops_by_key(0)
    assert op.seq == 1 and op.prev_seq is None
    (ident,) = ledger.identities()
    assert ident.timeline == 1 and ident.started_at is None
    ledger.close()


def test_an_older_ledgers_node_samples_gain_the_standby_name(tmp_path):
    """Node samples of a ledger from before the standby's name was sampled read back, with
    no name (the report then keeps the names the primary gave its standbys)."""
    import sqlite3

    path = str(tmp_path / "ledger.sqlite")
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE ledger_node_sample (run_id TEXT, node TEXT, at REAL, took REAL,
            reachable INTEGER, in_recovery INTEGER, timeline INTEGER, system_id TEXT,
            wal_lsn INTEGER, receive_lsn INTEGER, replay_lsn INTEGER, replay_at REAL,
            monitor INTEGER, error TEXT);
        INSERT INTO ledger_node_sample VALUES ('old', 'node2', 1.0, 0.001, 1, 1, 1, '42',
            NULL, 900, 800, 0.9, 1, NULL);
    """)
    old.commit()
    old.close()
    ledger = LedgerSpec("old", None, "ptor", path, durable=True).open()
    (sample,) = ledger.node_samples()
    assert sample.node == "node2" and sample.receive_lsn == 900
    assert sample.standby_name is None and sample.server is None
    assert sample.read_only is None  # not asked then: no read-only spell is made up
    ledger.close()


def test_a_damaged_ledger_file_is_one_sentence(tmp_path):
    import pytest

    from ptor_harness.errors import ClusterError

    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database, it is a run folder someone broke" * 100)
    with pytest.raises(ClusterError, match="the embedded ledger .* cannot be used"):
        LedgerSpec("run1", None, "ptor", str(path), durable=True).open()


def outcome(seq, key):
    return (0, seq, "I", key, 1.0, 1.1, "ok", None, 1, 1, None)


def test_the_merged_view_skips_the_lookups_only_when_every_intent_is_shown_settled(tmp_path):
    """The intents without outcome are found by a lookup per intent unless both tables hold
    the same unbroken run of seqs; whichever way, the merged view is the same ops, and an
    intent without outcome is never left out of it."""
    cases = {  # name: (intent seqs, outcome seqs, settled)
        "all settled": ([1, 2, 3, 4], [1, 2, 3, 4], True),
        "the last in doubt": ([1, 2, 3, 4], [1, 2, 3], False),
        "a gap of outcomes, same count": ([1, 2, 3, 4], [1, 2, 4, 5], False),
        "an outcome without intent in a gap": ([1, 2, 4], [1, 2, 3, 4], False),
        "the same count, a gap in both": ([1, 2, 4], [1, 2, 4], False),
        "async repo mode: no intents": ([], [1, 2, 3], False),
        "nothing yet": ([], [], False),
    }
    for n, (name, (intent_seqs, outcome_seqs, settled)) in enumerate(cases.items()):
        spec = LedgerSpec(f"run{n}", None, "ptor", str(tmp_path / f"l{n}.sqlite"), True)
        ledger = spec.open()
        ledger.write([(0, s, "I", 100 - s) for s in intent_seqs],
                     [outcome(s, 100 - s) for s in outcome_seqs], [], [])
        ledger.commit()
        assert ledger.settled(0) is settled, name
        in_doubt = sorted(set(intent_seqs) - set(outcome_seqs))
        by_seq = list(ledger.ops_by_seq(0))
        assert [o.seq for o in by_seq] == sorted(set(intent_seqs) | set(outcome_seqs)), name
        assert [o.seq for o in by_seq if o.outcome is None] == in_doubt, name
        assert [o.seq for o in ledger.ops_by_key(0)] == sorted(
            set(intent_seqs) | set(outcome_seqs), reverse=True), name  # key = 100 - seq
        assert [t[0] for t in ledger.op_timings(0)] == [o.seq for o in by_seq], name
        ledger.close()


def test_cdc_receipts_kept_in_arrival_order_are_read_by_key_and_version(tmp_path):
    """The consumer's receipts are appended as they come (no key to insert by), and read
    back per worker in key, version and arrival order once the reading index is built: a
    change received twice, twice, and one of another run not at all."""
    path = str(tmp_path / "ledger.sqlite")
    ledger = LedgerSpec("run1", None, "ptor", path, durable=True).open()
    received = [(1, 7, "U", 5, 900, 2.0, 1), (0, 9, "I", 3, 800, 1.0, 1),
                (1, 7, "I", 2, 700, 0.5, 1), (1, 7, "U", 5, 900, 3.0, 2),
                (1, 3, "D", 8, 950, 2.5, 2)]
    ledger.write([], [], [], [], cdc=received)
    ledger.commit()
    other = LedgerSpec("run2", None, "ptor", path, durable=True).open()
    other.write([], [], [], [], cdc=[(1, 7, "I", 1, 600, 0.1, 1)])
    other.commit()
    other.close()
    tables = dict(ledger.conn.execute("SELECT name, sql FROM sqlite_master"))
    assert "WITHOUT ROWID" not in tables["ledger_cdc"] and "ledger_cdc_by_key" not in tables
    assert [(c.key, c.version, c.received_at) for c in ledger.cdc_changes(1)] == \
        [(3, 8, 2.5), (7, 2, 0.5), (7, 5, 2.0), (7, 5, 3.0)]
    assert ledger.cdc_changes(0) == [CdcChange(0, 9, "I", 3, 800, 1.0, 1)]
    plan = " ".join(row[-1] for row in ledger.conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM ledger_cdc WHERE run_id = 'run1' AND worker = 1 "
        "ORDER BY key, version, received_at"))
    assert "ledger_cdc_by_key" in plan and "TEMP B-TREE" not in plan, plan
    ledger.close()


def test_a_runs_key_in_the_heartbeat_table_is_a_positive_bigint_of_its_id():
    from ptor_harness.schema import run_key

    keys = {run_key(f"20261206T0000{i:02d}Z-abcdef") for i in range(60)}
    assert len(keys) == 60 and all(0 <= k < 2**63 for k in keys)
    assert run_key("20261206T000000Z-abcdef") == run_key("20261206T000000Z-abcdef")
