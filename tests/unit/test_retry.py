"""The one retry helper: delays, deadline, what counts as a failure (no real waiting)."""

import pytest

from ptor_harness.retry import Backoff, Retry, RetryExhausted


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds

    def clock(self):
        return self.now


def test_backoff_grows_to_its_cap_and_resets():
    b = Backoff(0.05, 0.3)
    assert [b.next() for _ in range(5)] == [0.05, 0.1, 0.2, 0.3, 0.3]
    b.reset()
    assert b.next() == 0.05


def test_retry_returns_the_first_success_after_growing_delays():
    t = FakeTime()
    results = iter([OSError("a"), OSError("b"), OSError("c"), "done"])

    def attempt():
        r = next(results)
        if isinstance(r, Exception):
            raise r
        return r

    retry = Retry(10, 0.1, 1.0, retry_on=(OSError,), sleep=t.sleep, clock=t.clock)
    assert retry(attempt) == "done"
    assert t.slept == [0.1, 0.2, 0.4]  # the first attempt at once


def test_retry_never_sleeps_past_its_deadline_and_keeps_the_last_error():
    t = FakeTime()
    calls = []

    def attempt():
        calls.append(t.now)
        raise OSError(f"try {len(calls)}")

    retry = Retry(1.0, 0.3, 0.3, retry_on=(OSError,), sleep=t.sleep, clock=t.clock)
    with pytest.raises(RetryExhausted) as exc:
        retry(attempt)
    assert str(exc.value.last_error) == f"try {len(calls)}"
    assert t.now == pytest.approx(101.0)  # the last sleep cut to the deadline
    assert calls[0] == 100.0 and len(calls) == 5  # at 0, 0.3, 0.6, 0.9, 1.0


def test_wait_first_and_results_that_are_not_accepted():
    t = FakeTime()
    answers = iter([None, 0, "ready"])
    retry = Retry(5, 0.5, accept=bool, wait_first=True, sleep=t.sleep, clock=t.clock)
    assert retry(lambda: next(answers)) == "ready"
    assert t.slept == [0.5, 0.5, 0.5]  # without max_delay the delay stays fixed


def test_an_error_not_retried_goes_straight_up():
    t = FakeTime()
    retry = Retry(5, 0.5, retry_on=(OSError,), sleep=t.sleep, clock=t.clock)
    with pytest.raises(KeyError):
        retry(lambda: {}["x"])
    assert t.slept == []
