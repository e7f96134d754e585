"""A pass means a failover was tested, ptor never touches what it did not create, its
failover command is its own responsibility, and a run that could not start says why."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from .conftest import free_port_base, ptor_env

USER_COLUMNS = ("id bigint PRIMARY KEY, last_seq bigint NOT NULL, prev_seq bigint, "
                "payload text NOT NULL, written_at timestamptz NOT NULL")


def drill(lab, *extra):
    return ["--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "2",
            "--warmup-duration", "0.5", *extra]


def test_a_failed_failover_command_is_never_a_pass(make_lab, run_ptor):
    """A typo in the command (exit 127): nothing failed over, so nothing was tested."""
    lab = make_lab("sync")
    run = run_ptor(*drill(lab, "--duration", "3", "--failover-after", "0.5",
                          "--failover-command", "sshh pg1 'kill postgres password=Zq9sec'"))
    assert run.code == 4, run
    r = run.report
    assert r["verdict"] == "unknown"
    (fault,) = r["faults"]
    assert fault["exit_code"] == 127 and "not found" in fault["stderr_first_line"]
    checks = {c["name"]: c for c in r["checks"]}
    assert checks["faults ran"]["status"] == "unknown"
    assert "exited with status 127" in checks["faults ran"]["detail"]
    assert checks["expect failover"]["status"] == "unknown"  # and none was seen
    assert "Zq9sec" not in json.dumps(r) + run.stdout + run.stderr


def test_no_failover_drill_passes_only_without_one(make_lab, run_ptor):
    lab = make_lab("sync")
    calm = run_ptor(*drill(lab, "--duration", "2", "--expect", "no-failover"))
    assert calm.code == 0, calm
    assert calm.report["expectation"]["observed"]["primary_changed"] is False
    moved = run_ptor(*drill(lab, "--duration", "30", "--observe-after", "1",
                            "--expect", "no-failover", "--failover-after", "0.5",
                            "--lab-dir", lab.dir, "--fault", "kill-primary:0.5"))
    assert moved.code == 1, moved
    assert moved.report["expectation"]["observed"]["primary_changed"] is True
    assert any("must not fail over" in r for r in moved.report["verdict_reasons"])


def test_the_failover_command_is_bounded_and_its_group_is_killed(make_lab, run_ptor, tmp_path):
    """--failover-timeout kills the whole process group, not only the shell; 64 MB of
    output is kept as its first and last 8 KiB."""
    lab = make_lab("sync")
    pids = tmp_path / "pids"
    command = (f"sh -c 'sleep 60 & echo $! >> {pids}; sleep 60 & echo $! >> {pids}; "
               "head -c 67108864 /dev/zero | tr \"\\0\" x; wait'")
    started = time.monotonic()
    run = run_ptor(*drill(lab, "--duration", "4", "--failover-after", "0.2",
                          "--failover-timeout", "2", "--failover-command", command))
    assert run.code == 4, run
    assert time.monotonic() - started < 30
    (fault,) = run.report["faults"]
    assert "failover-timeout" in fault["error"]
    assert len(fault["output"]) < 17000 and "bytes left out" in fault["output"]
    children = [int(pid) for pid in pids.read_text().split()]
    assert len(children) == 2
    for pid in children:
        assert not psutil.pid_exists(pid) or \
            psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"{pid} survived"


def test_ctrl_c_never_reaches_the_failover_command(make_lab, tmp_path):
    """The terminal's SIGINT goes to ptor's whole process group: the failover command runs
    in a session of its own and is let finish; ptor drains and reports (exit 130)."""
    lab = make_lab("sync")
    marker = tmp_path / "finished"
    argv = [sys.executable, "-m", "ptor_harness.cli", "--report-dir", str(tmp_path / "runs"),
            "--report-json", str(tmp_path / "r.json"),
            *drill(lab, "--duration", "30", "--failover-after", "0.3",
                   "--failover-command", f"sleep 2 && touch {marker}")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ptor_env(), stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.cmdline()[:1] == ["sleep"] for p in psutil.Process(proc.pid).children(True)
               if p.is_running()):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert marker.exists(), "the failover command was cut short"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["interrupted"] == "SIGINT" and report["faults"][0]["exit_code"] == 0


def test_a_run_that_cannot_start_says_why_in_its_folder(run_ptor, tmp_path):
    port = free_port_base(1)
    night = tmp_path / "night.prom"  # the night before's pass, for a textfile collector
    night.write_text('ptor_verdict{verdict="pass"} 1.0\n')
    run = run_ptor("--primary-pgdsn", f"host=127.0.0.1 port={port} dbname=x",
                   "--rto-conn-timeout", "0.3", "--prometheus-file", str(night))
    assert run.code == 3, run
    assert 'ptor_verdict{verdict="unknown"} 1.0' in night.read_text()
    assert 'ptor_verdict{verdict="pass"} 0.0' in night.read_text()
    (folder,) = glob.glob(os.path.join(run.out_dir, "*"))
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
    report = json.loads(Path(folder, "report.json").read_text())
    assert report["verdict"] is None and report["error"].startswith("cannot connect")
    assert "cannot connect to the primary" in Path(folder, "ptor.log").read_text()
    history = subprocess.run([sys.executable, "-m", "ptor_harness.cli", "history",
                              "--report-dir", run.out_dir], capture_output=True, text=True,
                             env=ptor_env(), stdin=subprocess.DEVNULL, check=False)
    assert history.returncode == 0, history.stderr
    assert "did not start: cannot connect" in history.stdout


def test_unusable_outputs_are_refused_before_anything_connects(run_ptor, tmp_path):
    port = free_port_base(1)  # nothing listens: a connect would be exit 3
    base = ["--primary-pgdsn", f"host=127.0.0.1 port={port} dbname=x"]
    for extra, fragment in ((["--report-dir", "/dev/null"], "is not a folder"),
                            (["--prometheus-file", str(tmp_path / "no" / "x.prom")],
                             "does not exist"),
                            (["--junit-xml", str(tmp_path)], "is a folder")):
        argv = [sys.executable, "-m", "ptor_harness.cli", *base, *extra]
        done = subprocess.run(argv, capture_output=True, text=True, env=ptor_env(),
                              stdin=subprocess.DEVNULL, check=False, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert fragment in done.stderr and "Traceback" not in done.stderr


def test_user_tables_with_ptors_names_survive_init_drill_and_reset(make_lab, run_ptor):
    """A user's public.worker_0 and public.heartbeat (ptor's names and columns) and a user's
    own schema called ptor: --init refuses them (exit 3, naming the table), a drill never
    empties them, --reset drops nothing of theirs."""
    lab = make_lab("sync")
    node = lab.nodes["node1"]
    node.query(f"CREATE TABLE public.worker_0 ({USER_COLUMNS})")
    node.query("CREATE TABLE public.heartbeat (id int PRIMARY KEY, beat bigint NOT NULL, "
               "at timestamptz NOT NULL DEFAULT now())")
    node.query("INSERT INTO public.worker_0 (id, last_seq, payload, written_at) "
               "SELECT g, g, 'mine', now() FROM generate_series(1, 100) g")
    node.query("INSERT INTO public.heartbeat (id, beat) VALUES (1, 42)")
    node.query("CREATE SCHEMA ptor")  # the user's own, unmarked
    node.query(f"CREATE TABLE ptor.worker_1 ({USER_COLUMNS})")
    node.query("INSERT INTO ptor.worker_1 (id, last_seq, payload, written_at) "
               "SELECT g, g, 'mine too', now() FROM generate_series(1, 50) g")

    def rows():
        return (node.query("SELECT count(*), max(payload) FROM public.worker_0")[0],
                node.query("SELECT beat FROM public.heartbeat")[0],
                node.query("SELECT count(*) FROM ptor.worker_1")[0])

    before = rows()
    dsn = lab.primary_dsn()
    for schema, table in (("public", "public.worker_0"), ("ptor", "ptor.worker_1")):
        run = run_ptor("--primary-pgdsn", dsn, "--init", "--schema", schema,
                       "--parallel-workers", "2", "--ops-per-worker", "10")
        assert run.code == 3, run
        last = run.stderr.strip().splitlines()[-1]
        assert f"{table} exists but is not ptor's" in last, last
        drill_only = run_ptor("--primary-pgdsn", dsn, "--schema", schema,
                              "--parallel-workers", "2", "--ops-per-worker", "10")
        assert drill_only.code == 3, drill_only
        reset = run_ptor("--primary-pgdsn", dsn, "--schema", schema, "--reset")
        assert reset.code == 0, reset
    assert rows() == before
    assert node.query("SELECT obj_description('public.worker_0'::regclass, 'pg_class')") == \
        [(None,)]
    assert node.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'ptor'") == [(1,)]


def test_a_second_signal_kills_the_failover_commands_whole_group(make_lab, tmp_path):
    lab = make_lab("sync")
    pids = tmp_path / "pids"
    argv = [sys.executable, "-m", "ptor_harness.cli", "--report-dir", str(tmp_path / "runs"),
            *drill(lab, "--duration", "60", "--failover-after", "0.3", "--failover-command",
                   f"sh -c 'sleep 60 & echo $! > {pids}; wait'")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ptor_env(), stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pids.read_text())
    os.killpg(proc.pid, signal.SIGINT)  # the first: let the command finish ...
    # ptor has taken the first signal (it says so in its log) and the command lives on
    deadline = time.monotonic() + 60
    while not any("SIGINT: stopping the load" in Path(log).read_text()
                  for log in glob.glob(str(tmp_path / "runs" / "*" / "ptor.log"))):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert psutil.pid_exists(child)
    os.killpg(proc.pid, signal.SIGINT)  # ... the second: now, the command's group too
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "exiting now" in err
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and psutil.Process(child).status() != \
            psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(child) or \
        psutil.Process(child).status() == psutil.STATUS_ZOMBIE, "the command's child lived on"


def test_a_primary_whose_sync_standby_is_gone_is_refused_in_bounded_time(make_lab, run_ptor):
    """Every commit waits for a synchronous standby that is gone, and no statement_timeout
    ends that wait: ptor's preparation is bounded on the client, exit 3 with a hint."""
    lab = make_lab("sync")
    lab.stop_node("node2")
    started = time.monotonic()
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--statement-timeout", "1",
                   "--rto-conn-timeout", "0.5", timeout=60)
    assert run.code == 3, run
    assert time.monotonic() - started < 20
    assert "a synchronous standby that is gone" in run.stderr.strip().splitlines()[-1]
