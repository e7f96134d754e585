"""Decoding what a logical slot sends (drill/cdc_decode.py): pgoutput's binary messages
and test_decoding's lines, into changes of ptor's tables. The same decoders read a real
slot in tests/integration/test_cdc.py."""

import struct

from ptor_harness.drill.cdc_decode import PgOutput, TextPlugin, decoder
from ptor_harness.ops import DELETE, INSERT, UPDATE

COLUMNS = ("id", "last_seq", "prev_seq", "payload", "written_at")


def relation(relid: int, namespace: str, name: str, columns=COLUMNS) -> bytes:
    out = b"R" + struct.pack("!i", relid) + namespace.encode() + b"\0" + name.encode() + b"\0"
    out += b"f" + struct.pack("!h", len(columns))
    for column in columns:
        out += b"\0" + column.encode() + b"\0" + struct.pack("!ii", 20, -1)
    return out


def tuple_data(*values) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        else:
            text = str(value).encode()
            out += b"t" + struct.pack("!i", len(text)) + text
    return out


def row(key, last, prev=None):
    return tuple_data(key, last, prev, "ab" * 8, "2026-12-05 00:00:00+00")


def test_pgoutput_changes_of_ptors_tables_with_their_commit():
    d = PgOutput("ptor")
    d.decode(relation(7, "ptor", "worker_3"), 0)
    d.decode(relation(8, "public", "worker_3"), 0)  # somebody else's table
    assert d.decode(b"B" + struct.pack("!qqi", 500, 0, 9), 100).begin
    insert = d.decode(b"I" + struct.pack("!i", 7) + b"N" + row(11, 5), 101)
    assert insert.changes == ((3, 11, INSERT, 5),)
    update = d.decode(b"U" + struct.pack("!i", 7) + b"O" + row(11, 5) + b"N" + row(11, 9, 5),
                      102)
    assert update.changes == ((3, 11, UPDATE, 9),)
    plain_update = d.decode(b"U" + struct.pack("!i", 7) + b"N" + row(12, 10), 103)
    assert plain_update.changes == ((3, 12, UPDATE, 10),)
    delete = d.decode(b"D" + struct.pack("!i", 7) + b"O" + row(11, 9, 5), 104)
    assert delete.changes == ((3, 11, DELETE, 9),)  # the version it removed
    assert d.decode(b"D" + struct.pack("!i", 7) + b"K" + tuple_data(11, None, None, None,
                                                                    None), 104).changes == ()
    assert d.decode(b"I" + struct.pack("!i", 8) + b"N" + row(1, 1), 105).changes == ()
    commit = d.decode(b"C" + struct.pack("!bqqq", 0, 12345, 12400, 0), 106)
    assert commit.commit_lsn == 12400 and commit.changes == ()  # where the record ends


def test_pgoutput_skips_what_it_does_not_know():
    d = PgOutput("ptor")
    assert d.decode(b"I" + struct.pack("!i", 99) + b"N" + row(1, 1), 0).changes == ()
    d.decode(relation(5, "ptor", "heartbeat", ("id", "beat", "at")), 0)
    assert d.decode(b"I" + struct.pack("!i", 5) + b"N" + tuple_data(1, 2, "x"), 0).changes == ()
    assert d.decode(b"Y" + b"\0" * 8, 0).changes == ()  # a type message
    # a relation that changes away from ptor's shape is forgotten
    d.decode(relation(7, "ptor", "worker_0"), 0)
    d.decode(relation(7, "ptor", "worker_0", ("id", "other")), 0)
    assert d.decode(b"I" + struct.pack("!i", 7) + b"N" + tuple_data(1, 2), 0).changes == ()


def test_text_plugin_lines():
    d = TextPlugin("ptor")
    assert d.decode(b"BEGIN 731", 10).begin
    line = ("table ptor.worker_2: INSERT: id[bigint]:40 last_seq[bigint]:77 prev_seq[bigint]:"
            "null payload[text]:'abc' written_at[timestamp with time zone]:'2026-12-05'")
    assert d.decode(line.encode(), 11).changes == ((2, 40, INSERT, 77),)
    update = ("table ptor.worker_2: UPDATE: old-key: id[bigint]:40 last_seq[bigint]:77 "
              "prev_seq[bigint]:null payload[text]:'abc' new-tuple: id[bigint]:40 "
              "last_seq[bigint]:80 prev_seq[bigint]:77 payload[text]:'def'")
    assert d.decode(update, 12).changes == ((2, 40, UPDATE, 80),)
    delete = ("table ptor.worker_2: DELETE: id[bigint]:40 last_seq[bigint]:80 "
              "prev_seq[bigint]:77 payload[text]:'def'")
    assert d.decode(delete, 13).changes == ((2, 40, DELETE, 80),)
    assert d.decode("table ptor.worker_2: DELETE: id[bigint]:40", 13).changes == ()
    assert d.decode("table other.worker_2: INSERT: id[bigint]:1 last_seq[bigint]:1",
                    14).changes == ()
    assert d.decode("table ptor.worker_2: TRUNCATE: (no-flags)", 14).changes == ()
    assert d.decode(b"COMMIT 731", 15).commit_lsn == 15
    assert isinstance(decoder("test_decoding", "ptor"), TextPlugin)
    assert isinstance(decoder("pgoutput", "ptor"), PgOutput)
