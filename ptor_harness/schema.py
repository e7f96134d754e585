"""ptor's objects on the primary: one table per worker, plus a heartbeat table.

Every object ptor creates carries a comment marking it as ptor's, and `reset` drops only
objects with that mark, so a user's table that happens to share a name is never touched.
"""

from __future__ import annotations

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


def payload(run_tag: str, worker: int, seq: int, size: int) -> str:
    """The payload op `seq` writes: derived from the op, so its checksum can be recomputed
    from the ledger alone and a row written by any other op is told apart."""
    base = f"{run_tag}:{worker}:{seq}:"
    return (base * (size // len(base) + 1))[:size]


def init_primary(conn, schema: str, workers: int) -> None:
    """Create the schema, worker tables 0..workers-1 and the heartbeat table, if missing."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE SCHEMA {quote_ident(schema)}")
            cur.execute(f"COMMENT ON SCHEMA {quote_ident(schema)} IS %s", (MARK,))
        for worker in range(workers):
            table = worker_table(schema, worker)
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                " id bigint PRIMARY KEY,"
                " last_seq bigint NOT NULL,"
                " payload text NOT NULL,"
                " written_at timestamptz NOT NULL)"
            )
            cur.execute(f"COMMENT ON TABLE {table} IS %s", (MARK,))
        table = heartbeat_table(schema)
        cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY, "
                    "beat bigint NOT NULL, at timestamptz NOT NULL DEFAULT now())")
        cur.execute(f"COMMENT ON TABLE {table} IS %s", (MARK,))
    conn.commit()


def missing_tables(conn, schema: str, workers: int) -> list[str]:
    """Names of ptor tables this drill needs that do not exist on the server."""
    wanted = [worker_table_name(w) for w in range(workers)] + [HEARTBEAT]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname = ANY(%s)",
            (schema, wanted),
        )
        present = {row[0] for row in cur.fetchall()}
    conn.rollback()
    return [f"{schema}.{name}" for name in wanted if name not in present]


def truncate_worker_tables(conn, schema: str, workers: int) -> None:
    """Empty the worker tables: each run owns them, so every row is explained by its ledger."""
    tables = ", ".join(worker_table(schema, w) for w in range(workers))
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE {tables}")
    conn.commit()


def drop_marked(conn, schema: str) -> list[str]:
    """Drop every table of `schema` marked as ptor's, and the schema if ptor made it and
    nothing else is left in it. Shared by the primary and the PostgreSQL ledger."""
    dropped: list[str] = []
    with conn.cursor() as cur:
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
            "FROM pg_namespace n WHERE n.nspname = %s",
            (MARK, schema),
        )
        row = cur.fetchone()
        if row and row[0] and row[1]:
            cur.execute(f"DROP SCHEMA {quote_ident(schema)} RESTRICT")
            dropped.append(f"schema {schema}")
    conn.commit()
    return dropped


def heartbeat(conn, schema: str) -> int:
    """Make one real write and return its value: proof that this server accepts writes."""
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO {heartbeat_table(schema)} (id, beat) VALUES (1, 1) "
                "ON CONFLICT (id) DO UPDATE SET beat = "
                f"{heartbeat_table(schema)}.beat + 1, at = now() RETURNING beat"
            )
            beat = cur.fetchone()[0]
        conn.commit()
        return beat
    except psycopg2.Error as exc:
        raise ClusterError(f"the primary did not accept a test write: {exc}") from None
