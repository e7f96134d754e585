"""What the node observer costs the load: ptor's committed ops/s with the observer off
(--observe-interval 0) and on (every 0.1 s, the default: the lab's two nodes and the
endpoint), in alternating rounds against the same lab, cluster and load generator on CPUs
of their own (the issue's target: within 2 %)."""

import os
import statistics

from .conftest import placement
from .test_load import ptor_rate, set_synchronous_commit

SECONDS = os.environ.get("PTOR_BENCH_OBSERVER_SECONDS", "10")
ROUNDS = int(os.environ.get("PTOR_BENCH_OBSERVER_ROUNDS", "5"))


def test_the_node_observer_costs_the_load_under_2_percent(bench_lab, tmp_path, capsys):
    lab = bench_lab
    rows = []
    with placement(lab, "apart") as split:
        for commit in ("on", "off"):
            set_synchronous_commit(lab, commit)
            off, on = [], []
            for _ in range(ROUNDS):  # alternate, so drift affects both alike
                off.append(ptor_rate(lab, tmp_path, "--observe-interval", "0",
                                     "--duration", SECONDS))
                on.append(ptor_rate(lab, tmp_path, "--observe-interval", "0.1",
                                    "--duration", SECONDS))
            ratio = statistics.median(b / a for a, b in zip(off, on))
            rows.append((commit, statistics.median(off), statistics.median(on), ratio))
        set_synchronous_commit(lab, "on")
    with capsys.disabled():
        print(f"\nnode observer, {ROUNDS} x {SECONDS} s alternating"
              f"{', cluster and ptor on CPUs of their own' if split else ''}")
        print(f"{'synchronous_commit':>18} {'off ops/s':>10} {'on ops/s':>10} "
              f"{'median ratio':>13}")
        for commit, off_rate, on_rate, ratio in rows:
            print(f"{commit:>18} {off_rate:10.0f} {on_rate:10.0f} {ratio:13.3f}")
    for commit, _off, _on, ratio in rows:
        assert ratio >= 0.98, f"the node observer costs over 2 % ({commit})"
