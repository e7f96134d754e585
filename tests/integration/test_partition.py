"""A network partition between the harness and the primary, made with a network namespace
and a veth pair this test creates (traffic stays inside them), healed after a while: the
outage is measured from the clients' view and nothing is miscounted."""

import os
import shutil

import pytest

from .conftest import free_port_base, lab_dir
from .netns import PartitionedServer

CUT_SECONDS = 4.0


@pytest.fixture
def partitioned():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CI runs as root)")
    if shutil.which("ip") is None:
        pytest.fail("iproute2's ip is needed for the partition test (.ci/setup installs it)")
    server = PartitionedServer(lab_dir(), free_port_base(1))
    try:
        yield server.up()
    finally:
        server.down()


def test_a_partition_from_the_primary_is_an_outage_and_nothing_is_miscounted(
        partitioned, run_ptor):
    fault = (f"{partitioned.shell('cut')} && sleep {CUT_SECONDS:g} && "
             f"{partitioned.shell('heal')}")
    run = run_ptor("--primary-pgdsn", partitioned.dsn(), "--init", "--parallel-workers", "3",
                   "--warmup-duration", "1", "--failover-after", "1", "--observe-after", "2",
                   "--duration", "60", "--statement-timeout", "1", "--rto-conn-timeout", "1",
                   "--full-data-validation", "--failover-command", fault)
    assert run.code == 0, run
    r = run.report
    assert r["faults"][0]["exit_code"] == 0, r["faults"]
    # every worker lost the primary, and writes came back only once the link did; ops are
    # bounded by statement-timeout + rto-conn-timeout, connects by rto-conn-timeout
    assert all(w["outages"] >= 1 for w in r["workers"]), r["workers"]
    assert r["rto"]["recovered"]
    assert CUT_SECONDS - 0.3 <= r["rto"]["write_seconds"] <= CUT_SECONDS + 4.0, r["rto"]
    # the same server before and after: a partition is not a failover
    before, after = r["servers"]["primary_before"], r["servers"]["primary_after"]
    assert (before["system_id"], before["timeline"]) == (after["system_id"], after["timeline"])
    # the ops caught in the partition were in doubt, and every one was resolved
    assert r["ops"]["indeterminate"] == sum(r["indeterminate"].values())
    assert r["validation"]["completed"] and r["validation"]["mode"] == "full"
    assert r["validation"]["mismatched_rows"] == 0 and r["anomalies"]["phantom_rows"] == 0
    assert r["rpo"]["lost_acknowledged_ops"] == 0 and r["anomalies"]["holes"] == 0
    assert r["verdict"] == "pass"


def test_a_partitioned_repo_holds_the_load_back_and_loses_nothing(make_lab, run_ptor):
    """The repo (PostgreSQL ledger) sits behind a link that is cut for longer than
    tcp_user_timeout while the recorder writes to it: the recorder's session is cut
    instead of waiting out the kernel's retransmissions, it reconnects once the link is
    back and writes its batch again; sync repo mode sent no op the ledger lacked."""
    from ptor_harness.db import TCP_USER_TIMEOUT

    repo = PartitionedServer(lab_dir(), free_port_base(1))
    try:
        repo.up()
        lab = make_lab("sync")
        cut = TCP_USER_TIMEOUT + 5  # the kernel gives up at its next retransmission after it
        # the load runs on 10 s past the heal: the recorder's reconnect (backing off while
        # the link was down) and the workers' ops after it must fall inside the run (3 s
        # did not, once, in CI)
        fault = f"{repo.shell('cut')} && sleep {cut:g} && {repo.shell('heal')}"
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--repo-pgdsn", repo.dsn(),
                       "--init", "--parallel-workers", "3", "--warmup-duration", "1",
                       "--failover-after", "1", "--duration", str(cut + 10),
                       "--full-data-validation", "--failover-command", fault,
                       "--expect", "no-failover")
    finally:
        repo.down()
    assert run.code == 0, run
    r = run.report
    assert r["faults"][0]["exit_code"] == 0, r["faults"]
    assert r["recorder"]["repo_reconnects"] >= 1
    assert r["recorder"]["ops"] == r["ops"]["ok"] + r["ops"]["failed"] + r["ops"]["indeterminate"]
    # the primary never went away: no client saw a write outage
    assert r["windows"] == [] and r["ops"]["failed"] == 0
    # the workers waited for the ledger during the cut (a gap of seconds with no ops in
    # the timeline), then went on
    seconds = [row["t"] for row in r["timeline"] if row["ok"]]
    gaps = [b - a for a, b in zip(seconds, seconds[1:])]
    assert max(gaps, default=0) >= TCP_USER_TIMEOUT, r["timeline"]
    assert r["validation"]["completed"] and r["validation"]["mismatched_rows"] == 0
    assert r["anomalies"]["phantom_rows"] == 0 and r["rpo"]["lost_acknowledged_ops"] == 0
    assert r["verdict"] == "pass"
