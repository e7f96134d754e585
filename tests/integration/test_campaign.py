"""Campaigns on real labs: rounds back to back, percentiles from the rounds' own reports,
the health gate, a matrix on a managed stack, and SIGTERM in the middle."""

import contextlib
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ptor_harness.campaign.hold import ClusterHold
from ptor_harness.campaign.stats import percentile
from ptor_harness.config import parse_scenario
from ptor_harness.lab import pooler
from ptor_harness.lock import LOCK_CLASS, application_name

from .anatomy_checks import Watching
from .browser import browse
from .conftest import lab_command, ptor_env

COMMON = ["--init", "--parallel-workers", "2", "--warmup-duration", "1", "--duration", "30",
          "--observe-after", "1.5", "--full-data-validation"]


def campaign(run_ptor, lab, *args, timeout=600):
    run = run_ptor("campaign", "--primary-pgdsn", lab.primary_dsn(), *COMMON, *args,
                   timeout=timeout)
    (folder,) = glob.glob(os.path.join(run.out_dir, "campaign-*"))
    with open(os.path.join(folder, "campaign.json")) as src:
        return run, json.load(src), folder


class NodePoller(Watching):
    """One query on every data node of the lab, every `every` seconds, each answer's rows
    kept. Each node is asked on a session of the poller's own, kept open (a new session per
    turn would cost more than the windows some tests look for); a node that does not
    answer is skipped for that turn and connected to again on the next."""

    def __init__(self, lab, sql, params=(), every=0.005):
        super().__init__()
        self.lab, self.sql, self.params, self.every = lab, sql, params, every
        self.rows = set()
        self.sessions = {}

    def ask(self, node):
        conn = self.sessions.get(node.name)
        if conn is None or conn.closed:
            conn = self.sessions[node.name] = node.connect(timeout=1)
        try:
            with conn.cursor() as cur:
                cur.execute(self.sql, self.params)
                self.rows.update(cur.fetchall())
        except Exception:
            conn.close()
            raise

    def run(self):
        try:
            while not self.stop.wait(self.every):
                for node in self.lab.data_nodes():
                    with contextlib.suppress(Exception):
                        self.ask(node)
        finally:
            for conn in self.sessions.values():
                conn.close()


def lock_holders(lab) -> NodePoller:
    """Who holds ptor's drill lock on either node (application names)."""
    return NodePoller(lab, "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity "
                      "a USING (pid) WHERE l.locktype = 'advisory' AND l.granted AND "
                      "l.classid = %s", (LOCK_CLASS,))


