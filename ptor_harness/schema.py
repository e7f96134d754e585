"""ptor's objects on the primary: one table per worker, plus a heartbeat table.

Every object ptor creates carries a comment marking it as ptor's, and `reset` drops only
objects with that mark, so a user's table that happens to share a name is never touched.
"""

from __future__ import annotations

import hashlib
from typing import Optional

import psycopg2

from .db import quote_ident
from .errors import ClusterError

MARK = "created by ptor; safe to drop with ptor --reset"
HEARTBEAT = "heartbeat"


def worker_table_name(worker: int) -> str:
    return f"worker_{worker}"


def worker_table(schema: str, worker: int) -> str:
    """The quoted, schema-qualified name of a worker's table."""
    return f"{quote_ident(schema)}.{quote_ident(worker_table_name(worker))}"


def heartbeat_table(schema: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(HEARTBEAT)}"


PAYLOAD_BLOCK = 128  # hex characters of one SHA-512 digest


def payload(run_tag: str, worker: int, seq: int, size: int) -> str:
    """The payload op `seq` writes: derived from the op, so its checksum can be recomputed
    from the ledger alone and a row written by any other op is told apart.

    The hex digests of SHA-512 over the op's name and a block number, end to end: text
    with no repeat for PostgreSQL's compression (pglz or lz4, both matching repeats) to
    find, so a row of N payload bytes writes N bytes or more of WAL, as a user's data
    does. (A repeated pattern compressed an 8,192-byte payload to 297 bytes of WAL.)"""
    base = f"{run_tag}:{worker}:{seq}:"
    if size <= PAYLOAD_BLOCK:  # the common case (64 bytes by default): one digest
        return hashlib.sha512(f"{base}0".encode()).hexdigest()[:size]
    blocks = -(-size // PAYLOAD_BLOCK)
    return "".join(hashlib.sha512(f"{base}{i}".encode()).hexdigest()
                   for i in range(blocks))[:size]


# `payload` rebuilt by the server from a row's last_seq, for the full validation (which
# compares on the server, so no payload crosses the network): payload_sql(size) over the
# alias b that PAYLOAD_BASE_SQL (a LATERAL subquery) defines; named parameters tag, worker,
# size. Held equal to `payload` by tests/integration/test_validation.py.
PAYLOAD_BASE_SQL = "(SELECT %(tag)s || ':' || %(worker)s || ':' || last_seq || ':' AS b)"
_ONE_DIGEST_SQL = "left(encode(sha512(convert_to(b || '0', 'UTF8')), 'hex'), %(size)s)"
_DIGESTS_SQL = (f"left((SELECT string_agg(encode(sha512(convert_to(b || i, 'UTF8')), 'hex'), "
                f"'' ORDER BY i) FROM generate_series(0, (%(size)s - 1) / {PAYLOAD_BLOCK}) i),"
                " %(size)s)")


def payload_sql(size: int) -> str:
    """The server's form of `payload` for payloads of `size` bytes: one digest without a
    subquery when one is enough (the default 64 bytes), which on 10 million rows is the
    server's whole share of the full check (a subquery and an aggregate per row cost
    about a second a million)."""
    return _ONE_DIGEST_SQL if size <= PAYLOAD_BLOCK else _DIGESTS_SQL


WORKER_COLUMNS = ("id bigint PRIMARY KEY, last_seq bigint NOT NULL, prev_seq bigint, "
                  "payload text NOT NULL, written_at timestamptz NOT NULL")
HEARTBEAT_COLUMNS = ("id int PRIMARY KEY, beat bigint NOT NULL, "
                     "at timestamptz NOT NULL DEFAULT now()")


def _ptor_tables(conn, schema: str, workers: int) -> dict[str, dict]:
    """The tables a drill of `workers` needs, by name: whether each exists, carries ptor's
    mark, and has the version-chain column (`prev_seq`, added in ledger format 2)."""
    wanted = [worker_table_name(w) for w in range(workers)] + [HEARTBEAT]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') = %s, EXISTS (SELECT 1 "
            " FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'prev_seq' "
            " AND NOT a.attisdropped) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = ANY(%s)", (MARK, schema, wanted))
        found = {name: (bool(marked), bool(chain)) for name, marked, chain in cur.fetchall()}
    return {name: {"exists": name in found, "marked": found.get(name, (False, False))[0],
                   "chain": found.get(name, (False, False))[1] or name == HEARTBEAT}
            for name in wanted}


def _not_ptors(schema: str, name: str) -> ClusterError:
    return ClusterError(f"{schema}.{name} exists but is not ptor's (it lacks ptor's mark): "
                        "ptor never empties, changes or drops a table it did not create; "
                        "choose another --schema or rename that table")


def init_primary(conn, schema: str, workers: int) -> None:
    """Create the schema, worker tables 0..workers-1 and the heartbeat table where missing,
    and mark what it creates, only that. A table of ptor's name without ptor's mark is
    somebody else's: refused (ClusterError), never marked, altered or emptied. ptor's own
    tables from an older ptor gain the version-chain column."""
    q = quote_ident
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE SCHEMA {q(schema)}")
            cur.execute(f"COMMENT ON SCHEMA {q(schema)} IS %s", (MARK,))
    tables = _ptor_tables(conn, schema, workers)
    for name, state in tables.items():
        if state["exists"] and not state["marked"]:
            conn.rollback()
            raise _not_ptors(schema, name)
    with conn.cursor() as cur:
        for name, state in tables.items():
            table = f"{q(schema)}.{q(name)}"
            if not state["exists"]:
                columns = HEARTBEAT_COLUMNS if name == HEARTBEAT else WORKER_COLUMNS
                cur.execute(f"CREATE TABLE {table} ({columns})")
                cur.execute(f"COMMENT ON TABLE {table} IS %s", (MARK,))
            elif not state["chain"]:
                cur.execute(f"ALTER TABLE {table} ADD COLUMN prev_seq bigint")
    conn.commit()


