"""The recorder never drops anything: N workers x M ops => exactly N*M ledger entries."""

import glob
import os
import sys
import time

import pytest

from ptor_harness.ledger import LedgerSpec

from .conftest import ledger_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
@pytest.mark.parametrize("repo_mode", ["sync", "async"])
def test_every_op_reaches_the_ledger(make_lab, run_ptor, ledger, repo_mode):
    workers, per_worker = 4, 1500
    lab = make_lab("sync")
    args = ["--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", str(workers),
            "--ops-per-worker", str(per_worker), "--warmup-duration", "0", "--duration", "120",
            "--full-data-validation", "--expect", "any"]
    run = run_ptor(*args, *ledger_args(lab, ledger, repo_mode))
    assert run.code == 0, run
    r = run.report
    assert r["stop_reason"] == "all workers ended"
    assert r["ops"]["ok"] == workers * per_worker
    assert r["recorder"]["ops"] == workers * per_worker
    if ledger == "sqlite":
        (path,) = glob.glob(os.path.join(run.out_dir, "*", "ledger.sqlite"))
        spec = LedgerSpec(r["run_id"], None, "ptor", path, True)
    else:
        spec = LedgerSpec(r["run_id"], lab.repo_dsn(), "ptor", None, True)
    reader = spec.open()
    try:
        assert reader.count("ledger_op") == workers * per_worker
        for worker in range(workers):
            seqs = [op.seq for op in reader.ops_by_seq(worker)]
            assert seqs == list(range(1, per_worker + 1))
        # sync mode made every intent durable first; all were sent, none left over
        expected_intents = workers * per_worker if repo_mode == "sync" else 0
        assert reader.count("ledger_intent") == expected_intents
    finally:
        reader.close()
    assert r["validation"]["mismatched_rows"] == 0


def test_the_repo_going_away_for_a_while_loses_nothing(make_lab, run_ptor):
    """The repo (PostgreSQL ledger) crashes mid-load and comes back 3 s later: the recorder
    keeps its batch, reconnects and writes it again; in sync repo mode no op was sent that
    the ledger does not hold, so reconciliation is exact."""
    from .conftest import lab_command

    lab = make_lab("sync")
    outage = (lab_command(lab, "stop-node", "repo") + " && sleep 3 && "
              + lab_command(lab, "start-node", "repo"))
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--repo-pgdsn", lab.repo_dsn(),
                   "--init", "--parallel-workers", "3", "--warmup-duration", "1",
                   "--failover-after", "1", "--duration", "8", "--full-data-validation",
                   "--failover-command", outage, "--expect", "no-failover")
    assert run.code == 0, run
    r = run.report
    assert r["faults"][0]["exit_code"] == 0
    assert r["recorder"]["repo_reconnects"] >= 1
    assert r["recorder"]["ops"] == r["ops"]["ok"] + r["ops"]["failed"] + r["ops"]["indeterminate"]
    assert r["validation"]["completed"] and r["validation"]["mismatched_rows"] == 0
    assert r["anomalies"]["phantom_rows"] == 0 and r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["verdict"] == "pass"


def _async_repo_drill(lab, *extra):
    return ["--primary-pgdsn", lab.primary_dsn(), "--repo-pgdsn", lab.repo_dsn(), "--init",
            "--async-repo-mode", "--parallel-workers", "3", "--warmup-duration", "1",
            "--failover-after", "1", "--full-data-validation", "--expect", "no-failover",
            *extra]


def test_async_repo_mode_spills_while_the_repo_is_away_and_replays(make_lab, run_ptor):
    """Async repo mode does not stall the load for a lost repo: batches go to a local
    spill file, which is replayed once the repo is back; the ledger ends complete."""
    from .conftest import lab_command

    lab = make_lab("sync")
    outage = (lab_command(lab, "stop-node", "repo") + " && sleep 4 && "
              + lab_command(lab, "start-node", "repo"))
    run = run_ptor(*_async_repo_drill(lab, "--duration", "9", "--failover-command", outage))
    assert run.code == 0, run
    r = run.report
    assert r["faults"][0]["exit_code"] == 0
    assert r["recorder"]["spilled_rows"] > 0 and r["recorder"]["repo_reconnects"] >= 1
    assert r["recorder"]["ops"] == r["ops"]["ok"] + r["ops"]["failed"] + r["ops"]["indeterminate"]
    assert not glob.glob(os.path.join(run.out_dir, "*", "ledger-spill.jsonl"))
    # the load went on while the repo was away: no client saw an outage of the primary
    assert r["windows"] == []
    assert r["validation"]["completed"] and r["validation"]["mismatched_rows"] == 0
    assert r["anomalies"]["phantom_rows"] == 0 and r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["verdict"] == "pass"


