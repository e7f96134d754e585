"""The spill file keeps ledger batches exactly, in order, and survives a torn last line."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptor_harness.ledger.spill import Spill, read_batches

BATCH_1 = ([], [(0, 1, "I", 1, 1.5, 1.75, "ok", None, 0, 1, None),
                (0, 2, "U", 1, 2.0, 2.25, "failed", "tab\there\nnewline", 0, None, None)],
           [(0, 0, 1.0, "127.0.0.1", 5432, False, "7301", 1, 0.5)], [])
BATCH_2 = ([(1, 65, "D", 9)], [], [], [(1, 65)])


def test_batches_come_back_as_written(tmp_path):
    spill = Spill(str(tmp_path / "spill.jsonl"))
    assert not spill.holding
    spill.append(BATCH_1)
    spill.append(BATCH_2)
    assert spill.holding and spill.total_rows == 5
    assert list(read_batches(spill.path)) == [BATCH_1, BATCH_2]
    spill.discard()
    assert not spill.holding and not (tmp_path / "spill.jsonl").exists()
    spill.append(BATCH_2)
    assert spill.total_rows == 7
    spill.close()
    assert list(read_batches(spill.path)) == [BATCH_2]


def test_a_line_torn_by_a_crash_is_skipped_only_at_the_end(tmp_path):
    path = tmp_path / "spill.jsonl"
    spill = Spill(str(path))
    spill.append(BATCH_1)
    spill.close()
    whole = path.read_text()
    path.write_text(whole + whole[: len(whole) // 2])  # the recorder died mid-write
    assert list(read_batches(str(path))) == [BATCH_1]
    path.write_text(whole[: len(whole) // 2] + "\n" + whole)
    with pytest.raises(ValueError, match="line 1 is not a spilled batch"):
        list(read_batches(str(path)))


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(st.text(max_size=60) | st.sampled_from(
    ['{"ops": [[1, 2]]}', '[1]', '{"ops": 5}', '{"ops": [3]}', '{}', 'null', '{"ids": []}']),
    max_size=6))
def test_any_file_reads_as_batches_or_one_clear_error(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("spill") / "spill.jsonl"
    path.write_text("\n".join(lines) + "\n")
    try:
        batches = list(read_batches(str(path)))
    except ValueError as exc:
        assert "is not a spilled batch" in str(exc)
    else:
        assert all(len(batch) == 4 and all(isinstance(part, list) for part in batch)
                   for batch in batches)


@pytest.mark.parametrize("line", [
    "{}",  # no parts at all
    '{"intents": [], "ops": ["0,1,I"], "identities": [], "retracts": []}',  # a string row
    '{"intents": [], "ops": [[0, 1, "I", 1, NaN, 1.0, "ok", null, 0, 1, null]], '
    '"identities": [], "retracts": []}',  # NaN
    '{"intents": [[0, 100000000000000000000000, "I", 1]], "ops": [], "identities": [], '
    '"retracts": []}',  # 10^23: no bigint
    '{"intents": [[0, 1, "X", 1]], "ops": [], "identities": [], "retracts": []}',
    '{"intents": [[0, 1, "I"]], "ops": [], "identities": [], "retracts": []}',  # too short
    '{"intents": [[true, 1, "I", 1]], "ops": [], "identities": [], "retracts": []}',
    '{"intents": [], "ops": [[0, 1, "I", 1, 1.0, 1.0, "maybe", null, 0, 1, null]], '
    '"identities": [], "retracts": []}',  # no such outcome
])
def test_anything_but_the_recorders_rows_is_refused(tmp_path, line):
    path = tmp_path / "spill.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match="line 1 is not a spilled batch"):
        list(read_batches(str(path)))


def test_the_spill_file_removes_only_itself(tmp_path):
    """A user's file beside the spill file stays; a file already at its path (not the
    spill's) is neither appended to nor removed."""
    beside = tmp_path / "notes.txt"
    beside.write_text("mine")
    spill = Spill(str(tmp_path / "spill.jsonl"))
    spill.append(BATCH_1)
    spill.discard()
    assert beside.read_text() == "mine" and not (tmp_path / "spill.jsonl").exists()
    planted = tmp_path / "planted.jsonl"
    planted.write_text("someone's\n")
    other = Spill(str(planted))
    with pytest.raises(FileExistsError):
        other.append(BATCH_2)
    other.discard()
    assert planted.read_text() == "someone's\n"


def test_journal_events_the_repo_refuses_are_kept_and_read_back(tmp_path):
    """A repo that refuses the journal (nothing listens): each event goes to the run
    folder's journal spill file, owner-only, and comes back for `ptor reconcile`; lines
    that are not such events are left out."""
    import os
    import socket

    from ptor_harness.ledger import LedgerSpec
    from ptor_harness.ledger.journal import PhaseJournal, journal_spill_path, spilled_events

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = LedgerSpec("20261206T000000Z-abcdef", f"host=127.0.0.1 port={port} dbname=x "
                      "connect_timeout=1", "ptor", None, True)
    path = journal_spill_path(str(tmp_path))
    journal = PhaseJournal(spec, path)
    journal.start()
    journal.record(10.5, "phase:fault", {"action": "kill-primary"})
    journal.record(11.25, "fault-ended", {"ordinal": 1, "exit_code": 0})
    journal.close()
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(path, "a") as out:
        out.write('[1, 2]\n"text"\n[NaN, "x", {}]\n[12.0, "phase:drain", []]\n[13.0, "phase:dr')
    assert spilled_events(path) == [(10.5, "phase:fault", {"action": "kill-primary"}),
                                    (11.25, "fault-ended", {"ordinal": 1, "exit_code": 0})]
    assert spilled_events(str(tmp_path / "none.jsonl")) == []
