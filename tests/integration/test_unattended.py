"""Unattended drills on a real lab: signals, the deadline, one drill at a time, and the run
folder's files read back by their parsers."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import crew, lab_command, ptor_env


def start_ptor(tmp_path, *args):
    """ptor in the background, as cron would start it."""
    report_dir = tmp_path / "runs"
    argv = [sys.executable, "-m", "ptor_harness.cli", "--report-dir", str(report_dir),
            "--report-json", str(tmp_path / "report.json"), *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ptor_env(), stdin=subprocess.DEVNULL)


def wait_for_log(tmp_path, text, proc, timeout=60.0):
    """Until the run's log file holds `text` (e.g. "phase load": the load is running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in (tmp_path / "runs").glob("*/ptor.log"):
            if text in log.read_text():
                return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"ptor never logged {text!r}")


ACKED_OP = "SELECT 1 FROM {schema}ledger_op WHERE worker = {mark} AND outcome = 'ok' LIMIT 1"
EVENT = "SELECT 1 FROM {schema}ledger_event WHERE name = {mark} LIMIT 1"


def wait_for_ledger_row(tmp_path, sql, arg, proc, what, timeout=60.0, repo_dsn=None):
    """Until the run's ledger (embedded, or the repo at `repo_dsn`) answers `sql` (a
    template over {schema} and one {mark} for `arg`) with a row."""
    import sqlite3

    import psycopg2

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if repo_dsn is not None:
            with contextlib.closing(psycopg2.connect(repo_dsn)) as conn, \
                    conn.cursor() as cur:
                cur.execute("SELECT to_regclass('ptor.ledger_event') IS NOT NULL")
                if cur.fetchone()[0]:
                    cur.execute(sql.format(schema="ptor.", mark="%s"), (arg,))
                    if cur.fetchone():
                        return
        for path in (tmp_path / "runs").glob("*/ledger.sqlite"):
            with contextlib.closing(sqlite3.connect(str(path), timeout=5)) as db:
                if db.execute(sql.format(schema="", mark="?"), (arg,)).fetchone():
                    return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"the ledger never held {what}")


def wait_for_ops(tmp_path, worker, proc, timeout=60.0, repo_dsn=None):
    """Until the run's ledger holds an acknowledged op of `worker` (it is past its
    start-up: spawned processes take a while to import and connect on a busy machine)."""
    wait_for_ledger_row(tmp_path, ACKED_OP, worker, proc,
                        f"an acknowledged op of worker {worker}", timeout, repo_dsn)


def drill_args(lab, *extra):
    """These drills test ptor's own behaviour, most without a failover: a plain load
    unless a test says otherwise (test_trust.py holds --expect's default to account)."""
    return ["--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "3",
            "--warmup-duration", "0.5", "--expect", "any", *extra]


