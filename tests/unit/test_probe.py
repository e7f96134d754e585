"""The probe's shared board and the figures made of its view (pure parts)."""

import threading
import time

import pytest

from ptor_harness.drill.messages import ProbeGap
from ptor_harness.drill.probe import ProbeBoard
from ptor_harness.verify.metrics import attempts_per_second, probe_view


class Ctx:
    @staticmethod
    def Array(kind, size, lock=False):  # noqa: N802 - multiprocessing's name
        return [0.0] * size


# Each test tells two waits apart by far more than a busy machine's scheduling delays
# (a bound of 0.2 s failed once with the suite and a busy loop beside it): the wait the
# test expects, and one that the code would wait otherwise, 30 s or more.
OTHERWISE = 30.0


def test_a_waiting_worker_wakes_when_the_probe_found_a_primary():
    board = ProbeBoard.create(Ctx, workers=4)
    board.array[2] = time.time() + 60  # the probe is alive
    assert board.array[3] == 1.0  # 4 workers: at most one attempt a second each alone
    board.array[3] = OTHERWISE  # the safety interval, long: only the probe's word wakes it
    threading.Timer(0.05, lambda: board.array.__setitem__(0, 1.0)).start()
    started = time.monotonic()
    board.wait_for_primary(0.0, backoff=0.01, stopping=lambda: False)
    # woken by the probe's word: neither the 10 ms backoff nor the safety interval
    assert 0.04 < time.monotonic() - started < OTHERWISE / 3


def test_without_the_probes_word_a_worker_waits_the_safety_interval_at_most():
    board = ProbeBoard.create(Ctx, workers=2)
    board.array[2] = time.time() + 60
    board.array[3] = 0.1  # shortened for the test; the probe's word never comes
    started = time.monotonic()
    board.wait_for_primary(0.0, backoff=0.01, stopping=lambda: False)
    assert 0.09 < time.monotonic() - started < OTHERWISE / 3


def test_a_silent_probe_leaves_the_worker_to_its_backoff():
    board = ProbeBoard.create(Ctx, workers=2)  # alive_at 0: silent for ever
    board.array[3] = OTHERWISE  # not the safety interval: the backoff ends it
    started = time.monotonic()
    board.wait_for_primary(0.0, backoff=0.02, stopping=lambda: False)
    assert time.monotonic() - started < OTHERWISE / 3


def test_the_safety_interval_keeps_many_workers_under_100_attempts_a_second():
    for workers in (1, 10, 100, 512):
        board = ProbeBoard.create(Ctx, workers)
        assert workers / board.array[3] <= 100


def test_the_probes_view_of_a_window_and_the_attempts_meanwhile():
    window = {"start": 10.0, "first_failure": 10.1, "end": 13.0}
    gaps = [ProbeGap(5.0, 5.5, 5.6), ProbeGap(10.02, 10.05, 12.95)]
    view = probe_view(window, gaps)
    assert view["first_failure"] == 10.05 and round(view["seconds"], 2) == 2.93
    assert probe_view({"start": 20.0, "first_failure": 20.0, "end": 21.0}, gaps) is None
    samples = [(10.0, 100.0), (10.5, 150.0), (11.0, 200.0), (13.0, 400.0), (14.0, 401.0)]
    assert attempts_per_second(samples, 10.1, 13.0) == pytest.approx((400 - 100) / 2.9)
    assert attempts_per_second(samples, 10.1, 10.6) == 50.0  # over one second at least
    assert attempts_per_second([], 10.1, 13.0) is None


def test_a_gap_journaled_comes_back_as_it_was_heard():
    """`ptor reconcile` rebuilds the probe's view from the run's journal: each gap as the
    coordinator heard it (one that never saw writes again too), through the JSON detail
    the ledger stores; other events are not gaps."""
    import json

    from ptor_harness.drill import messages
    from ptor_harness.drill.probe import gap_journaled, gaps_from_journal

    heard = [messages.ProbeGap(100.125, 100.25, 103.0625), messages.ProbeGap(None, 110.5, None)]
    stored = [(at, name, json.loads(json.dumps(detail)))
              for at, name, detail in map(gap_journaled, heard)]
    stored.append((101.0, "phase:fault-1", {"action": "kill-primary"}))
    assert gaps_from_journal(stored) == heard
    assert [at for at, _, _ in stored[:2]] == [100.25, 110.5]
    assert gaps_from_journal([]) == []
