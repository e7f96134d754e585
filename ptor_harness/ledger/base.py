"""The ledger's interface and what both backends share: the record tables' layout (from
ops.py), the SQL that reads ops back, COPY text. See ledger/__init__.py for the tables."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Optional

from ..ops import (
    CDC_RECORD,
    IDENTITY_RECORD,
    INTENT_RECORD,
    LEDGER_FORMAT,
    NODE_SAMPLE_RECORD,
    OP_RECORD,
    REPLICATION_RECORD,
    CdcChange,
    Field,
    Identity,
    NodeSample,
    Op,
    ReplicationRow,
    columns,
)

OP_COLUMNS = columns(OP_RECORD)
INTENT_COLUMNS = columns(INTENT_RECORD)
SESSION_COLUMNS = columns(IDENTITY_RECORD)
NODE_SAMPLE_COLUMNS = columns(NODE_SAMPLE_RECORD)
REPLICATION_COLUMNS = columns(REPLICATION_RECORD)
CDC_COLUMNS = columns(CDC_RECORD)
# The ledger tables that hold records (ops.py), each with its primary key (if any).
RECORD_TABLES = {"ledger_intent": (INTENT_RECORD, "run_id, worker, seq"),
                 "ledger_op": (OP_RECORD, "run_id, worker, seq"),
                 "ledger_session": (IDENTITY_RECORD, None),
                 "ledger_node_sample": (NODE_SAMPLE_RECORD, None),
                 "ledger_replication": (REPLICATION_RECORD, None),
                 # a change received twice arrives at two times: both are kept
                 "ledger_cdc": (CDC_RECORD,
                                "run_id, worker, key, kind, version, received_at")}
# Record tables the embedded ledger keeps in arrival order, without a key, with the index
# that reads them built once, when they are first read (`_index_for_reading`). The CDC
# consumer's receipts come in commit order across every worker's keys: a keyed (WITHOUT
# ROWID) table paid a B-tree insert at a random place per change, in the recorder while the
# load ran (5.5 against 0.9 µs of CPU a change, 400,000 in-process; the index afterwards
# 0.8 µs a change). PostgreSQL repos keep the key: writing a batch again skips by it.
ARRIVAL_ORDER_TABLES = {
    "ledger_cdc": "ledger_cdc_by_key ON ledger_cdc (run_id, worker, key, version, received_at)"}
# Record tables an older repo may lack until a drill needs them (--init adds them).
OPTIONAL_TABLES = ("ledger_cdc",)
# Columns later ledger formats added to older tables: (table, column, PostgreSQL type,
# SQLite type). A ledger from an older ptor gains them (NULL in its old rows).
ADDED_COLUMNS = tuple((table, f.name, f.pg_type, f.sqlite_type)
                      for table, name in (("ledger_op", "prev_seq"),
                                          ("ledger_session", "started_at"),
                                          ("ledger_node_sample", "standby_name"),
                                          ("ledger_node_sample", "server"),
                                          ("ledger_node_sample", "read_only"))
                      for f in RECORD_TABLES[table][0] if f.name == name)

# The merged view of a worker's ops: outcomes, plus intents that never got one (in doubt).
_OUTCOMES = "SELECT {ops} FROM ledger_op WHERE run_id = %s AND worker = %s"
_UNSETTLED = (
    " UNION ALL SELECT {intents} FROM ledger_intent i WHERE i.run_id = %s AND i.worker = %s "
    "AND NOT EXISTS (SELECT 1 FROM ledger_op o WHERE o.run_id = i.run_id AND "
    "o.worker = i.worker AND o.seq = i.seq)")
_SEQ_RANGE = "SELECT count(*), min(seq), max(seq) FROM {table} WHERE run_id = %s AND worker = %s"
_INTENT_AS_OP = ", ".join([f"i.{f.name}" for f in INTENT_RECORD]
                          + ["NULL"] * (len(OP_RECORD) - len(INTENT_RECORD)))


class Ledger(ABC):
    """A run's journal. One instance per process; not shared across processes."""

    paramstyle = "%s"

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    # --- backend specifics ---------------------------------------------------------------

    @abstractmethod
    def _execute(self, sql: str, params: tuple = ()) -> None:
        """Run one statement in the current transaction."""

    @abstractmethod
    def _query(self, sql: str, params: tuple = ()) -> Iterator[tuple]:
        """Stream the rows of a query without holding them all in memory."""

    @abstractmethod
    def _append(self, table: str, columns: str, rows: list[tuple]) -> None:
        """Append many rows to a table, as fast as the backend allows."""

    def _append_again(self, table: str, columns: str, rows: list[tuple]) -> None:
        """Append rows that may already be there (by primary key); see `write`."""
        raise NotImplementedError

    def reconnect(self) -> None:
        """Open a new session after the repo went away (a local file needs none)."""
        return None

    def _index_for_reading(self, table: str) -> None:
        """Build the index a table kept in arrival order is read by (ARRIVAL_ORDER_TABLES);
        a ledger that keeps the table keyed needs none."""
        return None

    @abstractmethod
    def commit(self) -> None:
        """Make everything written so far durable."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def _sql(self, sql: str) -> str:
        return sql if self.paramstyle == "%s" else sql.replace("%s", self.paramstyle)

    # --- writing -------------------------------------------------------------------------

    def create_run(self, started_at: float, scenario: dict) -> None:
        self._execute(self._sql("INSERT INTO ledger_run (run_id, started_at, scenario, format)"
                                " VALUES (%s, %s, %s, %s)"),
                      (self.run_id, started_at, json.dumps(scenario, sort_keys=True),
                       LEDGER_FORMAT))
        self.commit()

    def write(self, intents: list[tuple], ops: list[tuple], identities: list[tuple],
              retracts: list[tuple], node_samples: list[tuple] = (),
              replication: list[tuple] = (), cdc: list[tuple] = (),
              again: bool = False) -> None:
        """Write one batch; the caller commits (group commit across workers). `again`: the
        same batch once more after its commit was cut off, which may or may not have
        landed, so rows already there are skipped."""
        run = self.run_id
        append = self._append_again if again else self._append
        if intents:
            append("ledger_intent", "run_id, " + INTENT_COLUMNS,
                   [(run, *i) for i in intents])
        if ops:
            append("ledger_op", "run_id, " + OP_COLUMNS, [(run, *o) for o in ops])
        if identities:
            append("ledger_session", "run_id, " + SESSION_COLUMNS,
                   [(run, *i) for i in identities])
        if node_samples:
            append("ledger_node_sample", "run_id, " + NODE_SAMPLE_COLUMNS,
                   [(run, *s) for s in node_samples])
        if replication:
            append("ledger_replication", "run_id, " + REPLICATION_COLUMNS,
                   [(run, *r) for r in replication])
        if cdc:
            append("ledger_cdc", "run_id, " + CDC_COLUMNS, [(run, *c) for c in cdc])
        for worker, first_seq in retracts:
            self._execute(self._sql("DELETE FROM ledger_intent WHERE run_id = %s AND "
                                    "worker = %s AND seq >= %s"), (run, worker, first_seq))

    def record_event(self, at: float, name: str, detail: Optional[dict] = None) -> None:
        self._execute(self._sql("INSERT INTO ledger_event (run_id, at, name, detail) "
                                "VALUES (%s, %s, %s, %s)"),
                      (self.run_id, at, name, json.dumps(detail or {}, sort_keys=True)))
        self.commit()

    def finish_run(self, finished_at: float, verdict: str, report: dict) -> None:
        self._execute(self._sql("UPDATE ledger_run SET finished_at = %s, verdict = %s, "
                                "report = %s WHERE run_id = %s"),
                      (finished_at, verdict, json.dumps(report, sort_keys=True), self.run_id))
        self.commit()

    # --- reading -------------------------------------------------------------------------

    def analyze(self) -> None:
        """Refresh planner statistics once the load is over: tables that grew from empty
        during the run otherwise get nested-loop plans that are quadratic in the ledger."""
        for table in ("ledger_op", "ledger_intent", "ledger_session"):
            self._execute(f"ANALYZE {table}")
        self.commit()

    def ops_by_seq(self, worker: int) -> Iterator[Op]:
        """A worker's ops in the order it ran them; intents without outcome are in doubt."""
        return map(Op._make, self._merged(worker, OP_COLUMNS, _INTENT_AS_OP, "2"))

    def op_timings(self, worker: int) -> Iterator[tuple]:
        """(seq, kind, t_start, t_end, outcome) of a worker's ops in seq order (intents
        without outcome: None times and outcome): the metrics pass reads five columns, not
        eleven, which on a ledger of millions is a third of its time."""
        return self._merged(worker, "seq, kind, t_start, t_end, outcome",
                            "i.seq, i.kind, NULL, NULL, NULL", "1")

    def ops_by_key(self, worker: int) -> Iterator[Op]:
        """A worker's ops grouped by key, each key's ops in seq order (for the merge join)."""
        return map(Op._make, self._merged(worker, OP_COLUMNS, _INTENT_AS_OP, "4, 2"))

    def _merged(self, worker: int, ops: str, intents: str, order: str) -> Iterator[tuple]:
        """The merged view's rows (`ops` of ledger_op, `intents` the same columns of an
        intent), ordered by `order`. Finding the intents without outcome takes a lookup per
        intent, half the time of reading 10 million ops; it is skipped when every intent
        is shown to have its outcome (`settled`)."""
        sql = _OUTCOMES.format(ops=ops)
        params: tuple = (self.run_id, worker)
        if not self.settled(worker):
            sql += _UNSETTLED.format(intents=intents)
            params *= 2
        return self._query(self._sql(f"{sql} ORDER BY {order}"), params)

    def settled(self, worker: int) -> bool:
        """Every intent of the worker has its outcome: both tables hold the same unbroken
        run of seqs (a key's seqs are distinct, so a count of max - min + 1 is every seq
        between them). Sync repo mode's ledger after a drain leaves it so; a harness killed
        mid-op, async repo mode (no intents) or a gap anywhere does not, and then each
        intent is looked up. Two counts over the key, a sixth of the lookups' time."""
        ranges = [next(iter(self._query(self._sql(_SEQ_RANGE.format(table=table)),
                                        (self.run_id, worker))))
                  for table in ("ledger_op", "ledger_intent")]
        (count, low, high), intents = ranges
        return count > 0 and intents == ranges[0] and count == high - low + 1

    def identities(self) -> list[Identity]:
        sql = self._sql("SELECT " + SESSION_COLUMNS + " FROM ledger_session WHERE run_id = %s "
                        "ORDER BY at, worker")
        return [Identity(w, s, at, a, p, None if r is None else bool(r), sid, tl, started)
                for w, s, at, a, p, r, sid, tl, started in self._query(sql, (self.run_id,))]

    def node_samples(self) -> list[NodeSample]:
        """The node observer's samples, in time order (booleans as booleans again)."""
        sql = self._sql("SELECT " + NODE_SAMPLE_COLUMNS + " FROM ledger_node_sample WHERE "
                        "run_id = %s ORDER BY at, node")
        flags = ("reachable", "in_recovery", "monitor")
        return [NodeSample(*(v if f.name not in flags or v is None else bool(v)
                             for f, v in zip(NODE_SAMPLE_RECORD, row)))
                for row in self._query(sql, (self.run_id,))]

    def replication_rows(self) -> list[ReplicationRow]:
        """The primaries' pg_stat_replication rows, in time order."""
        sql = self._sql("SELECT " + REPLICATION_COLUMNS + " FROM ledger_replication WHERE "
                        "run_id = %s ORDER BY at, node")
        return [ReplicationRow(*row) for row in self._query(sql, (self.run_id,))]

    def cdc_changes(self, worker: int) -> list[CdcChange]:
        """The changes the CDC consumer received of one worker's rows, by key and version
        (a change received twice, twice)."""
        self._index_for_reading("ledger_cdc")
        sql = self._sql("SELECT " + CDC_COLUMNS + " FROM ledger_cdc WHERE run_id = %s AND "
                        "worker = %s ORDER BY key, version, received_at")
        return [CdcChange(*row) for row in self._query(sql, (self.run_id, worker))]

    def refused_writes(self, sqlstate: str) -> list[tuple]:
        """Ops refused with `sqlstate` (a write on a read-only server), per session (each
        names one server, ledger_session): (worker, session, how many, the first and the
        last refusal's time)."""
        sql = self._sql("SELECT worker, session, count(*), min(t_end), max(t_end) FROM "
                        "ledger_op WHERE run_id = %s AND outcome = 'failed' AND error LIKE %s "
                        "GROUP BY worker, session ORDER BY worker, session")
        return [tuple(row) for row in self._query(sql, (self.run_id, sqlstate + ":%"))]

    def stored_scenario(self) -> Optional[dict]:
        """The run's scenario as it was recorded at its start (passwords masked), or None
        when the ledger does not know the run."""
        sql = self._sql("SELECT scenario FROM ledger_run WHERE run_id = %s")
        for (scenario,) in self._query(sql, (self.run_id,)):
            return json.loads(scenario)
        return None

    def run_started_at(self) -> Optional[float]:
        """When the run began, as the ledger keeps it (None: it does not know the run)."""
        sql = self._sql("SELECT started_at FROM ledger_run WHERE run_id = %s")
        for (started,) in self._query(sql, (self.run_id,)):
            return started
        return None

    def run_ending(self) -> Optional[tuple[float, str, str]]:
        """(finished_at, verdict, stop_reason) of a run that ended with a verdict, as its
        report in the ledger says; None for a run that has none (yet)."""
        sql = self._sql("SELECT finished_at, verdict, report FROM ledger_run "
                        "WHERE run_id = %s AND verdict IS NOT NULL")
        for finished, verdict, stored in self._query(sql, (self.run_id,)):
            try:
                reason = json.loads(stored).get("stop_reason") or ""
            except (TypeError, ValueError, AttributeError):
                reason = ""
            return finished, verdict, reason
        return None

    def events(self) -> list[tuple[float, str, dict]]:
        sql = self._sql("SELECT at, name, detail FROM ledger_event WHERE run_id = %s "
                        "ORDER BY at")
        return [(at, name, json.loads(detail)) for at, name, detail in
                self._query(sql, (self.run_id,))]

    def last_seq(self, worker: int) -> Optional[int]:
        """The highest seq the ledger holds of a worker (intent or outcome)."""
        sql = self._sql("SELECT max(seq) FROM (SELECT max(seq) AS seq FROM ledger_op WHERE "
                        "run_id = %s AND worker = %s UNION ALL SELECT max(seq) FROM "
                        "ledger_intent WHERE run_id = %s AND worker = %s) m")
        return next(iter(self._query(sql, (self.run_id, worker) * 2)))[0]

    def count(self, table: str) -> int:
        assert table in RECORD_TABLES
        sql = self._sql(f"SELECT count(*) FROM {table} WHERE run_id = %s")
        return next(iter(self._query(sql, (self.run_id,))))[0]