def test_five_rounds_of_kill_primary(make_lab, run_ptor, tmp_path):
    lab = make_lab("sync")
    with lock_holders(lab) as watcher:
        run, c, folder = campaign(run_ptor, lab, "--lab-dir", lab.dir, "--fault",
                                  "kill-primary:1", "--rounds", "5")
    assert run.code == 0, run
    # the cluster was held by each round's drill and, between rounds, by the campaign
    holders = {name for (name,) in watcher.rows}
    assert application_name(c["campaign_id"]) in holders, holders
    assert {application_name(r["run_id"]) for r in c["rounds"]} & holders
    assert c["verdict"] == "pass" and c["rounds_planned"] == 5 and len(c["rounds"]) == 5
    assert run.report == c  # --report-json is the campaign's report
    reports = []
    for r in c["rounds"]:
        assert r["verdict"] == "pass"
        with open(os.path.join(r["run_dir"], "report.json")) as src:
            reports.append(json.load(src))
        assert os.path.dirname(r["run_dir"]) == folder
    # the percentiles are the rounds' own figures, as each drill's report.json has them
    rtos = [rep["rto"]["write_seconds"] for rep in reports]
    (cell,) = c["cells"]
    assert cell["write_rto"]["p50"] == pytest.approx(percentile(rtos, 50))
    assert cell["write_rto"]["p95"] == pytest.approx(percentile(rtos, 95))
    assert (cell["write_rto"]["min"], cell["write_rto"]["max"]) == (min(rtos), max(rtos))
    assert cell["lost_acknowledged_total"] == 0
    # each round fails over whatever is primary: failover and failback alternate
    ports = [rep["servers"]["primary_before"]["port"] for rep in reports]
    node1, node2 = lab.nodes["node1"].port, lab.nodes["node2"].port
    assert ports == [node1, node2, node1, node2, node1]
    for name in ("campaign.csv", "junit.xml", "campaign.png"):
        assert os.path.getsize(os.path.join(folder, name)) > 0
    assert "fault=" not in run.stdout and "all " in run.stdout  # one cell, named "all"
    # campaign.html, as a browser builds it: the verdict, the cell's figures, the picture,
    # and each round's own page linked (and there); nothing requested
    dom = browse(os.path.join(folder, "campaign.html"), tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "PASS</span>" in dom.stdout and c["campaign_id"] in dom.stdout
    assert f"<td>{cell['write_rto']['p50']:.3f}</td>" in dom.stdout
    assert 'src="data:image/png;base64,' in dom.stdout
    for r in c["rounds"]:
        name = os.path.basename(r["run_dir"])
        assert f'href="{name}/report.html"' in dom.stdout
        assert os.path.exists(os.path.join(folder, name, "report.html"))
    assert "Refused to" not in dom.stderr and "net::ERR" not in dom.stderr, dom.stderr[-2000:]


def test_a_rate_campaign_draws_the_envelope(make_lab, run_ptor):
    """Two cells of --rate on an async pair, a kill each: every round carries the WAL
    rate before its fault and the promoted standby's lag at it, as its own report has
    them; the faster cell wrote more WAL; the envelope is drawn and read."""
    lab = make_lab("async")
    run, c, folder = campaign(run_ptor, lab, "--lab-dir", lab.dir, "--fault",
                              "kill-primary:3", "--vary", "rate=300,3000", "--rounds", "1")
    assert run.code in (0, 1), run  # an async pair may lose acknowledged ops
    assert len(c["rounds"]) == 2
    by_rate = {}
    for r in c["rounds"]:
        with open(os.path.join(r["run_dir"], "report.json")) as src:
            report = json.load(src)
        anatomy = report["anatomy"]
        assert r["wal_bytes_per_second_before_fault"] == \
            anatomy["wal_bytes_per_second_before_fault"] > 0, (r, anatomy)
        promoted = [x for x in anatomy["replication_at_fault"]
                    if x["standby"] == anatomy["new_primary"]]
        assert promoted, anatomy["replication_at_fault"]
        assert r["lag_at_fault_bytes"] in {x["flushed_bytes_behind"] if x[
            "flushed_bytes_behind"] is not None else x["replayed_bytes_behind"]
            for x in promoted}
        assert r["lost_bytes"] == report["rpo"]["lost_bytes"]
        by_rate[r["cell"]] = r
        cell = next(x for x in c["cells"] if x["label"] == r["cell"])
        assert cell["wal_bytes_per_second_before_fault"]["max"] == \
            r["wal_bytes_per_second_before_fault"]
    assert by_rate["rate=3000"]["wal_bytes_per_second_before_fault"] > \
        2 * by_rate["rate=300"]["wal_bytes_per_second_before_fault"]
    assert len(c["envelope"]["points"]) == 2
    # rate cells whose WAL rates are over twice apart: a slope is read
    assert c["envelope"]["no_trend"] is None, c["envelope"]
    assert c["envelope"]["write_rto_seconds_per_wal_mb_per_second"] is not None
    assert "envelope over 2 rounds: each MB/s more of WAL" in run.stdout, run.stdout
    with open(os.path.join(folder, "campaign.csv")) as src:
        assert "lag_at_fault_bytes" in src.readline()
    assert os.path.getsize(os.path.join(folder, "campaign.png")) > 0


def test_a_cluster_that_does_not_settle_stops_the_campaign(make_lab, run_ptor):
    """The failover leaves no standby (the old primary stays down): round 2 would start on
    a cluster without its synchronous standby, so it is unknown and the campaign stops."""
    lab = make_lab("sync")
    run, c, _ = campaign(run_ptor, lab, "--failover-command", lab_command(lab, "failover"),
                         "--failover-after", "1", "--rounds", "3", "--settle-timeout", "3")
    assert run.code == 4, run
    assert c["verdict"] == "unknown"
    first, second = c["rounds"]
    assert first["verdict"] == "pass"
    assert second["verdict"] == "unknown" and second["run_id"] is None
    assert "no synchronous standby streams to the primary" in second["reason"]
    assert c["stop_reason"] == "the cluster did not settle before round 2"
    assert any("did not settle" in reason for reason in c["verdict_reasons"])


def test_sigterm_ends_after_the_round_under_way(make_lab, tmp_path):
    lab = make_lab("sync")
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ptor_harness.cli", "campaign", "--primary-pgdsn",
         lab.primary_dsn(), *COMMON, "--lab-dir", lab.dir, "--fault", "kill-primary:1",
         "--rounds", "5", "--report-dir", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ptor_env())
    deadline = time.monotonic() + 120
    while not glob.glob(str(out / "campaign-*" / "*" / "report.json")):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # during round 2
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 128 + signal.SIGTERM, (stdout, stderr)
    (path,) = glob.glob(str(out / "campaign-*" / "campaign.json"))
    with open(path) as src:
        c = json.load(src)
    assert c["interrupted"] == "SIGTERM" and c["stop_reason"] == "SIGTERM received"
    assert 1 <= len(c["rounds"]) < 5 and c["verdict"] == "unknown"
    assert "Campaign " in stdout


