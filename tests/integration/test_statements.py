"""The op statements on a real server: prepared once per session, they write and return what
the plain ones do; a server that refuses the PREPARE leaves the plain ones serving; a drill's
workers run the prepared forms on a connection of their own."""

import threading
import time

from ptor_harness import db, schema
from ptor_harness.drill.statements import OpStatements, prepared_on, send_op
from ptor_harness.ops import DELETE, INSERT, UPDATE

# (kind, key, seq): inserts, updates that replace them, a delete, an update of a gone key
SCRIPT = [(INSERT, 1, 1), (INSERT, 2, 2), (UPDATE, 1, 3), (UPDATE, 1, 4), (DELETE, 2, 5),
          (UPDATE, 2, 6), (DELETE, 7, 7), (INSERT, 3, 8)]


def play(conn, statements: OpStatements, prepared: bool, in_transactions: bool) -> list:
    """Each op of SCRIPT through send_op, alone or opening a transaction committed at once;
    what each returned."""
    returned = []
    with conn.cursor() as cur:
        sql = statements.of(False, in_transactions, prepared)
        for kind, key, seq in SCRIPT:
            data = None if kind == DELETE else schema.payload("t", 0, seq, 64)
            returned.append(send_op(cur, sql, False, kind, key, seq, data, 1700000000.0 + seq))
            if in_transactions:
                cur.execute("COMMIT")
    return returned


def rows_of(conn, table: str) -> list:
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, last_seq, prev_seq, payload, written_at FROM {table} "
                    "ORDER BY id")
        return cur.fetchall()


def test_prepared_statements_write_and_return_what_the_plain_ones_do(make_lab):
    lab = make_lab("async")
    setup = db.connect(lab.primary_dsn(), "ptor-test", 5.0, autocommit=False)
    schema.init_primary(setup, "ptor", 2)
    setup.commit()
    setup.close()
    results = {}
    for worker, prepared in ((0, False), (1, True)):
        table = schema.worker_table("ptor", worker)
        statements = OpStatements(table)
        conn = db.connect(lab.primary_dsn(), "ptor-test", 5.0)
        if prepared:
            assert prepared_on(conn, statements.prepare)
        for in_transactions in (False, True):
            with conn.cursor() as cur:
                cur.execute(f"TRUNCATE {table}")
            returned = play(conn, statements, prepared, in_transactions)
            results[(prepared, in_transactions)] = (returned, rows_of(conn, table))
        conn.close()
    plain, prepared = results[(False, False)], results[(True, False)]
    assert plain[0] == [(1, None, None), (1, None, None), (1, 1, None), (1, 3, None),
                        (1, 2, None), (0, None, None), (0, None, None), (1, None, None)]
    assert [r[0] for r in plain[1]] == [1, 3] and plain[1][0][1:3] == (4, 3)
    assert prepared == plain
    assert results[(True, True)] == results[(False, True)] == plain


def test_a_refused_prepare_leaves_the_session_usable_with_the_plain_statements(make_lab):
    lab = make_lab("async")
    conn = db.connect(lab.primary_dsn(), "ptor-test", 5.0)
    statements = OpStatements(schema.worker_table("no_such_schema", 0))
    assert not prepared_on(conn, statements.prepare)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    conn.close()


def test_a_drills_workers_run_the_prepared_statements(make_lab, run_ptor):
    lab = make_lab("async")
    primary = lab.nodes[lab.named("primary")]
    runs = []
    drill = threading.Thread(target=lambda: runs.append(run_ptor(
        "--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "2",
        "--warmup-duration", "0", "--duration", "5", "--expect", "any")))
    drill.start()
    seen = []
    deadline = time.monotonic() + 120
    while drill.is_alive() and not seen and time.monotonic() < deadline:
        seen = primary.query("SELECT query FROM pg_stat_activity WHERE application_name "
                             "LIKE 'ptor-worker-%%' AND query LIKE 'EXECUTE ptor_op_%%'")
        time.sleep(0.05)  # the poll's interval
    drill.join(timeout=240)
    assert runs and runs[0].code == 0, runs
    assert seen, "no worker ran a prepared statement"
    assert runs[0].report["ops"]["ok"] > 0
