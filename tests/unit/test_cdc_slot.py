"""The CDC slot's state on the new primary (drill/cdc_slot.slot_state) for each server
version's way of saying a slot was invalidated: PostgreSQL 15's wal_status, 16's
`conflicting`, 17's `invalidation_reason`."""

import psycopg2
import pytest

from ptor_harness.drill.cdc_slot import INVALIDATED, LOST_WAL, MISSING, PRESENT, slot_state


class Conn:
    def __init__(self, version, row):
        self.server_version, self.row, self.sent = version, row, []

    def cursor(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, params):
        self.sent.append(sql)
        if isinstance(self.row, Exception):
            raise self.row

    def fetchone(self):
        return self.row


@pytest.mark.parametrize("version, row, status, reason", [
    (150010, ("reserved", "0/3000000", "0/2000000", None), PRESENT, None),
    (150010, ("lost", "0/3000000", None, None), LOST_WAL, None),
    (160004, ("reserved", "0/3000000", "0/2000000", "conflict"), INVALIDATED, "conflict"),
    (170002, ("lost", None, None, "wal_removed"), LOST_WAL, "wal_removed"),
    (170002, ("reserved", None, None, "rows_removed"), INVALIDATED, "rows_removed"),
    (170002, ("reserved", "0/10", "0/8", None), PRESENT, None),
])
def test_each_version_says_how_the_slot_stands(version, row, status, reason):
    conn = Conn(version, row)
    state = slot_state(conn, "s")
    assert state["status"] == status and state.get("invalidation_reason") == reason
    asked = conn.sent[0]
    assert ("invalidation_reason" in asked) == (version >= 170000)
    assert ("conflicting" in asked) == (160000 <= version < 170000)
    if row[1] == "0/3000000":
        assert state["confirmed_flush_lsn"] == 0x3000000


def test_a_missing_slot_and_an_unreadable_one():
    assert slot_state(Conn(150010, None), "s")["status"] == MISSING
    failed = slot_state(Conn(150010, psycopg2.OperationalError("server closed\nmore")), "s")
    assert failed == {"status": None, "error": "server closed"}
