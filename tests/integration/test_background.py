"""--background-load on real servers: the user's own pgbench beside ptor's load, through a
kill and a promotion of a standby that was stopped for 2 s (so acknowledged ops are lost).
It is started again after the failover, its throughput before and after is in the report,
nothing of it is left after the drain, and ptor's loss count still equals the old primary's
WAL past the switch point (the ground truth counts ptor's tables only, whatever else the
WAL holds). A command that cannot run is given up, reported, and changes nothing of the
verdict."""

import os

import psutil

from ptor_harness.lab.pg import bindir

from .groundtruth import (
    check_against_truth,
    failover_command,
    keep_decodable_history,
    truth_and_report,
)

SCRIPT = "INSERT INTO user_load (v) VALUES (repeat(md5(random()::text), 8));\n"


def members_of(group: int) -> list[int]:
    """The test's own look: live processes in a process group."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == group and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def test_a_background_pgbench_through_a_failover(make_lab, run_ptor, tmp_path):
    lab = make_lab("async")
    keep_decodable_history(lab)
    lab.nodes["node1"].query("CREATE TABLE user_load (id bigserial PRIMARY KEY, v text)")
    script = tmp_path / "user.sql"
    script.write_text(SCRIPT)
    pids = tmp_path / "pids"
    # each start appends its shell's pid (its process group), then becomes pgbench
    command = (f"echo $$ >> {pids}; exec {os.path.join(bindir(), 'pgbench')} -n -P 1 "
               f"-T 600 -c 2 -f {script} '{lab.primary_dsn()}'")
    run, acknowledged, in_doubt = truth_and_report(
        lab, run_ptor, "sqlite", False, "--primary-pgdsn", lab.primary_dsn(),
        "--parallel-workers", "2", "--warmup-duration", "4", "--failover-after", "4",
        "--failover-command", failover_command(lab, "stop-node node2; sleep 2; failover"),
        "--background-load", command)
    check_against_truth("background-pgbench", run, acknowledged, in_doubt)
    assert acknowledged, "the standby stopped for 2 s: the drill must lose acknowledged ops"
    section = run.report["background"]
    assert section["reported"], section
    [bg] = section["commands"]
    assert bg["starts"] >= 2, bg  # pgbench ended with the old primary, and ran again
    assert bg["tps_before_fault"] and bg["tps_after_fault"], bg
    assert bg["gave_up"] is None and bg["left_running"] == 0, bg
    fault = run.report["faults"][0]["started_at"]
    assert any(second >= fault + 1 and tps > 0 for second, tps, _ in bg["tps"]), bg["tps"]
    groups = [int(line) for line in pids.read_text().split()]
    assert len(groups) == bg["starts"]
    assert all(not members_of(group) for group in groups), "a background process was left"
    # its rows are the user's: on the new primary, never in ptor's figures
    rows = lab.nodes["node2"].query("SELECT count(*) FROM user_load")[0][0]
    assert rows > 0
    wal = section["wal"]
    assert wal["ptor_share"] is not None and 0 < wal["ptor_share"] < 1, wal
    assert "Background load" in run.stdout and "bg tps" in run.stdout


def test_a_background_command_that_cannot_run_is_given_up(make_lab, run_ptor):
    lab = make_lab("async")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "2",
                   "--warmup-duration", "2", "--duration", "12", "--expect", "any",
                   "--background-load", "ptor-no-such-command --rate 10")
    assert run.code == 0 and run.report["verdict"] == "pass", run
    [bg] = run.report["background"]["commands"]
    assert bg["starts"] == 5 and bg["exit_codes"] == [127] * 5, bg
    assert "exit code 127" in bg["gave_up"], bg
    assert any("ptor-no-such-command" in w and "not started again" in w
               for w in run.report["warnings"]), run.report["warnings"]