def test_switchover_against_kill_primary_on_patroni(patroni_lab, run_ptor):
    """A 2-cell matrix, 3 rounds each, interleaved: switchover's median write RTO is below
    kill-primary's on Patroni (a leader's TTL of 5 s against a planned handover)."""
    lab = patroni_lab
    lab.wait_settled(120)
    run, c, _ = campaign(run_ptor, lab, "--lab-dir", lab.dir, "--fault", "kill-primary:1",
                         "--vary", "fault=kill-primary:1,switchover:1", "--rounds", "3",
                         timeout=900)
    assert run.code == 0, run
    cells = {cell["label"]: cell for cell in c["cells"]}
    kill, switch = cells["fault=kill-primary:1"], cells["fault=switchover:1"]
    assert kill["passed"] == switch["passed"] == 3
    assert switch["write_rto"]["p50"] < kill["write_rto"]["p50"]
    assert [r["cell"] for r in c["rounds"]][:2] == ["fault=kill-primary:1",
                                                    "fault=switchover:1"]


def test_max_run_seconds_bounds_the_whole_campaign(make_lab, run_ptor):
    """Each round gets what is left of --max-run-seconds; no round starts with less than
    10 s left; the rounds not run make the campaign unknown."""
    lab = make_lab("sync")
    started = time.monotonic()
    run, c, _ = campaign(run_ptor, lab, "--lab-dir", lab.dir, "--fault", "kill-primary:1",
                         "--rounds", "20", "--max-run-seconds", "30")
    took = time.monotonic() - started
    assert run.code == 4, run
    assert c["stop_reason"] == "max-run-seconds reached" and 1 <= len(c["rounds"]) < 20
    assert any(reason.startswith(f"{len(c['rounds'])} of 20 rounds ran")
               for reason in c["verdict_reasons"])
    assert took < 30 + 30  # the last round's own deadline, then its drain and report


def test_a_campaign_holds_the_cluster_between_rounds(make_lab, run_ptor):
    """What the campaign holds while no round runs keeps any other ptor out: a drill from
    cron, or a second campaign, is refused with one sentence naming the campaign, until
    the hold is let go."""
    lab = make_lab("sync")
    scenario = parse_scenario(["--primary-pgdsn", lab.primary_dsn()], {})
    hold = ClusterHold(scenario, "campaign-test")
    hold.take(lab.primary_dsn())
    try:
        drill = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--duration", "2",
                         "--warmup-duration", "0", "--expect", "any")
        assert drill.code == 3, drill
        assert "another ptor drill is running against this primary" in drill.stderr
        assert "run campaign-test" in drill.stderr
        second = run_ptor("campaign", "--primary-pgdsn", lab.primary_dsn(), "--init",
                          "--rounds", "2", "--duration", "2", "--warmup-duration", "0",
                          "--expect", "any")
        assert second.code == 3 and "run campaign-test" in second.stderr, second
    finally:
        hold.release()
    after = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--duration", "2",
                     "--warmup-duration", "0", "--expect", "any")
    assert after.code == 0, after


def test_a_hold_whose_session_died_is_taken_again(make_lab, run_ptor):
    """The campaign held the cluster through the lab's pgbouncer, and the next cell removes
    it: that session holds nothing any more, so taking the hold again makes a new session
    through the DSN that leads to the primary now, and other drills are kept out."""
    lab = make_lab("sync")
    pooler.add(lab, "session", "repoint")
    scenario = parse_scenario(["--primary-pgdsn", lab.primary_dsn()], {})
    hold = ClusterHold(scenario, "campaign-test")
    hold.take(lab.primary_dsn())
    try:
        assert hold.alive()
        pooler.remove(lab)
        assert not hold.alive() and hold.held  # a session, but a dead one
        hold.take(lab.direct_dsn())
        assert hold.alive()
        drill = run_ptor("--primary-pgdsn", lab.direct_dsn(), "--init", "--duration", "2",
                         "--warmup-duration", "0", "--expect", "any")
        assert drill.code == 3 and "run campaign-test" in drill.stderr, drill
    finally:
        hold.release()


