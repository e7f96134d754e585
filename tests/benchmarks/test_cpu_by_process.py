"""Where the harness's CPU goes, process by process (issue: find where the microseconds go,
with a profiler): one drill on the bench lab, the CPU benchmark's clients, seconds and
synchronous_commit off, while every process of ptor's tree is sampled by the name it gives
itself (`ptor: worker 3`, `ptor: recorder`: messages.name_process). It prints each role's
CPU seconds and microseconds per acknowledged op, and checks that the roles account for
the CPU the whole tree used (getrusage), so the table leaves nothing out.

With py-spy installed (`pip install .[profile]`, which `tox -e bench` does), a second drill
is profiled: a worker, the recorder and the coordinator, each for PROFILE_SECONDS during the
load, and each one's functions that held the CPU most are printed (py-spy's samples of a
thread it does not judge idle: a sleep or an fsync may still count, so the CPU table
above, not these shares, says how much each role costs). A second drill, because the
profiler's own CPU would otherwise come off the first one's figures on shared cores."""

import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from .conftest import ProcessCpu, children_cpu, role_of, run_ptor
from .test_load import CLIENTS, SECONDS, set_synchronous_commit

PROFILE_SECONDS = 5  # whole seconds: py-spy takes no fraction
PROFILED = ("worker 0", "recorder", "coordinator")
TOP = 8  # functions printed per profiled role


def by_role(sampler: ProcessCpu) -> dict[str, list[float]]:
    """Each role's processes' CPU (the workers together), every one born during the
    drill, so counted from its start to its last sample."""
    roles: dict[str, list[float]] = collections.defaultdict(list)
    for title, _first, last in sampler.seen.values():
        role = role_of(title)
        roles["workers" if role.startswith("worker ") else role].append(last)
    return roles


def drill_args(lab) -> list[str]:
    return ["--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers",
            str(CLIENTS), "--warmup-duration", "2", "--duration", str(SECONDS),
            "--expect", "any"]


def top_functions(raw: str) -> list[tuple[float, str]]:
    """py-spy's raw (collapsed) stacks: each leaf function's share of the samples, its
    lines taken together (`send_op (ptor_harness/drill/statements.py)`)."""
    leaves: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            leaves[re.sub(r":\d+\)$", ")", stack.split(";")[-1])] += int(count)
    total = sum(leaves.values()) or 1
    return [(n / total, name) for name, n in leaves.most_common(TOP)]


def profile_roles(pyspy: str, lab, tmp_path) -> dict[str, list[tuple[float, str]]]:
    """A drill whose worker 0, recorder and coordinator py-spy records during the load."""
    found: dict[str, list[tuple[float, str]]] = {}

    def record() -> None:
        deadline = time.monotonic() + 60
        pids: dict[str, int] = {}
        while len(pids) < len(PROFILED) and time.monotonic() < deadline:
            for proc in psutil.Process().children(recursive=True):
                try:
                    title = " ".join(proc.cmdline())
                except psutil.Error:
                    continue
                if role_of(title) in PROFILED:
                    pids.setdefault(role_of(title), proc.pid)
            time.sleep(0.1)
        time.sleep(4)  # into the load: start and warmup behind
        out = tempfile.mkdtemp(dir=tmp_path)
        spies = {role: subprocess.Popen(
            [pyspy, "record", "--pid", str(pid), "--duration", str(PROFILE_SECONDS),
             "--rate", "200", "--format", "raw", "--nonblocking", "--output",
             os.path.join(out, f"{pid}.txt")], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL) for role, pid in pids.items()}
        for role, spy in spies.items():
            spy.wait(PROFILE_SECONDS + 60)
            path = os.path.join(out, f"{pids[role]}.txt")
            if os.path.exists(path):
                with open(path) as raw:
                    found[role] = top_functions(raw.read())

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    run_ptor(tmp_path, *drill_args(lab))
    recorder.join(PROFILE_SECONDS + 120)
    return found


def test_cpu_by_process(bench_lab, tmp_path, capsys):
    lab = bench_lab
    set_synchronous_commit(lab, "off")
    try:
        before = children_cpu()
        # every process below this one: ptor, as run_ptor starts it, and its children
        with ProcessCpu(lambda: psutil.Process().children(recursive=True), 0.05) as sampler:
            report = run_ptor(tmp_path, *drill_args(lab))
        tree = children_cpu() - before
        pyspy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or \
            shutil.which("py-spy")
        profiles = profile_roles(pyspy, lab, tmp_path) if pyspy else {}
    finally:
        set_synchronous_commit(lab, "on")
    assert report["verdict"] == "pass", report["verdict_reasons"]
    ok = report["ops"]["ok"]
    roles = by_role(sampler)
    sampled = sum(sum(cpus) for cpus in roles.values())
    with capsys.disabled():
        print(f"\nCPU by process, {CLIENTS} workers, {SECONDS} s, synchronous_commit off, "
              f"{ok:,} acknowledged ops; the tree used {tree:.2f} s "
              f"({tree / ok * 1e6:.1f} us an op)")
        print(f"{'role':>22} {'processes':>9} {'CPU s':>7} {'us/op':>7} {'share':>6}")
        for role, cpus in sorted(roles.items(), key=lambda item: -sum(item[1])):
            print(f"{role:>22} {len(cpus):9d} {sum(cpus):7.2f} {sum(cpus) / ok * 1e6:7.1f} "
                  f"{sum(cpus) / sampled:6.1%}")
        for role, functions in profiles.items():
            print(f"  py-spy, {role}, {PROFILE_SECONDS:g} s during the load (share of its "
                  "samples, by the function on top):")
            for share, name in functions:
                print(f"    {share:6.1%} {name}")
        if not pyspy:
            print("  (install py-spy, `pip install .[profile]`, for each role's functions)")
    assert {"workers", "recorder", "coordinator", "probe"} <= set(roles), roles
    assert len(roles["workers"]) == CLIENTS
    # the roles account for the tree's CPU: sampled every 50 ms, each process loses at
    # most its last interval
    assert 0.85 * tree <= sampled <= 1.02 * tree, (sampled, tree)
