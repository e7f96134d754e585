"""What a logical replication slot sends, decoded into the changes to ptor's tables.

A change is (worker, key, kind, version): the worker from the table's name, the row's key,
the op's kind, and the row version it names. For an insert or an update that is the new
`last_seq`, the seq of the op that wrote it; for a delete, the `last_seq` of the row it
removed, which is the delete op's `prev_seq` (ptor's tables have REPLICA IDENTITY FULL
while a consumer reads them, so a delete carries the whole old row). Reconciliation
(verify/cdc.py) joins the versions with the ledger. A transaction's changes count from its
commit, whose LSN the decoder reports with them.

Two output plugins: pgoutput (PostgreSQL's own binary protocol, version 1, what logical
subscriptions and Debezium use) and test_decoding (text, contrib). Changes to any other
table, and messages of no interest (types, origins, truncates), are skipped. A commit's
LSN is where its commit record ends, with either plugin: the position a consumer confirms,
and the one a timeline's switch point is compared with (a transaction is in the new
primary's history when its commit record ends at or before the switch point).
"""

from __future__ import annotations

import re
import struct
from typing import Optional

from ..ops import DELETE, INSERT, UPDATE

Change = tuple  # (worker, key, kind, version)
WORKER_TABLE = re.compile(r"worker_(\d+)")


def worker_of(schema: str, namespace: str, table: str) -> Optional[int]:
    """The worker whose table this is, None for any other table."""
    if namespace != schema:
        return None
    match = WORKER_TABLE.fullmatch(table)
    return int(match.group(1)) if match else None


class Decoded:
    """What one message said: changes of ptor's tables, and, at a commit, its LSN."""

    __slots__ = ("changes", "commit_lsn", "begin")

    def __init__(self, changes: tuple = (), commit_lsn: Optional[int] = None,
                 begin: bool = False) -> None:
        self.changes = changes
        self.commit_lsn = commit_lsn
        self.begin = begin


NOTHING = Decoded()


# --- test_decoding ----------------------------------------------------------------------

_TD_TABLE = re.compile(r'table ("?)(.+?)\1\.("?)(.+?)\3: (INSERT|UPDATE|DELETE): (.*)', re.S)
_TD_ID = re.compile(r"\bid\[bigint\]:(-?\d+)")
_TD_LAST = re.compile(r"\blast_seq\[bigint\]:(-?\d+)")
_TD_KINDS = {"INSERT": INSERT, "UPDATE": UPDATE, "DELETE": DELETE}


class TextPlugin:
    """test_decoding's text lines."""

    def __init__(self, schema: str) -> None:
        self.schema = schema

    def decode(self, payload, lsn: int) -> Decoded:
        text = payload.decode() if isinstance(payload, bytes) else payload
        if text.startswith("BEGIN"):
            return Decoded(begin=True)
        if text.startswith("COMMIT"):
            return Decoded(commit_lsn=lsn)
        match = _TD_TABLE.match(text)
        if match is None:
            return NOTHING
        worker = worker_of(self.schema, match.group(2), match.group(4))
        if worker is None:
            return NOTHING
        kind, columns = _TD_KINDS[match.group(5)], match.group(6)
        if kind == UPDATE and "new-tuple: " in columns:
            columns = columns.split("new-tuple: ", 1)[1]
        key, version = _TD_ID.search(columns), _TD_LAST.search(columns)
        if key is None or version is None:
            return NOTHING  # a delete without the old row: no REPLICA IDENTITY FULL
        return Decoded(((worker, int(key.group(1)), kind, int(version.group(1))),))


# --- pgoutput ---------------------------------------------------------------------------

_INT16, _INT32, _INT64 = struct.Struct("!h"), struct.Struct("!i"), struct.Struct("!q")


class PgOutput:
    """pgoutput's binary messages (protocol version 1). Relation messages say which
    columns a table has; the decoder keeps, for each of ptor's tables, where `id` and
    `last_seq` are."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.relations: dict[int, tuple[int, int, int]] = {}  # id -> (worker, id at, last at)

    def decode(self, payload: bytes, lsn: int) -> Decoded:
        tag = payload[:1]
        if tag == b"B":
            return Decoded(begin=True)
        if tag == b"C":  # flags, the commit record's start, its end, its time
            return Decoded(commit_lsn=_INT64.unpack_from(payload, 10)[0])
        if tag == b"R":
            self.relation(payload)
            return NOTHING
        if tag not in (b"I", b"U", b"D"):
            return NOTHING
        relation = self.relations.get(_INT32.unpack_from(payload, 1)[0])
        if relation is None:
            return NOTHING
        worker, id_at, last_at = relation
        at = 5
        kind = {b"I": INSERT, b"U": UPDATE, b"D": DELETE}[tag]
        if kind == UPDATE and payload[at:at + 1] in (b"K", b"O"):
            _old, at = tuple_data(payload, at + 1)
        marker = payload[at:at + 1]  # N: new tuple; K / O: the old key or row (delete)
        values, _ = tuple_data(payload, at + 1)
        if kind == DELETE and marker != b"O":
            return NOTHING  # only the key: no REPLICA IDENTITY FULL
        key, version = values[id_at], values[last_at]
        if key is None or version is None:
            return NOTHING
        return Decoded(((worker, int(key), kind, int(version)),))

    def relation(self, payload: bytes) -> None:
        """R: id, namespace, name, replica identity, columns (flags, name, type, typmod)."""
        relid = _INT32.unpack_from(payload, 1)[0]
        namespace, at = cstring(payload, 5)
        name, at = cstring(payload, at)
        at += 1  # replica identity setting
        count = _INT16.unpack_from(payload, at)[0]
        at += 2
        columns = []
        for _ in range(count):
            column, at = cstring(payload, at + 1)
            columns.append(column)
            at += 8  # type oid, type modifier
        worker = worker_of(self.schema, namespace, name)
        if worker is None or "id" not in columns or "last_seq" not in columns:
            self.relations.pop(relid, None)
            return
        self.relations[relid] = (worker, columns.index("id"), columns.index("last_seq"))


def cstring(payload: bytes, at: int) -> tuple[str, int]:
    end = payload.index(b"\0", at)
    return payload[at:end].decode(), end + 1


def tuple_data(payload: bytes, at: int) -> tuple[list, int]:
    """TupleData: a column count, then each column null (n), unchanged TOAST (u), text
    (t: length, bytes) or binary (b: length, bytes); values as text, None for the rest."""
    count = _INT16.unpack_from(payload, at)[0]
    at += 2
    values: list = []
    for _ in range(count):
        kind = payload[at:at + 1]
        at += 1
        if kind in (b"t", b"b"):
            length = _INT32.unpack_from(payload, at)[0]
            at += 4
            values.append(payload[at:at + length].decode() if kind == b"t" else None)
            at += length
        else:
            values.append(None)
    return values, at


def decoder(plugin: str, schema: str):
    """The decoder for a slot's output plugin."""
    return PgOutput(schema) if plugin == "pgoutput" else TextPlugin(schema)
