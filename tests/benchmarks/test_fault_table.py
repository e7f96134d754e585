"""Every built-in fault on every lab stack, one drill each: the figures behind README's table
of faults and stacks (`tox -e bench -- tests/benchmarks/test_fault_table.py`, about 15
minutes here). Each drill runs with `--expect any`, so its verdict judges loss and
anomalies only, and the table says for itself whether the stack failed over.

Some faults leave the cluster short of a node on purpose (hang-primary keeps the old
primary frozen, stop-sync-standby keeps the standby down); after any fault the lab must
settle again, or it is rebuilt and the table says so (after a fault that is not meant to
leave it so, a finding: the managers' logs are kept in the test's folder)."""

import os
import shutil

import pytest

from ..integration.conftest import free_port_base, lab_dir, remove_lab
from .conftest import run_ptor

FAULTS = {
    ("streaming", "sync"): ["kill-primary", "stop-primary", "switchover", "blip=2",
                            "cancel-sync-waits", "kill-standby-then-primary",
                            "restart-cluster", "hang-primary", "stop-sync-standby"],
    ("auto-failover", "sync"): ["kill-primary", "stop-primary", "switchover", "kill-manager",
                                "blip=1", "blip=12", "cancel-sync-waits",
                                "stop-sync-standby"],
    ("patroni", "sync"): ["kill-primary", "stop-primary", "switchover", "kill-manager",
                          "blip=2", "blip=12", "cancel-sync-waits", "stop-sync-standby"],
    ("repmgr", "sync"): ["kill-primary", "stop-primary", "switchover", "kill-manager",
                         "blip=2", "cancel-sync-waits", "stop-sync-standby"],
}
ROWS: list[dict] = []


def drill(lab, tmp_path, fault: str) -> dict:
    r = run_ptor(tmp_path, "--primary-pgdsn", lab.primary_dsn(), "--init",
                 "--parallel-workers", "3", "--warmup-duration", "1", "--duration", "30",
                 "--observe-after", "2", "--max-outage", "15", "--lab-dir", lab.dir,
                 "--fault", f"{fault}:1", "--expect", "any", "--full-data-validation")
    observed = r["expectation"]["observed"]
    (record,) = r["faults"]
    return {"fault": fault, "verdict": r["verdict"],
            "failed_over": observed["primary_changed"],
            "write_rto": r["rto"]["write_seconds"] if r["rto"]["recovered"] else None,
            "outage": observed["write_outage"],
            "lost": r["rpo"]["lost_acknowledged_ops"],
            "in_doubt": r["ops"]["indeterminate"], "fault_error": record["error"]}


LEAVES_A_NODE_OUT = ("hang-primary", "stop-sync-standby")


@pytest.mark.parametrize("stack, mode", list(FAULTS))
def test_every_fault_on(stack, mode, tmp_path):
    from ptor_harness.lab import stacks

    def new_lab():
        return stacks()[stack].up(os.path.join(lab_dir(), "lab"), free_port_base(10), mode)

    lab = new_lab()
    try:
        for fault in FAULTS[(stack, mode)]:
            row = dict(drill(lab, tmp_path, fault), stack=stack)
            ROWS.append(row)
            print(row, flush=True)
            assert row["fault_error"] is None, row  # every fault ran to its end
            if fault == "kill-primary":  # synchronous stacks: a crash loses nothing
                assert row["lost"] == 0 and row["failed_over"], row
            try:
                lab.wait_settled(120)
            except Exception as exc:
                row["note"] = "lab rebuilt after it" if fault in LEAVES_A_NODE_OUT else \
                    f"did not settle in 120 s ({exc}); lab rebuilt"
                kept = tmp_path / f"logs-{stack}-{fault}"  # the managers' logs
                shutil.copytree(os.path.join(lab.dir, "logs"), kept)
                print(f"{stack}: unsettled after {fault}; logs kept in {kept}", flush=True)
                remove_lab(lab)
                lab = new_lab()
    finally:
        remove_lab(lab)
        print_table()


def print_table() -> None:
    print("\n| stack | fault | new primary | write RTO | lost ack. | in doubt | verdict | |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in ROWS:
        rto = "never back" if row["outage"] and row["write_rto"] is None else \
            "no outage" if not row["outage"] else f"{row['write_rto']:.2f} s"
        print(f"| {row['stack']} | `{row['fault']}` | {'yes' if row['failed_over'] else 'no'}"
              f" | {rto} | {'?' if row['lost'] is None else row['lost']} | {row['in_doubt']} "
              f"| {row['verdict']} | {row.get('note', '')} |")
