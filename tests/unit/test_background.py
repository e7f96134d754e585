"""--background-load: reading pgbench's progress, the report's section and ptor's share of
the WAL (pure, on synthetic records), the option's values, and the supervisor's restart
and kill rules on real shell commands (no database involved)."""

import os
import threading
import time

import psutil
import pytest

from ptor_harness.config import parse_scenario
from ptor_harness.drill import background
from ptor_harness.drill.background import CommandRecord, supervise
from ptor_harness.drill.flags import SharedFlag
from ptor_harness.errors import ConfigError
from ptor_harness.verify.background import (
    background_section,
    background_warnings,
    command_section,
    progress_of,
    wal_share,
)

DSN = "host=127.0.0.1 dbname=app user=ptor"


def test_progress_lines_of_pgbench_15_and_before():
    assert progress_of("progress: 5.0 s, 2431.9 tps, lat 1.640 ms stddev 0.310, 3 failed\n") \
        == (2431.9, 3)
    assert progress_of("progress: 1.0 s, 12.0 tps, lat 1.6 ms stddev 0.3") == (12.0, 0)
    assert progress_of("pgbench: error: client 0 aborted in command 0") is None
    assert progress_of("transaction type: user.sql") is None


def record(starts, progress, exits=((9.0, 2),), **kw) -> CommandRecord:
    return CommandRecord("pgbench -f x.sql", list(starts), list(exits), len(exits),
                         list(progress), **kw)


def test_throughput_before_and_after_the_fault():
    r = record([1.5, 9.2], [(2.1, 100.0, 0), (3.1, 200.0, 1), (10.0, 50.0, 0),
                            (11.0, 150.0, 2)])
    section = command_section(r, fault_at=8.0)
    assert section["tps_before_fault"] == 150.0 and section["tps_after_fault"] == 100.0
    assert section["starts"] == 2 and section["exit_codes"] == [2]
    assert section["tps"][0] == [2, 100.0, 0] and section["failed_transactions"] == 3
    assert command_section(r, fault_at=None)["tps_after_fault"] is None


def test_ptor_share_of_the_wal_from_its_load_alone():
    # ptor alone in seconds 100-101: 1,000 ops/s at 500 kB/s -> 500 bytes per op; with the
    # background load from 102.5: seconds 104-106 at 800 ops/s and 2 MB/s
    timeline = [{"t": t, "ok": 1000 if t < 102 else 800} for t in range(100, 110)]
    wal = [[t, 500_000 if t < 102 else 2_000_000] for t in range(100, 110)]
    share = wal_share([record([102.5], [])], timeline, wal, alone_from=100.0,
                      both_until=107.0)
    assert share["ptor_alone_seconds"] == 2 and share["ptor_wal_bytes_per_op"] == 500.0
    assert share["wal_bytes_per_second"] == 2_000_000
    assert share["ptor_wal_bytes_per_second"] == 400_000 and share["ptor_share"] == 0.2
    assert share["why"] is None


def test_no_share_without_a_stretch_of_ptor_alone_or_without_wal_samples():
    timeline = [{"t": t, "ok": 1000} for t in range(100, 110)]
    wal = [[t, 500_000] for t in range(100, 110)]
    late_warmup = wal_share([record([100.2], [])], timeline, wal, 100.0, 107.0)
    assert late_warmup["ptor_share"] is None and "warmup" in late_warmup["why"]
    no_observer = wal_share([record([102.5], [])], timeline, [], 100.0, 107.0)
    assert no_observer["ptor_share"] is None and "observer" in no_observer["why"]
    never_started = wal_share([record([], [], exits=())], timeline, wal, 100.0, 107.0)
    assert never_started["why"] == "no background command started"


def test_the_section_and_its_warnings():
    assert background_section(None, (), [], [], {}, None) is None
    silent = background_section(None, ("pgbench",), [], [], {"warmup": 1.0}, None)
    assert silent["reported"] is False
    assert "never reported" in background_warnings(silent)[0]
    given_up = record([1.0, 1.3], [], exits=((1.1, 127), (1.4, 127)),
                      gave_up="exited within 2 s on each of its 5 starts (last: exit code "
                              "127); not started again",
                      output="sh: 1: pgbenhc: not found\n")
    section = background_section([given_up], ("pgbenhc",), [], [], {"warmup": 0.5}, 5.0)
    [warning] = background_warnings(section)
    assert "not started again" in warning and "pgbenhc: not found" in warning


def test_background_load_values():
    def commands(*args):
        return parse_scenario(["--primary-pgdsn", DSN, *args], {}).load.background_load

    assert commands() == ()
    assert commands("--background-load", "psql -c 'select 1, 2; select 3'") == \
        ("psql -c 'select 1, 2; select 3'",)  # never split
    assert commands("--background-load", "a", "--background-load", "b") == ("a", "b")
    assert commands("--background-load", "none") == ()
    assert commands("--background-load", '["a x", "b, y"]') == ("a x", "b, y")
    assert commands("--background-load", "[ -x /bin/true ] && true") == \
        ("[ -x /bin/true ] && true",)
    with pytest.raises(ConfigError, match="at most 8"):
        commands(*["--background-load", "true"] * 9)


def run_for(seconds: float, commands: tuple, alone: float = 0.0) -> list:
    go, stop = SharedFlag(bytearray(2), 0), SharedFlag(bytearray(2), 1)
    go.set()
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True
    timer.start()
    return supervise(background.BackgroundSpec(commands, alone), go, stop, lambda: False)


def test_a_command_that_exits_at_once_every_time_is_given_up():
    [r] = run_for(60.0, ("exit 127",))  # returns once it is given up
    assert len(r.starts) == background.GIVE_UP_AFTER and r.exit_count == 5
    assert [code for _, code in r.exits] == [127] * 5
    assert "exit code 127" in r.gave_up
    gaps = [b - a for a, b in zip(r.starts, r.starts[1:])]
    assert gaps == sorted(gaps) and gaps[-1] >= 1.5  # backing off, not a loop


def test_a_command_that_ran_is_restarted_and_its_progress_read(tmp_path):
    line = "progress: 1.0 s, 10.0 tps, lat 1.0 ms stddev 0.1, 0 failed"
    [r] = run_for(4.5, (f"echo '{line}'; sleep {background.QUICK_EXIT + 0.3}; exit 3",))
    assert len(r.starts) >= 2 and r.gave_up is None
    assert 3 in [code for _, code in r.exits]
    assert [tps for _, tps, _ in r.progress][:2] == [10.0, 10.0]


def test_the_drain_leaves_no_member_of_its_group(tmp_path):
    """A child that ignores SIGTERM, and a grandchild of a shell that already exited:
    both gone once the supervisor reports."""
    pids = tmp_path / "pids"
    command = f"echo $$ >> {pids}; trap '' TERM; (trap '' TERM; sleep 300) & sleep 300"
    orphan = f"echo $$ >> {pids}; (trap '' TERM; sleep 300) & exit 0"
    started = time.monotonic()
    records = run_for(2.0, (command, orphan), alone=0.2)
    assert time.monotonic() - started < 2.0 + background.TERM_GRACE + 3
    assert all(r.left_running == 0 for r in records)
    for group in {int(p) for p in pids.read_text().split()}:
        for proc in psutil.process_iter(["pid"]):
            try:
                same = os.getpgid(proc.pid) == group
            except OSError:
                continue
            assert not same or proc.status() == psutil.STATUS_ZOMBIE, (group, proc)