def table_key(table: str, postgres: bool) -> Optional[str]:
    """A record table's primary key in one ledger's SQL; none for a table the embedded
    ledger keeps in arrival order (ARRIVAL_ORDER_TABLES)."""
    key = RECORD_TABLES[table][1]
    return key if postgres or table not in ARRIVAL_ORDER_TABLES else None


def record_table_ddl(table: str, postgres: bool) -> str:
    """The column definitions of a record table (see RECORD_TABLES) in one ledger's SQL:
    run_id, then the record's fields, then its primary key."""
    record, key = RECORD_TABLES[table][0], table_key(table, postgres)

    def column(f: Field) -> str:
        kind = f.pg_type if postgres else f.sqlite_type
        return f"{f.name} {kind}" + ("" if f.nullable else " NOT NULL")

    parts = ["run_id text NOT NULL" if postgres else "run_id TEXT NOT NULL"]
    parts += [column(f) for f in record]
    if key:
        parts.append(f"PRIMARY KEY ({key})")
    return ", ".join(parts)


def copy_rows(rows: Iterable[tuple]) -> str:
    """Rows as PostgreSQL COPY text: tab-separated, \\N for NULL, specials escaped."""
    out = []
    for row in rows:
        fields = []
        for value in row:
            if value is None:
                fields.append("\\N")
            elif isinstance(value, bool):
                fields.append("t" if value else "f")
            elif isinstance(value, float):
                fields.append(repr(value))
            else:
                text = str(value)
                if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
                    text = (text.replace("\\", "\\\\").replace("\t", "\\t")
                            .replace("\n", "\\n").replace("\r", "\\r"))
                fields.append(text)
        out.append("\t".join(fields))
    return "\n".join(out) + "\n" if out else ""
