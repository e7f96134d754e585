"""The CDC consumer's bookkeeping (drill/cdc.py) on messages as a slot sends them: a
transaction's changes wait for its commit, and only a commit moves what may be confirmed."""

from types import SimpleNamespace

from ptor_harness.drill.cdc import CdcSpec, Consumer
from ptor_harness.ops import INSERT

LINE = "table ptor.worker_1: INSERT: id[bigint]:5 last_seq[bigint]:9 payload[text]:'x'"


def consumer(since: int = 0) -> Consumer:
    spec = CdcSpec("host=127.0.0.1", "ptor", "s1", "test_decoding", "ptor_cdc", since, 1.0)
    return Consumer(spec, queue=None, ack_conn=None, stop=None, abort=None, alive=None)


def message(text: str, lsn: int):
    return SimpleNamespace(payload=text.encode(), data_start=lsn)


def test_changes_wait_for_their_commit_and_only_a_commit_is_confirmable():
    c = consumer()
    c.take(message("BEGIN 7", 100))
    assert c.confirmable is None and c.open
    c.take(message(LINE, 110))
    assert c.batch == [] and c.confirmable is None  # nothing before the commit
    c.take(message("COMMIT 7", 150))
    assert not c.open and c.confirmable == 150 and c.received == 1
    (worker, key, kind, version, lsn, _at, connection), = c.batch
    assert (worker, key, kind, version, lsn, connection) == (1, 5, INSERT, 9, 150, 0)


def test_an_earlier_runs_changes_are_confirmed_but_not_recorded():
    c = consumer(since=500)
    for text, lsn in (("BEGIN 3", 100), (LINE, 110), ("COMMIT 3", 150)):
        c.take(message(text, lsn))
    assert c.batch == [] and c.received == 0 and c.confirmable == 150


def test_a_transaction_cut_short_by_a_lost_session_is_dropped_whole():
    c = consumer()
    c.take(message("BEGIN 8", 100))
    c.take(message(LINE, 110))
    c.disconnect("lost")
    assert c.transaction == [] and not c.open and c.batch == []
