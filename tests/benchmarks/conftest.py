"""Benchmarks on a real lab (`tox -e bench`): they print ratios measured in the same run and
check them against DESIGN.md's numbers. Never part of the default test run."""

import json
import os
import subprocess
import sys

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