def test_a_campaign_begun_through_the_pooler_it_removes(make_lab, run_ptor):
    """The campaign is given the lab's pgbouncer and varies pooler=none,pgbouncer: rounds
    without the pooler run on the lab's own DSN, the campaign holds the cluster between
    rounds through whichever DSN leads there at the time, and the lab gets its pooler
    back at the end."""
    lab = make_lab("sync")
    pooler.add(lab, "session", "repoint")
    with lock_holders(lab) as watcher:
        run, c, _ = campaign(run_ptor, lab, "--lab-dir", lab.dir, "--fault",
                             "kill-primary:1", "--vary", "pooler=none,pgbouncer")
    assert run.code == 0, run
    assert c["stop_reason"] is None and [r["verdict"] for r in c["rounds"]] == ["pass"] * 2
    dsns = []
    for r in c["rounds"]:
        with open(os.path.join(r["run_dir"], "report.json")) as src:
            dsns.append(json.load(src)["scenario"]["primary_pgdsn"])
    assert "," in dsns[0] and "," not in dsns[1]  # the lab's multi-host DSN, then pgbouncer
    assert application_name(c["campaign_id"]) in {name for (name,) in watcher.rows}
    lab.reload()
    assert lab.state.get("pooler") and lab.daemons["pgbouncer"].running()


def test_a_matrix_of_lab_settings(make_lab, run_ptor):
    """--vary pooler=none,pgbouncer and synchronous-commit=on,off on the streaming lab:
    the lab is set before each cell's rounds (pgbouncer added or removed, the setting on
    every node), each round's DSN is the one the lab's pooler setting leads to, and the
    lab is left as it was found."""
    lab = make_lab("sync")
    with NodePoller(lab, "SELECT current_setting('synchronous_commit') WHERE NOT "
                    "pg_is_in_recovery()", every=0.1) as watcher:  # the primary's
        run, c, folder = campaign(run_ptor, lab, "--lab-dir", lab.dir, "--fault",
                                  "kill-primary:1", "--vary", "pooler=none,pgbouncer",
                                  "--vary", "synchronous-commit=on,off",
                                  "--prometheus-file", os.path.join(lab.dir, "c.prom"))
    assert run.code in (0, 1), run  # synchronous_commit=off may lose acknowledged commits
    assert [cell["label"] for cell in c["cells"]] == [
        "pooler=none, synchronous-commit=on", "pooler=none, synchronous-commit=off",
        "pooler=pgbouncer, synchronous-commit=on", "pooler=pgbouncer, synchronous-commit=off"]
    assert len(c["rounds"]) == 4 and c["stop_reason"] is None, \
        ([(r["cell"], r["verdict"], r.get("reason")) for r in c["rounds"]], run.stderr[-3000:])
    pooled = set()
    for r in c["rounds"]:
        with open(os.path.join(r["run_dir"], "report.json")) as src:
            rep = json.load(src)
        assert rep["rto"]["recovered"] is True and rep["validation"]["completed"] is True
        if r["cell"].endswith("synchronous-commit=on"):
            assert r["verdict"] == "pass" and r["lost_acknowledged"] == 0, r
        if "pgbouncer" in r["cell"]:
            pooled.add(rep["scenario"]["primary_pgdsn"].split()[1])
        else:
            assert "," in rep["scenario"]["primary_pgdsn"]  # the lab's multi-host DSN
    assert len(pooled) == 1  # one pgbouncer, added once for both of its cells
    assert {value for (value,) in watcher.rows} == {"on", "off"}, watcher.rows
    # progress: a line per round with its cell, verdict and RTO, and an ETA
    for r in c["rounds"]:
        line = f"campaign: round 1/1 of cell {r['cell']}: {r['verdict']}, write RTO " \
            f"{r['write_rto']:.3f} s"
        assert line in run.stderr, (line, run.stderr[-2000:])
    assert run.stderr.count("s to go") == 4
    # Prometheus: per cell the rounds by verdict, the RTO and the loss, as campaign.json
    with open(os.path.join(lab.dir, "c.prom")) as src:
        prom = src.read()
    verdict = c["verdict"]
    assert f'ptor_campaign_verdict{{verdict="{verdict}"}} 1.0' in prom
    for cell in c["cells"]:
        label = cell["label"]
        assert f'ptor_campaign_write_rto_seconds{{cell="{label}",quantile="0.5"}} ' \
            f'{cell["write_rto"]["p50"]!r}' in prom
        assert f'ptor_campaign_lost_acknowledged_ops{{cell="{label}"}} ' \
            f'{float(cell["lost_acknowledged_total"])!r}' in prom
    lab.reload()
    assert "pooler" not in lab.state  # put back as it was
    for node in lab.data_nodes():
        assert node.query("SHOW synchronous_commit")[0][0] == "on"