def test_a_long_spill_on_fast_storage_replays_in_linear_time(make_lab, run_ptor, tmp_path):
    """With the lab in memory (/dev/shm) the load is fast and a repo outage spills well
    over a thousand batches: the repo stays away until the spill file holds 1,100 (a
    busy machine takes longer to get there). The replay moves each batch once (it used to
    move every earlier batch again with each one: quadratic, outlasting the stop grace,
    and workers still holding outcomes were killed: thousands of false losses and
    phantoms)."""
    from .conftest import lab_command

    lab = make_lab("sync", under="/dev/shm")
    wait = (f"cd {ROOT} && {sys.executable} -m tests.integration.spill_wait "
            f"{tmp_path / 'runs'} 1100 30")
    outage = " && ".join([lab_command(lab, "stop-node", "repo"), wait,
                          lab_command(lab, "start-node", "repo")])
    run = run_ptor(*_async_repo_drill(lab, "--duration", "36", "--failover-command", outage,
                                      "--parallel-workers", "12"))
    assert run.code == 0, run
    r = run.report
    print(f"\nspilled {r['recorder']['spilled_batches']} batches, "
          f"{r['recorder']['spilled_rows']} rows; drain took "
          f"{r['phases']['reconcile'] - r['phases']['drain']:.1f} s")
    assert r["recorder"]["spilled_batches"] >= 1000
    assert r["recorder"]["ops"] == r["ops"]["ok"] + r["ops"]["failed"] + r["ops"]["indeterminate"]
    assert not r["errors"], r["errors"]  # no worker was killed
    assert r["validation"]["completed"] and r["validation"]["mismatched_rows"] == 0
    assert r["anomalies"]["phantom_rows"] == 0 and r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["indeterminate"]["unrecorded_applied"] == 0
    assert r["verdict"] == "pass"


@pytest.mark.parametrize("repo_mode", ["sync", "async"])
def test_a_repo_that_never_returns_is_reconciled_later(make_lab, run_ptor, repo_mode):
    """Past max-outage the run ends with one clear error (exit 3) naming the way out;
    async repo mode keeps its spill file. `ptor reconcile --run` replays the file (if any)
    once the repo is back and reconciles exactly: in sync repo mode every op sent is in
    the ledger as an intent at least."""
    from .conftest import lab_command

    lab = make_lab("sync")
    args = _async_repo_drill(lab, "--duration", "60", "--max-outage", "3",
                             "--failover-command", lab_command(lab, "stop-node", "repo"))
    if repo_mode == "sync":
        args.remove("--async-repo-mode")
    run = run_ptor(*args)
    assert run.code == 3, run
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ptor: error:") and "Traceback" not in run.stderr
    assert "the repo stayed unreachable for 3 s" in last and "ptor reconcile --run" in last
    assert last.count("the repo stayed unreachable") == 1, last  # said once
    (run_dir,) = glob.glob(os.path.join(run.out_dir, "*"))
    run_id = os.path.basename(run_dir)
    spilled = os.path.join(run_dir, "ledger-spill.jsonl")
    assert run_id in last
    if repo_mode == "async":
        assert spilled in last and os.path.getsize(spilled) > 0
    else:
        assert not os.path.exists(spilled)

    lab.start_node("repo")
    later = run_ptor("reconcile", "--run", run_id, "--primary-pgdsn", lab.primary_dsn(),
                     "--repo-pgdsn", lab.repo_dsn())
    assert later.code == 4, later  # reconciled, but the drill itself did not complete
    r = later.report
    assert ("replayed from its spill file" in r["stop_reason"]) == (repo_mode == "async")
    assert not os.path.exists(spilled)
    assert r["validation"]["completed"] and r["validation"]["mode"] == "full"
    assert r["ops"]["ok"] > 0 and r["rpo"]["lost_acknowledged_ops"] == 0
    # every op the workers ran is in the ledger: no row on the primary is unexplained
    assert r["anomalies"]["phantom_rows"] == 0 and r["validation"]["mismatched_rows"] == 0


class SilentClose:
    """The ledger's session as a partition leaves it: the client gives it up without a
    word reaching the server (no Terminate message, no FIN), so the server keeps the
    backend, idle in its cut-off transaction, for as long as the test holds it."""

    def __init__(self, conn):
        self.conn = conn

    def close(self):
        pass


def test_a_batch_written_again_never_waits_for_the_session_a_partition_cut_off(make_lab):
    """The recorder's batch was cut off mid-transaction; its session lives on, on the
    server, holding the batch's keys. The ledger's new session ends that one (its own,
    named by pid and start time) before writing the batch again, which then holds every
    row once; a session of the same role that is not the ledger's is left alone."""
    import psycopg2

    from ptor_harness.ledger.postgres import PostgresLedger, init_repo

    lab = make_lab("sync")
    repo = lab.nodes["repo"]
    setup = psycopg2.connect(lab.repo_dsn())
    init_repo(setup, "ptor")
    setup.close()
    ledger = PostgresLedger(lab.repo_dsn(), "ptor", "partitioned-run")
    bystander = psycopg2.connect(lab.repo_dsn(), application_name="someone-else")
    bystander_backend = repo.query("SELECT pid, backend_start FROM pg_stat_activity "
                                   "WHERE application_name = 'someone-else'")[0]
    intents = [(0, seq, "i", seq) for seq in range(1, 65)]
    ledger.write(intents, [], [], [])  # not committed: the commit is what the cut took
    cut_off = ledger.conn
    old_pid = cut_off.get_backend_pid()
    assert repo.query("SELECT state FROM pg_stat_activity WHERE pid = %s",
                      (old_pid,)) == [("idle in transaction",)]
    try:
        ledger.conn = SilentClose(cut_off)
        ledger.reconnect()
        deadline = time.monotonic() + 30
        while repo.query("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (old_pid,)):
            assert time.monotonic() < deadline, "the cut-off session still runs"
            time.sleep(0.02)
        ledger.write(intents, [], [], [], again=True)
        ledger.commit()
        assert repo.query("SELECT count(*), count(DISTINCT seq) FROM ptor.ledger_intent "
                          "WHERE run_id = 'partitioned-run'") == [(64, 64)]
        # only the ledger's own session: another of the same role is never ended
        ledger.end_session(bystander_backend)
        with bystander.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        bystander.close()
        cut_off.close()
        ledger.close()
