"""The op mix: percentages, key checkout, quarantine of in-doubt keys."""

import tracemalloc
from collections import Counter

from ptor_harness.drill.workload import Workload
from ptor_harness.ops import DELETE, FAILED, INDETERMINATE, INSERT, OK, UPDATE


def run(workload, outcome_of, rounds=200, block=50):
    seen = []
    for _ in range(rounds):
        for seq, kind, key in workload.plan(block):
            outcome = outcome_of(seq, kind, key)
            workload.settle(kind, key, outcome)
            seen.append((seq, kind, key, outcome))
    return seen


def test_mix_follows_percentages_and_seeds_reproduce():
    a = run(Workload(7, 50, 30, 20), lambda *_: OK)
    b = run(Workload(7, 50, 30, 20), lambda *_: OK)
    assert a == b
    kinds = Counter(k for _, k, _, _ in a)
    total = sum(kinds.values())
    assert abs(kinds[INSERT] / total - 0.5) < 0.03
    assert abs(kinds[UPDATE] / total - 0.3) < 0.03
    assert abs(kinds[DELETE] / total - 0.2) < 0.03


def test_seqs_are_consecutive_and_keys_of_inserts_unique():
    ops = run(Workload(1, 60, 30, 10), lambda *_: OK)
    assert [o[0] for o in ops] == list(range(1, len(ops) + 1))
    inserted = [o[2] for o in ops if o[1] == INSERT]
    assert len(inserted) == len(set(inserted))


def test_no_key_twice_in_a_block_and_no_op_after_delete():
    w = Workload(3, 40, 40, 20)
    deleted = set()
    for _ in range(100):
        block = w.plan(64)
        keys = [k for _, kind, k in block if kind != INSERT]
        assert len(keys) == len(set(keys))
        for _, kind, key in block:
            assert key not in deleted
            if kind == DELETE:
                deleted.add(key)
            w.settle(kind, key, OK)


def test_in_doubt_key_is_never_touched_again():
    doubtful = set()

    def outcome(seq, kind, key):
        assert key not in doubtful, "an op touched a quarantined key"
        if seq % 17 == 0:
            doubtful.add(key)
            return INDETERMINATE
        return FAILED if seq % 13 == 0 else OK

    w = Workload(5, 40, 40, 20)
    run(w, outcome)
    assert w.quarantined == len(doubtful) > 0


def test_failed_update_keeps_key_live_and_unplan_returns_keys():
    w = Workload(9, 1, 98, 1)
    (_, kind, key), = w.plan(1)
    assert kind == INSERT  # no live key yet: falls back to insert
    w.settle(kind, key, OK)
    (_, kind2, key2), = w.plan(1)
    assert key2 == key and kind2 in (UPDATE, DELETE)
    w.settle(kind2, key2, FAILED)
    assert key in w.live
    block = w.plan(1)
    assert key not in w.live
    w.unplan(block)
    assert key in w.live


def test_live_keys_cost_at_most_ten_bytes_each():
    """An hour at 10,000 ops/s of the default mix leaves 10.8 million live keys over the
    workers: at 8 bytes a key (plus the array's slack) that is under 110 MB, where the
    list and position dict it replaced held about 150 bytes a key (1.6 GB)."""
    w = Workload(3, 50, 30, 20)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            for _seq, kind, key in w.plan(100):
                w.settle(kind, key, OK)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(w.live) > 50_000
    assert grown / len(w.live) <= 10, f"{grown / len(w.live):.1f} bytes a live key"
