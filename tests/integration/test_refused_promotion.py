"""Patroni in async mode, at its default maximum_lag_on_failover (1 MiB), refusing to
promote a standby too far behind when its leader dies, as ptor reports it: no promotion,
the standby's lag at the fault above 1 MiB, writes down until --max-outage, and a verdict
whose reason names the lag, not only that writes did not come back.

On loopback a standby receives WAL as fast as any load writes it, so the test holds the
standby back itself: its WAL receiver is stopped (SIGSTOP) before the drill, and a
background pgbench writing 8 kB rows beside ptor's load takes the primary's WAL past 1 MiB
ahead of it well before the kill. The kill is the leader's Patroni and postgres together
(a node crash) and nothing else: the lab's own kill-primary would wait for a promotion."""

import os
import re
import signal

import pytest

from ptor_harness.lab.patroni import PatroniLab
from ptor_harness.lab.pg import bindir

from .conftest import free_port_base, lab_dir, remove_lab

MIB = 1024 * 1024
SCRIPT = "INSERT INTO user_load (v) VALUES (repeat(md5(random()::text), 256));\n"


@pytest.fixture
def async_patroni():
    lab = PatroniLab.up(os.path.join(lab_dir(), "lab"), free_port_base(9), "async")
    yield lab
    remove_lab(lab)


def test_patroni_refuses_a_standby_too_far_behind(async_patroni, run_ptor, tmp_path):
    lab = async_patroni
    assert lab.leader() == "pa1"
    lab.nodes["pa1"].query("CREATE TABLE user_load (id bigserial PRIMARY KEY, v text)")
    [(receiver,)] = lab.nodes["pa2"].query("SELECT pid FROM pg_stat_wal_receiver")
    script = tmp_path / "user.sql"
    script.write_text(SCRIPT)
    kill = f"kill -9 {lab.manager('pa1').pid} {lab.nodes['pa1'].pid}"
    os.kill(receiver, signal.SIGSTOP)
    try:
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--lab-dir", lab.dir,
                       "--parallel-workers", "2", "--warmup-duration", "4",
                       "--failover-after", "3", "--duration", "40", "--max-outage", "12",
                       "--failover-command", kill, "--background-load",
                       f"exec {os.path.join(bindir(), 'pgbench')} -n -P 1 -T 600 -c 2 "
                       f"-f {script} '{lab.primary_dsn()}'")
    finally:
        os.kill(receiver, signal.SIGCONT)
    r = run.report
    assert run.code == 1 and r["verdict"] == "fail", run
    assert lab.leader() != "pa2"  # Patroni never promoted it
    anatomy = r["anatomy"]
    assert not any(e["name"] == "standby promoted" for e in anatomy["events"]), anatomy
    [own_view] = [x for x in anatomy["replication_at_fault"]
                  if x["standby"] == "pa2" and x["seen_by"] == "itself"]
    assert own_view["replayed_bytes_behind"] > MIB, anatomy["replication_at_fault"]
    assert r["rto"]["recovered"] is False
    assert r["stop_reason"].startswith("no primary accepted writes for 12 s"), r["stop_reason"]
    [reason] = [x for x in r["verdict_reasons"] if x.startswith("writes did not come back")]
    assert "the closest, pa2, was" in reason and "maximum_lag_on_failover" in reason, reason
    behind = re.search(r"the closest, pa2, was ([\d,]+) bytes", reason).group(1)
    assert int(behind.replace(",", "")) > MIB, reason
    [bg] = r["background"]["commands"]
    assert bg["tps_before_fault"], bg