def test_sigterm_mid_load_stops_drains_reconciles_and_reports(make_lab, tmp_path):
    lab = make_lab("sync")
    proc = start_ptor(tmp_path, *drill_args(lab, "--duration", "120",
                                             "--full-data-validation"))
    wait_for_log(tmp_path, "phase load", proc)
    for worker in range(3):  # the signal must land mid-load, every worker writing
        wait_for_ops(tmp_path, worker, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["interrupted"] == "SIGTERM" and r["stop_reason"] == "interrupted by SIGTERM"
    assert r["verdict"] == "unknown"
    assert r["ops"]["ok"] > 0
    # the ledger against the primary: every acknowledged op's effect is there, and every
    # row on the primary is explained by the ledger (nothing acknowledged is missing)
    assert r["validation"]["completed"] and r["validation"]["mode"] == "full"
    assert r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["anomalies"]["phantom_rows"] == 0 and r["validation"]["mismatched_rows"] == 0
    assert r["recorder"]["ops"] >= r["ops"]["ok"]


def test_a_second_signal_exits_at_once_and_takes_the_children_along(make_lab, tmp_path):
    """The first SIGINT stops the load, and the drill then waits for the failover command
    under way (never abandon a cluster half failed over): the second SIGINT lands there
    and ends ptor at once."""
    lab = make_lab("sync")
    proc = start_ptor(tmp_path, *drill_args(lab, "--duration", "120", "--failover-command",
                                            "sleep 10", "--failover-after", "0"))
    wait_for_log(tmp_path, "phase fault", proc)
    # ptor's own (each named for its role, or python's: the fork server, the resource
    # tracker), not the failover command's shell and sleep
    children = [c for c in psutil.Process(proc.pid).children(recursive=True)
                if "python" in c.name() or c.name().startswith("ptor")]
    names = [c.name() for c in children]
    assert "ptor: recorder" in names and len(children) >= 4, names  # and 3 workers
    proc.send_signal(signal.SIGINT)
    wait_for_log(tmp_path, "SIGINT: stopping the load", proc)  # signals do not queue
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGINT
    assert "SIGINT again: exiting now without a report" in err
    assert not (tmp_path / "report.json").exists()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_one_drill_at_a_time_and_a_crashed_run_does_not_block(make_lab, tmp_path):
    lab = make_lab("sync")
    first = start_ptor(tmp_path, *drill_args(lab, "--repo-pgdsn", lab.repo_dsn(),
                                              "--duration", "120"))
    wait_for_log(tmp_path, "phase load", first)
    run_id = next((tmp_path / "runs").glob("*/ptor.log")).parent.name
    second = subprocess.run(
        [sys.executable, "-m", "ptor_harness.cli", *drill_args(lab, "--duration", "1"),
         "--report-dir", str(tmp_path / "other")],
        capture_output=True, text=True, env=ptor_env(), timeout=60, check=False)
    assert second.returncode == 3
    assert "another ptor drill is running against this primary" in second.stderr
    assert f"run {run_id}" in second.stderr
    assert second.stderr.count("\n") == 1  # one sentence, no traceback
    children = psutil.Process(first.pid).children(recursive=True)
    first.kill()  # the harness host dies: its sessions end, and so must its workers
    first.communicate(timeout=30)
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []  # orphaned workers and recorder noticed and stopped
    third = subprocess.run(
        [sys.executable, "-m", "ptor_harness.cli", *drill_args(lab, "--duration", "1"),
         "--repo-pgdsn", lab.repo_dsn(), "--report-dir", str(tmp_path / "third")],
        capture_output=True, text=True, env=ptor_env(), timeout=120, check=False)
    assert third.returncode == 0, third.stderr


def test_max_run_seconds_is_a_hard_deadline_even_for_a_failover_command(make_lab, run_ptor,
                                                                       tmp_path):
    """--max-run-seconds bounds the whole run: a failover command still running at the
    deadline (failover-timeout would let it run 300 s) is killed with its process group,
    and a drill whose fault never finished cannot pass. (A fault planned past the deadline
    is refused before the run: tests/unit/test_config.py.)"""
    lab = make_lab("sync")
    pid_file = tmp_path / "command.pid"
    run = run_ptor(*drill_args(lab, "--duration", "120", "--failover-command",
                               f"echo $$ > {pid_file}; exec sleep 120",
                               "--failover-after", "0.5", "--max-run-seconds", "4"))
    assert run.code == 4, run  # no verdict either way
    r = run.report
    assert r["deadline_reached"] is True and r["verdict"] == "unknown"
    [fault] = r["faults"]
    assert fault["error"] == ("was still running when max-run-seconds was reached; its "
                              "process group was killed"), fault
    assert "was still running when max-run-seconds was reached" in r["verdict_reasons"][0]
    assert r["phases"]["drain"] - r["phases"]["check"] < 4 + 1.0
    assert not psutil.pid_exists(int(pid_file.read_text()))
    assert r["validation"]["completed"] and r["rpo"]["lost_acknowledged_ops"] == 0


def test_run_folder_and_outputs_parse(make_lab, run_ptor, tmp_path):
    lab = make_lab("sync")
    prom, junit = tmp_path / "ptor.prom", tmp_path / "ptor.xml"
    run = run_ptor(*drill_args(lab, "--duration", "30", "--observe-after", "1",
                               "--lab-dir", lab.dir, "--fault", "kill-primary:0.5",
                               "--prometheus-file", str(prom), "--junit-xml", str(junit),
                               "--progress"))
    assert run.code == 0, run
    progress = [line for line in run.stderr.splitlines() if "ok/s" in line]
    assert progress and all(re.match(r"\s*\d+\.\ds (warmup|load|fault)\s+ok/s\s+\d+\s+"
                                     r"failed/s\s+\d+\s+in-doubt\s+\d+\s+(writing|outage)",
                                     line) for line in progress), progress
    folder = run.report["run_dir"]
    assert sorted(os.listdir(folder)) == ["junit.xml", "ledger.sqlite", "metrics.prom",
                                          "ptor.log", "report.html", "report.json",
                                          "scenario.ini", "timeline.csv", "timeline.png"]
    # they describe a cluster: the folder and every file in it are the owner's alone
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert {name: os.stat(os.path.join(folder, name)).st_mode & 0o777
            for name in os.listdir(folder)} == dict.fromkeys(os.listdir(folder), 0o600)
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    assert families["ptor_write_rto_seconds"].samples[0].value == \
        run.report["rto"]["write_seconds"] > 0
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    with open(os.path.join(folder, "timeline.csv")) as src:
        lines = src.read().splitlines()
    assert lines[0].startswith("second,") and any(line.endswith(",1") for line in lines[1:])
    with open(os.path.join(folder, "ptor.log")) as src:
        log = src.read()
    assert "phase fault" in log and "writes are back" in log


def test_history_from_the_repo_and_from_the_run_folders(make_lab, run_ptor, tmp_path):
    lab = make_lab("sync")
    first = run_ptor(*drill_args(lab, "--duration", "1", "--repo-pgdsn", lab.repo_dsn()))
    second = run_ptor(*drill_args(lab, "--duration", "1", "--repo-pgdsn", lab.repo_dsn(),
                                  "--max-write-rto", "5"))
    assert first.code == second.code == 0
    ids = [first.report["run_id"], second.report["run_id"]]

    def history(*args):
        done = subprocess.run([sys.executable, "-m", "ptor_harness.cli", "history", *args],
                              capture_output=True, text=True, env=ptor_env(), timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    from_repo = json.loads(history("--repo-pgdsn", lab.repo_dsn(), "--json"))
    assert [r["run_id"] for r in from_repo["runs"]] == ids[::-1]  # newest first
    assert all(r["verdict"] == "pass" and r["lost"] == 0 for r in from_repo["runs"])
    text = history("--report-dir", first.out_dir)
    assert text.startswith(f"Runs in {first.out_dir}, newest first")
    assert text.index(ids[1]) < text.index(ids[0]) and "Trends, oldest to newest" in text


def test_no_output_ever_shows_a_password(make_lab, tmp_path):
    """Passwords in both DSNs (the servers trust loopback, so they are carried but not
    needed): not in stdout, stderr, any file of the run folder (the embedded ledger's bytes
    included), the Prometheus and JUnit files, the history, the repo's ledger, or the
    process titles of ptor and its children while it runs."""
    secret = "Pw-3xq9-never-shown"
    lab = make_lab("sync")
    env = dict(ptor_env(), REPO_PGDSN=f"{lab.repo_dsn()} password={secret}")
    prom, junit = tmp_path / "p.prom", tmp_path / "j.xml"
    # one DSN as a flag: it sits in ptor's command line, which ptor rewrites masked
    argv = [sys.executable, "-m", "ptor_harness.cli", "--primary-pgdsn",
            f"{lab.primary_dsn()} password={secret}", "--init", "--parallel-workers", "2",
            "--warmup-duration", "0.5", "--duration", "4", "--lab-dir", lab.dir, "--fault",
            "kill-primary:0.5", "--report-dir", str(tmp_path / "runs"), "--progress",
            "--prometheus-file", str(prom), "--junit-xml", str(junit)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, stdin=subprocess.DEVNULL)
    wait_for_log(tmp_path, "phase load", proc)
    titles = [" ".join(p.cmdline()) for p in
              [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True)]
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(titles) >= 4 and not any(secret in t for t in titles), titles
    # the coordinator's own, rewritten, and still found by `pgrep ptor`
    assert titles[0].startswith("ptor ") and "password=********" in titles[0]
    # each child named for its role (messages.name_process), which no secret reaches
    roles = {t.strip() for t in titles if t.startswith("ptor: ")}
    assert {"ptor: worker 0", "ptor: worker 1", "ptor: recorder", "ptor: probe",
            "ptor: node observer"} <= roles, titles
    assert secret not in out and secret not in err
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()] + [prom, junit]
    assert len(files) >= 8
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    (scenario,) = (tmp_path / "runs").glob("*/scenario.ini")
    assert scenario.read_text().count("password=********") == 2  # it was there, masked
    for args in (["--report-dir", str(tmp_path / "runs")], []):
        shown = subprocess.run([sys.executable, "-m", "ptor_harness.cli", "history", *args],
                               capture_output=True, text=True, env=env, timeout=60,
                               check=False)
        assert shown.returncode == 0 and secret not in shown.stdout + shown.stderr
    rows = lab.nodes["repo"].query("SELECT scenario || coalesce(report, '') FROM "
                                   "ptor.ledger_run")
    assert rows and not any(secret in row[0] for row in rows)
    assert not lab.nodes["repo"].query("SELECT 1 FROM ptor.ledger_op WHERE error LIKE %s",
                                       (f"%{secret}%",))


def test_a_killed_worker_is_noticed_within_a_second_and_the_others_carry_on(make_lab,
                                                                             tmp_path):
    lab = make_lab("sync")
    proc = start_ptor(tmp_path, *drill_args(lab, "--duration", "5",
                                             "--full-data-validation"))
    wait_for_log(tmp_path, "phase load", proc)
    wait_for_ops(tmp_path, 1, proc)
    # the coordinator starts the recorder, the probe, workers 0, 1, 2, then the node
    # observer
    spawned = crew(proc)
    assert len(spawned) == 6
    victim = spawned[3]  # worker 1
    killed_at = time.time()
    victim.kill()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["errors"] == ["worker 1 died (killed by SIGKILL)"]
    assert any("worker(s) crashed" in w for w in r["warnings"])
    (log,) = (tmp_path / "runs").glob("*/ptor.log")
    line = next(x for x in log.read_text().splitlines() if "worker 1 died" in x)
    noticed = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + \
        int(line[20:23]) / 1000
    assert noticed - killed_at < 1.0
    # the others carried on; the dead worker's planned ops are in doubt, all resolved
    workers = {w["worker"]: w for w in r["workers"]}
    assert workers[0]["ok"] > workers[1]["ok"] and workers[2]["ok"] > workers[1]["ok"]
    assert workers[1]["indeterminate"] >= 1
    resolved = r["indeterminate"]
    assert resolved["applied"] + resolved["not_applied"] + resolved["superseded"] >= 1
    assert r["rpo"]["lost_acknowledged_ops"] == 0 and r["validation"]["mismatched_rows"] == 0
    assert r["verdict"] == "pass"


def test_workers_killed_in_a_row_under_a_busy_load_never_wedge_the_others(make_lab,
                                                                           tmp_path):
    """Half the workers SIGKILLed one after another while the load runs as fast as the
    lab allows (synchronous_commit off): the survivors carry on, the drill ends by itself
    and nothing is miscounted. (The queue-level hazard, a writer killed while holding a
    shared write lock, needs a full pipe to show reliably: test_op_queue.py makes one.)"""
    lab = make_lab("async")
    primary = lab.nodes[lab.named("primary")]
    primary.query("ALTER SYSTEM SET synchronous_commit = off")
    primary.query("SELECT pg_reload_conf()")
    proc = start_ptor(tmp_path, "--primary-pgdsn", lab.primary_dsn(), "--init",
                      "--parallel-workers", "8", "--warmup-duration", "0.5", "--duration",
                      "6", "--full-data-validation", "--expect", "any")
    wait_for_log(tmp_path, "phase load", proc)
    spawned = crew(proc)
    assert len(spawned) == 11  # the recorder, the probe, workers 0..7, the observer
    for victim in spawned[2:10:2]:  # workers 0, 2, 4, 6
        time.sleep(0.3)
        victim.kill()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    r = json.loads((tmp_path / "report.json").read_text())
    assert sorted(r["errors"]) == [f"worker {w} died (killed by SIGKILL)" for w in (0, 2, 4, 6)]
    assert r["stop_reason"] == "duration reached"
    workers = {w["worker"]: w for w in r["workers"]}
    assert min(workers[w]["ok"] for w in (1, 3, 5, 7)) > max(workers[w]["ok"]
                                                              for w in (0, 2, 4, 6))
    assert r["rpo"]["lost_acknowledged_ops"] == 0 and r["validation"]["mismatched_rows"] == 0
    assert r["anomalies"]["phantom_rows"] == 0 and r["verdict"] == "pass"


def test_a_dead_recorder_stops_the_load_at_once(make_lab, tmp_path):
    """...and the run says it did not finish in its folder and in every export, where the
    night before's pass stood (a textfile collector would go on reading it)."""
    lab = make_lab("sync")
    stale = {"prom": "ptor_verdict{verdict=\"pass\"} 1.0\n", "xml": "<testsuites/>\n",
             "json": '{"verdict": "pass"}\n'}
    for suffix, text in stale.items():
        (tmp_path / f"night.{suffix}").write_text(text)
    proc = start_ptor(tmp_path, *drill_args(lab, "--duration", "120"),
                      "--report-json", str(tmp_path / "night.json"),
                      "--prometheus-file", str(tmp_path / "night.prom"),
                      "--junit-xml", str(tmp_path / "night.xml"))
    wait_for_log(tmp_path, "phase load", proc)
    spawned = crew(proc)
    recorder = spawned[0]  # started before the probe and the workers
    killed_at = time.monotonic()
    recorder.kill()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - killed_at < 15  # not the 120 s of load it was asked for
    assert proc.returncode == 3, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ptor: error: the recorder did not finish writing the ledger")
    assert "Traceback" not in err
    gone, alive = psutil.wait_procs(spawned[1:], timeout=10)
    assert alive == []
    families = {f.name: f for f in text_string_to_metric_families(
        (tmp_path / "night.prom").read_text())}
    verdicts = {s.labels["verdict"]: s.value for s in families["ptor_verdict"].samples}
    assert verdicts == {"pass": 0, "fail": 0, "unknown": 1}
    assert families["ptor_run_info"].samples[0].labels["ledger"] == "sqlite"
    assert families["ptor_run_finished"].samples[0].value == 0
    (case,) = ET.parse(tmp_path / "night.xml").getroot().iter("testcase")
    assert "recorder" in case.find("error").get("message")
    exported = json.loads((tmp_path / "night.json").read_text())
    assert exported["verdict"] is None and "recorder" in exported["error"]
    (folder,) = (tmp_path / "runs").glob("*/")
    assert json.loads((folder / "report.json").read_text())["error"] == exported["error"]
    history = subprocess.run([sys.executable, "-m", "ptor_harness.cli", "history",
                              "--report-dir", str(tmp_path / "runs")], capture_output=True,
                             text=True, env=ptor_env(), stdin=subprocess.DEVNULL, check=False)
    assert "did not finish: the recorder" in history.stdout, history.stdout


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
def test_a_run_whose_coordinator_was_killed_is_reconciled_later(make_lab, tmp_path, ledger):
    lab = make_lab("sync")
    repo = ["--repo-pgdsn", lab.repo_dsn()] if ledger == "postgresql" else []
    repo_dsn = lab.repo_dsn() if ledger == "postgresql" else None
    proc = start_ptor(tmp_path, *drill_args(lab, "--duration", "120",
                                             "--full-data-validation", *repo,
                                             "--failover-command", "exit 0",
                                             "--failover-after", "0"))
    wait_for_log(tmp_path, "phase load", proc)
    for worker in range(3):  # ops in flight and acknowledged, by every worker
        wait_for_ops(tmp_path, worker, proc, repo_dsn=repo_dsn)
    # the fault ran, and its end is journaled
    wait_for_ledger_row(tmp_path, EVENT, "fault-ended", proc, "the fault's end",
                        repo_dsn=repo_dsn)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()  # the harness host dies
    proc.communicate(timeout=30)
    psutil.wait_procs(children, timeout=10)
    run_id = next((tmp_path / "runs").glob("*/ptor.log")).parent.name
    assert not (tmp_path / "report.json").exists()

    def reconcile(*args):
        return subprocess.run(
            [sys.executable, "-m", "ptor_harness.cli", "reconcile", *args, *repo,
             "--primary-pgdsn", lab.primary_dsn(), "--report-dir", str(tmp_path / "runs"),
             "--report-json", str(tmp_path / "later.json"),
             "--prometheus-file", str(tmp_path / "later.prom"),
             "--junit-xml", str(tmp_path / "later.xml")],
            capture_output=True, text=True, env=ptor_env(), timeout=120, check=False)

    done = reconcile("--run", run_id)
    assert done.returncode == 4, done.stderr  # the drill itself never completed
    r = json.loads((tmp_path / "later.json").read_text())
    # every export a drill writes, ptor reconcile writes too
    families = {f.name: f for f in text_string_to_metric_families(
        (tmp_path / "later.prom").read_text())}
    assert families["ptor_lost_acknowledged_ops"].samples[0].value == 0
    assert ET.parse(tmp_path / "later.xml").getroot().find("testsuite") is not None
    assert r["run_id"] == run_id and r["stop_reason"].startswith("reconciled later")
    # the phases journaled while the load ran (by the journal thread) came back from it
    assert r["phases"]["warmup"] <= r["phases"]["load"] < r["phases"]["reconcile"]
    assert r["validation"]["completed"] and r["validation"]["mode"] == "full"
    assert r["ops"]["ok"] > 0 and r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["anomalies"]["phantom_rows"] == 0 and r["validation"]["mismatched_rows"] == 0
    assert r["verdict"] == "unknown" and "did not finish" in r["verdict_reasons"][0]
    # the fault it ran came back from the journal, as it ended: not "no fault injected"
    assert [(f["command"], f["exit_code"]) for f in r["faults"]] == [("exit 0", 0)]
    assert r["faults"][0]["started_at"] <= r["faults"][0]["ended_at"]
    assert "injected no fault" not in " ".join(r["account"])
    assert (tmp_path / "runs" / run_id / "report.json").exists()
    missing = reconcile("--run", "20990101T000000Z-abcdef")
    assert missing.returncode == 3
    assert ("no embedded ledger for run" if ledger == "sqlite" else "the ledger has no run") \
        in missing.stderr
    assert reconcile("--run", "../etc").returncode == 2
    # once more (a second opinion, as against another node after a split brain): the
    # tables still hold this run's rows, so the same figures
    again = reconcile("--run", run_id)
    assert again.returncode == 4, again.stderr
    r2 = json.loads((tmp_path / "later.json").read_text())
    for section in ("ops", "rpo", "indeterminate", "anomalies"):
        assert r2[section] == r[section], section


def test_a_finished_run_checked_again_keeps_its_own_report(make_lab, run_ptor):
    """Seen: `ptor reconcile` of a run that had passed (a failover, nothing lost) made it
    UNKNOWN, "the run did not finish (its coordinator died...)", and overwrote its
    report.json, JUnit and Prometheus files and its verdict in the ledger. A second check
    of a finished run is now one: judged like the drill, said to be a second check, its
    files in a folder of their own; the run's own record stays as it was."""
    import sqlite3

    lab = make_lab("sync")
    drill = run_ptor(*drill_args(lab, "--duration", "3", "--lab-dir", lab.dir,
                                 "--fault", "kill-primary:1"))
    assert drill.code == 0 and drill.report["servers"]["primary_moves"], drill
    folder = drill.report["run_dir"]

    def own_files() -> dict:
        return {name: open(os.path.join(folder, name), "rb").read()
                for name in os.listdir(folder)
                if not name.startswith(("ptor.log", "ledger.sqlite"))
                and os.path.isfile(os.path.join(folder, name))}

    def ledger_ending() -> tuple:
        with contextlib.closing(sqlite3.connect(os.path.join(folder, "ledger.sqlite"))) as db:
            verdict, stored = db.execute("SELECT verdict, report FROM ledger_run").fetchone()
        return verdict, json.loads(stored)["stop_reason"]

    before, ending = own_files(), ledger_ending()
    assert "report.json" in before and "junit.xml" in before
    again = run_ptor("reconcile", "--run", drill.report["run_id"], "--primary-pgdsn",
                     lab.primary_dsn())
    assert again.code == 0, again
    r = again.report
    assert r["verdict"] == "pass", r["verdict_reasons"]
    assert r["stop_reason"].startswith("Re-checked by ptor reconcile: the run had finished "
                                       "at ") and "with verdict PASS" in r["stop_reason"]
    assert r["account"][0].startswith("Re-checked by ptor reconcile")
    assert "did not finish" not in " ".join(r["account"] + r["verdict_reasons"])
    assert {c["name"]: c["status"] for c in r["checks"]}["drill completed"] == "pass"
    for section in ("ops", "rpo", "indeterminate", "anomalies"):
        assert r[section] == drill.report[section], section
    # from the journal, the probe's gaps with them (its first failure can be the
    # detection): the same figures as the drill's
    same = ("name", "command", "started_at", "ended_at", "exit_code", "output",
            "detection_seconds", "injection_to_first_ok_seconds")
    assert [[f[k] for k in same] for f in r["faults"]] == \
        [[f[k] for k in same] for f in drill.report["faults"]]
    assert r["rto"]["probe_seconds"] == drill.report["rto"]["probe_seconds"] is not None
    assert [w["probe"] for w in r["windows"]] == [w["probe"] for w in drill.report["windows"]]
    # the drill's own record, as it was
    assert own_files() == before and ledger_ending() == ending
    (recheck,) = [n for n in os.listdir(folder) if n.startswith("recheck-")]
    with open(os.path.join(folder, recheck, "report.json")) as src:
        assert json.load(src)["stop_reason"] == r["stop_reason"]
    assert os.path.exists(os.path.join(folder, recheck, "report.html"))


def test_a_later_check_judges_by_the_runs_own_expectation_unless_given_again(make_lab,
                                                                            run_ptor):
    """Seen by reading: `ptor reconcile` judged a run by this invocation's thresholds, so a
    drill held to --expect no-failover was re-judged against the default expectation (a
    failover). Now a later check takes the run's own thresholds and expectation, and one
    given again on the command line wins."""
    lab = make_lab("sync")
    drill = run_ptor(*drill_args(lab, "--duration", "1.5", "--expect", "no-failover",
                                 "--max-write-rto", "30"))
    assert drill.code == 0, drill
    assert drill.report["expectation"]["expected"] == "no-failover"
    reach = ("reconcile", "--run", drill.report["run_id"], "--primary-pgdsn",
             lab.primary_dsn())
    again = run_ptor(*reach)
    assert again.code == 0, again
    assert again.report["verdict"] == "pass", again.report["verdict_reasons"]
    assert again.report["expectation"]["expected"] == "no-failover"
    assert again.report["scenario"]["max_write_rto"] == 30
    told = run_ptor(*reach, "--expect", "failover")
    assert told.report["expectation"]["expected"] == "failover"
    assert told.report["verdict"] != "pass" and told.code != 0, told.report["verdict"]


def test_a_run_whose_tables_a_later_drill_emptied_is_not_reconciled(make_lab, tmp_path,
                                                                      run_ptor):
    """Every drill empties ptor's tables as it starts. Seen: `ptor reconcile` of a run
    after later drills on the same cluster counted 58 of its 60 acknowledged writes lost,
    against the later drills' rows. Now it refuses, naming when the tables were emptied,
    and writes no report."""
    lab = make_lab("sync")
    proc = start_ptor(tmp_path, *drill_args(lab, "--duration", "120"))
    for worker in range(3):
        wait_for_ops(tmp_path, worker, proc)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()  # run A's host dies: its ledger has no verdict
    proc.communicate(timeout=30)
    psutil.wait_procs(children, timeout=10)
    (folder,) = (tmp_path / "runs").glob("*/")
    later = run_ptor(*drill_args(lab, "--duration", "1"))  # run B, to its end
    assert later.code == 0, later
    done = subprocess.run(
        [sys.executable, "-m", "ptor_harness.cli", "reconcile", "--run", folder.name,
         "--primary-pgdsn", lab.primary_dsn(), "--report-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=ptor_env(), timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert "a later drill emptied ptor's tables on the primary at " in done.stderr
    assert f"after run {folder.name} began: its rows are gone" in done.stderr
    assert not (folder / "report.json").exists() and "Traceback" not in done.stderr


def test_a_run_whose_repo_died_before_its_fault_is_reconciled_with_that_fault(
        make_lab, tmp_path):
    """The repo gone for good mid-drill (sync repo mode): the fault still runs, the repo
    refuses its journal events, the run cannot finish (exit 3). With the repo back, `ptor
    reconcile` knows the fault from the run folder's journal spill file and the primary
    before it from the workers' sessions: it never says no fault was injected, nor that
    the primary did not change, where the test crashed the primary and promoted the
    standby."""
    lab = make_lab("sync")
    repo = ["--repo-pgdsn", lab.repo_dsn()]
    failover = lab_command(lab, "failover")
    proc = start_ptor(tmp_path, *drill_args(lab, "--duration", "60", *repo,
                                             "--failover-command", failover,
                                             "--failover-after", "2", "--max-outage", "5"))
    for worker in range(3):
        wait_for_ops(tmp_path, worker, proc, repo_dsn=lab.repo_dsn())
    lab.nodes["repo"].kill(signal.SIGQUIT)  # before the fault, which is at +2.5 s
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    # the fault ran, whatever the ledger knows
    assert lab.nodes["node2"].query("SELECT pg_is_in_recovery()")[0][0] is False, err
    (folder,) = (tmp_path / "runs").glob("*/")
    assert (folder / "journal-spill.jsonl").exists(), err
    lab.nodes["repo"].start()
    done = subprocess.run(
        [sys.executable, "-m", "ptor_harness.cli", "reconcile", "--run", folder.name, *repo,
         "--primary-pgdsn", lab.primary_dsn(), "--report-dir", str(tmp_path / "runs"),
         "--report-json", str(tmp_path / "later.json")],
        capture_output=True, text=True, env=ptor_env(), timeout=120, check=False)
    assert done.returncode == 4, done.stderr
    r = json.loads((tmp_path / "later.json").read_text())
    assert [(f["command"], f["exit_code"]) for f in r["faults"]] == [(failover, 0)]
    ports = (r["servers"]["primary_before"]["port"], r["servers"]["primary_after"]["port"])
    assert ports == (lab.nodes["node1"].port, lab.nodes["node2"].port)
    said = " ".join(r["account"])
    assert "injected no fault" not in said and "did not change" not in said, said
    assert f"ptor ran the fault {r['faults'][0]['name']}" in said
