"""The op record: what one worker did in one transaction, and how it ended.

Workers build plain tuples in `Op` field order (cheap to pickle across the Queue); the ledger,
reconciliation and metrics read them back as `Op`. `LEDGER_FORMAT` versions that layout.

The records' layout is written once, here (`OP_RECORD`, `INTENT_RECORD`,
`IDENTITY_RECORD`): both ledger schemas, their column lists and the spill file's row
shapes derive from it.

Format history:
  1 — first version: worker, seq, kind, key, t_start, t_end, outcome, error, session, rows.
  2 — `prev_seq` on ops (the version chain) and `started_at` on identities (a restart of
      the same server is a new server).
  3 — the node observer's samples (`ledger_node_sample`, `ledger_replication`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import NamedTuple, Optional

LEDGER_FORMAT = 3

INSERT = "I"
UPDATE = "U"
DELETE = "D"
KIND_NAMES = {INSERT: "insert", UPDATE: "update", DELETE: "delete"}

OK = "ok"
FAILED = "failed"
INDETERMINATE = "indeterminate"
OUTCOMES = (OK, FAILED, INDETERMINATE)

# The warning PostgreSQL sends with a commit whose wait for synchronous replication was
# cancelled (a driver's query timeout, a pooler's cancel): acknowledged, but committed
# locally only. An ok op keeps NOT_REPLICATED in its error field, so its loss can say why.
SYNC_WAIT_CANCELLED = "canceling wait for synchronous replication"
NOT_REPLICATED = "not replicated: the wait for synchronous replication was cancelled"
# The same warning when the cancel was ptor's own statement timeout. PostgreSQL stops a
# statement's timeout before its commit, but one that expired while the server was frozen
# (SIGSTOP, a hung VM) mid-statement is delivered as the server thaws and may first be
# seen by the commit's wait for the synchronous standby: a local commit and the warning,
# from a primary that may have been failed over meanwhile (seen: a 12 s freeze of a
# pg_auto_failover primary, 10 s timeout, the op "lost"). ptor, whose timeout did it,
# never takes it for an acknowledgement: the op is in doubt, settled by reconciliation.
OWN_TIMEOUT_NOT_REPLICATED = ("in doubt: ptor's statement timeout cancelled the wait for "
                              "synchronous replication (committed locally only)")
READ_ONLY = "25006"  # SQLSTATE of a write refused by a server in recovery (or read-only)


class Op(NamedTuple):
    """One op as the ledger holds it.

    `outcome` is None for an op whose intent is durable but whose outcome never reached the
    ledger (the harness died in between): it is in doubt exactly like an indeterminate op.
    Times are client wall-clock epoch seconds, so they compare across processes.

    `prev_seq` is the version chain: the `last_seq` of the row version an acknowledged
    UPDATE or DELETE replaced, as the server returned it (None for an INSERT, for a write
    that matched no row, for an op without acknowledgement, and in format-1 ledgers). A
    write lost in a failover is thus seen at the first later write to its key, even when
    that write overwrote the key before the final state could show the loss.
    """

    worker: int
    seq: int
    kind: str
    key: int
    t_start: Optional[float]
    t_end: Optional[float]
    outcome: Optional[str]
    error: Optional[str]
    session: Optional[int]
    rows: Optional[int]
    prev_seq: Optional[int] = None

    @property
    def in_doubt(self) -> bool:
        """True when nobody knows whether the server committed this op."""
        return self.outcome is None or self.outcome == INDETERMINATE


# An op's key, read by position: what the reconciliation's groupby asks of 10 million ops.
op_key = operator.itemgetter(Op._fields.index("key"))


class Identity(NamedTuple):
    """What a worker's session was connected to; a change of identity is a failover seen
    from the client. A session is one connection, or behind a pooler the part of one that
    ran on one server (the worker starts a new session when its ops' server changes)."""

    worker: int
    session: int
    at: float
    addr: Optional[str]
    port: Optional[int]
    in_recovery: Optional[bool]
    system_id: Optional[str]
    timeline: Optional[int]
    started_at: Optional[float] = None  # the postmaster's start (epoch): a restart is news

    def server(self) -> tuple:
        """The fields that name one server's unbroken history: equal tuples mean the same
        primary, not restarted in between (a restart may lose what synchronous_commit=off
        acknowledged, exactly like a failover)."""
        return (self.addr, self.port, self.system_id, self.timeline, self.started_at)

    def primary(self) -> tuple:
        """The fields that name one primary: a node of a cluster on a timeline. The same
        primary restarted is still that primary (servers.py)."""
        return (self.addr, self.port, self.system_id, self.timeline)

    def label(self) -> str:
        """A short human name for the server, as the report prints it."""
        where = f"{self.addr or 'local'}:{self.port}"
        return f"{where} (system {self.system_id}, timeline {self.timeline})"


@dataclass(frozen=True)
class Field:
    """One field of a record the ledger keeps: its name, what values it takes (for the
    spill file's strict reading), whether it may be NULL, and its type in each ledger."""

    name: str
    kind: str  # int, float, text, bool, kind (an op kind), outcome (an op outcome)
    nullable: bool
    pg_type: str
    sqlite_type: str


def _int(name: str, nullable: bool = False, pg_type: str = "int") -> Field:
    return Field(name, "int", nullable, pg_type, "INTEGER")


def _float(name: str, nullable: bool = True) -> Field:
    return Field(name, "float", nullable, "double precision", "REAL")


def _text(name: str) -> Field:
    return Field(name, "text", True, "text", "TEXT")


# An op (ledger_op): `Op`'s fields, in its order.
OP_RECORD = (
    _int("worker"), _int("seq", pg_type="bigint"), Field("kind", "kind", False, "char(1)", "TEXT"),
    _int("key", pg_type="bigint"), _float("t_start"), _float("t_end"),
    Field("outcome", "outcome", True, "text", "TEXT"), _text("error"),
    _int("session", True), _int("rows", True), _int("prev_seq", True, "bigint"))
# An intent (ledger_intent): what a worker is about to send, durable before it is sent.
INTENT_RECORD = OP_RECORD[:4]
# A session's identity (ledger_session): `Identity`'s fields, in its order.
IDENTITY_RECORD = (
    _int("worker"), _int("session"), _float("at", nullable=False), _text("addr"),
    _int("port", True), Field("in_recovery", "bool", True, "boolean", "INTEGER"),
    _text("system_id"), _int("timeline", True), _float("started_at"))


# A change the CDC consumer received (ledger_cdc): `CdcChange`'s fields, in its order.
CDC_RECORD = (
    _int("worker"), _int("key", pg_type="bigint"),
    Field("kind", "kind", False, "char(1)", "TEXT"), _int("version", pg_type="bigint"),
    _int("lsn", pg_type="bigint"), _float("received_at", nullable=False), _int("connection"))


# A node observer's sample of one node (ledger_node_sample): see drill/observer.py.
NODE_SAMPLE_RECORD = (
    Field("node", "text", False, "text", "TEXT"), _float("at", nullable=False),
    _float("took"), Field("reachable", "bool", False, "boolean", "INTEGER"),
    Field("in_recovery", "bool", True, "boolean", "INTEGER"), _int("timeline", True),
    _text("system_id"), _int("wal_lsn", True, "bigint"), _int("receive_lsn", True, "bigint"),
    _int("replay_lsn", True, "bigint"), _float("replay_at"),
    Field("monitor", "bool", True, "boolean", "INTEGER"), _text("error"),
    _text("standby_name"), _text("server"),
    Field("read_only", "bool", True, "boolean", "INTEGER"))
# One row of a primary's pg_stat_replication in such a sample (ledger_replication).
REPLICATION_RECORD = (
    Field("node", "text", False, "text", "TEXT"), _float("at", nullable=False),
    _text("application_name"), _text("state"), _text("sync_state"),
    _int("sent_lsn", True, "bigint"), _int("write_lsn", True, "bigint"),
    _int("flush_lsn", True, "bigint"), _int("replay_lsn", True, "bigint"),
    _float("write_lag"), _float("flush_lag"), _float("replay_lag"))


# The observer's name for its samples of the primary DSN itself (any role): what a client
# reaches there, beside the cluster's nodes.
ENDPOINT = "endpoint"


class CdcChange(NamedTuple):
    """A change to one of ptor's rows as the CDC consumer received it (drill/cdc.py): the
    row version it names (drill/cdc_decode.py), where its transaction's commit record ends
    (`lsn`), when it arrived and on which of the consumer's connections (each names one
    server)."""

    worker: int
    key: int
    kind: str
    version: int
    lsn: int
    received_at: float
    connection: int


class NodeSample(NamedTuple):
    """One sample of one node by the node observer. `reachable` False: it did not answer
    within the sample's bound (`error` says how); the other fields are then None. A field
    the observer's role may not read (no pg_monitor) is None too, with `monitor` False."""

    node: str
    at: float
    took: Optional[float]
    reachable: bool
    in_recovery: Optional[bool]
    timeline: Optional[int]
    system_id: Optional[str]
    wal_lsn: Optional[int]  # a primary's current WAL position (bytes)
    receive_lsn: Optional[int]  # a standby's: received, and replayed
    replay_lsn: Optional[int]
    replay_at: Optional[float]  # commit time of the last transaction a standby replayed
    monitor: Optional[bool]  # the observer's role is superuser or has pg_monitor
    error: Optional[str]
    # a standby's: the name its WAL receiver gives the primary, which lists it under that
    # name (pg_stat_replication's application_name); None on a primary, or unreadable
    standby_name: Optional[str] = None
    # where the server says it is (addr:port, as a session's Identity names it): how the
    # report tells which node a server the workers reached is
    server: Optional[str] = None
    # a write would be refused (`transaction_read_only` on): a standby, or a primary that
    # its manager keeps read-only (pg_auto_failover's default_transaction_read_only while
    # it promotes); None where the server was not asked
    read_only: Optional[bool] = None


class ReplicationRow(NamedTuple):
    """A standby as its primary saw it (pg_stat_replication), in one sample."""

    node: str  # the primary's name
    at: float
    application_name: Optional[str]
    state: Optional[str]
    sync_state: Optional[str]
    sent_lsn: Optional[int]
    write_lsn: Optional[int]
    flush_lsn: Optional[int]
    replay_lsn: Optional[int]
    write_lag: Optional[float]
    flush_lag: Optional[float]
    replay_lag: Optional[float]


def columns(record: tuple[Field, ...]) -> str:
    """A record's column list, as SQL names it."""
    return ", ".join(f.name for f in record)