def check_tables(conn, schema: str, workers: int) -> None:
    """Before a drill touches anything: every table it needs exists, is ptor's (marked) and
    current; otherwise one sentence (ClusterError)."""
    tables = _ptor_tables(conn, schema, workers)
    conn.rollback()
    missing = [name for name, state in tables.items() if not state["exists"]]
    if missing:
        raise ClusterError(f"ptor's tables are missing on the primary ({schema}.{missing[0]}"
                           f"{' and more' if len(missing) > 1 else ''}); run with --init to "
                           "create them")
    for name, state in tables.items():
        if not state["marked"]:
            raise _not_ptors(schema, name)
    old = [name for name, state in tables.items() if not state["chain"]]
    if old:
        raise ClusterError(f"ptor's tables on the primary are from an older ptor "
                           f"({schema}.{old[0]} lacks prev_seq); run with --init to upgrade "
                           "them")


# the heartbeat row that says which run's rows the worker tables hold (reconciliation
# writes row 1, the probe row 2): set as a run empties them, read by `ptor reconcile`
TABLES_ROW = 0


def run_key(run_id: str) -> int:
    """A run's id as the bigint the heartbeat table keeps (63 bits of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big") >> 1


def truncate_worker_tables(conn, schema: str, workers: int, run_id: str) -> None:
    """Empty the worker tables: each run owns them, so every row is explained by its ledger.
    In the same transaction, heartbeat row TABLES_ROW names the run that owns them now.
    Only ever called after check_tables found them all ptor's."""
    tables = ", ".join(worker_table(schema, w) for w in range(workers))
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE {tables}")
        cur.execute(f"INSERT INTO {heartbeat_table(schema)} (id, beat) VALUES (%s, %s) "
                    "ON CONFLICT (id) DO UPDATE SET beat = EXCLUDED.beat, at = now()",
                    (TABLES_ROW, run_key(run_id)))
    conn.commit()


def tables_owner(conn, schema: str) -> Optional[tuple[int, float]]:
    """(run_key of the run that last emptied the worker tables, when, epoch seconds on
    the server's clock), or None where no run has said (a ptor before this row)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT beat, extract(epoch FROM at)::float8 FROM "
                    f"{heartbeat_table(schema)} WHERE id = %s", (TABLES_ROW,))
        row = cur.fetchone()
    conn.commit()
    return None if row is None else (int(row[0]), float(row[1]))


def drop_marked(conn, schema: str) -> list[str]:
    """Drop every table of `schema` marked as ptor's, the publications of it marked as
    ptor's (--cdc-slot's), and the schema if ptor made it and nothing else is left in it.
    Shared by the primary and the PostgreSQL ledger."""
    dropped: list[str] = []
    by_schema = conn.server_version >= 150000  # publications FOR TABLES IN SCHEMA
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT p.pubname FROM pg_publication p JOIN pg_publication_tables t "
            "ON t.pubname = p.pubname WHERE t.schemaname = %s "
            "AND obj_description(p.oid, 'pg_publication') = %s ORDER BY 1", (schema, MARK))
        for (name,) in cur.fetchall():
            cur.execute(f"DROP PUBLICATION {quote_ident(name)}")
            dropped.append(f"publication {name}")
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' "
            "AND obj_description(c.oid, 'pg_class') = %s ORDER BY 1",
            (schema, MARK),
        )
        for (name,) in cur.fetchall():
            cur.execute(f"DROP TABLE {quote_ident(schema)}.{quote_ident(name)}")
            dropped.append(f"{schema}.{name}")
        cur.execute(
            "SELECT obj_description(n.oid, 'pg_namespace') = %s, "
            " NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid) "
            + ("AND NOT EXISTS (SELECT 1 FROM pg_publication_namespace pn "
               "WHERE pn.pnnspid = n.oid) " if by_schema else "") +
            "FROM pg_namespace n WHERE n.nspname = %s",
            (MARK, schema),
        )
        row = cur.fetchone()
        if row and row[0] and row[1]:
            cur.execute(f"DROP SCHEMA {quote_ident(schema)} RESTRICT")
            dropped.append(f"schema {schema}")
    conn.commit()
    return dropped


def heartbeat(conn, schema: str, row: int = 1) -> int:
    """Make one real write and return its value: proof that this server accepts writes.
    Row 1 is reconciliation's, row 2 the probe's."""
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO {heartbeat_table(schema)} (id, beat) VALUES ({int(row)}, 1) "
                "ON CONFLICT (id) DO UPDATE SET beat = "
                f"{heartbeat_table(schema)}.beat + 1, at = now() RETURNING beat"
            )
            beat = cur.fetchone()[0]
        conn.commit()
        return beat
    except psycopg2.Error as exc:
        raise ClusterError(f"the primary did not accept a test write: {exc}") from None
