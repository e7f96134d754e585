"""Benchmarks on a real lab (`tox -e bench`): they print ratios measured in the same run and
check them against DESIGN.md's numbers. Never part of the default test run."""

import contextlib
import json
import os
import subprocess
import sys

import psutil
import pytest

from ptor_harness.lab.streaming import StreamingLab

from ..integration.conftest import free_port_base, lab_dir, ptor_env, remove_lab


@pytest.fixture(scope="module")
def bench_lab():
    lab = StreamingLab.up(os.path.join(lab_dir(), "lab"), free_port_base(), "sync")
    yield lab
    remove_lab(lab)


def run_ptor(tmp_path, *args, timeout=600) -> dict:
    """ptor as a user runs it; returns its report (the run must have reached one)."""
    report = tmp_path / f"bench-{len(list(tmp_path.iterdir()))}.json"
    done = subprocess.run([sys.executable, "-m", "ptor_harness.cli", "--report-dir",
                           str(tmp_path / "runs"), "--report-json", str(report), "--quiet",
                           *args], capture_output=True, text=True, env=ptor_env(),
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    assert report.exists(), done.stderr
    return json.loads(report.read_text())


def load_rate(report: dict) -> float:
    """Committed ops per second during the load phase (warmup and drain left out)."""
    began, ended = report["phases"]["load"], report["phases"]["drain"]
    ok = sum(row["ok"] for row in report["timeline"] if began <= row["t"] and row["t"] + 1 <= ended)
    seconds = sum(1 for row in report["timeline"] if began <= row["t"] and row["t"] + 1 <= ended)
    return ok / max(1, seconds)


def cpu_split():
    """(cluster CPUs, load generator CPUs): this machine's CPUs in two halves, so that the
    cluster and the load generator (pgbench or ptor) each have their own, as on two hosts;
    None on a machine with a single CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return cpus[:half], cpus[half:]


def _pin_lab(lab, cpus) -> None:
    """Every process of the lab's servers on `cpus`; backends forked later inherit the
    postmaster's CPUs."""
    for node in lab.nodes.values():
        if not node.running():
            continue
        postmaster = psutil.Process(node.pid)
        for proc in [postmaster] + postmaster.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                proc.cpu_affinity(cpus)


@contextlib.contextmanager
def placement(lab, where: str):
    """"apart": the lab on one half of the CPUs, this process (and so pgbench and ptor,
    which it starts) on the other; "shared": everything on every CPU, as when ptor runs
    on the database host itself."""
    everything = sorted(os.sched_getaffinity(0))
    split = cpu_split() if where == "apart" else None
    if split:
        _pin_lab(lab, split[0])
        os.sched_setaffinity(0, split[1])
    try:
        yield split
    finally:
        os.sched_setaffinity(0, everything)
        _pin_lab(lab, everything)
