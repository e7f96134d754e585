"""Retrying with backoff and a deadline, in one place (Patroni's `Retry` is the model).

Every wait-and-try-again in ptor (the recorder waiting for its repo, reconciliation
waiting for a confirmed primary, a worker looking for the new primary, the lab waiting
for a server) takes its delays from `Backoff` and, where it blocks, runs through `Retry`:
the first attempt at once (or after the first delay), then delays that grow by `factor` up
to `max_delay`, never past the deadline. The clock and the sleep are injectable, so the
arithmetic is tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


class RetryExhausted(Exception):
    """The deadline passed without a successful attempt; `last_error` is the last
    attempt's exception (None when the last attempt returned a result not accepted)."""

    def __init__(self, seconds: float, last_error: Optional[BaseException]) -> None:
        super().__init__(f"no success within {seconds:g} s"
                         + (f": {last_error}" if last_error is not None else ""))
        self.last_error = last_error


class Backoff:
    """Delays: `first`, then each `factor` times the one before, capped at `max_delay`."""

    def __init__(self, first: float, max_delay: float, factor: float = 2.0) -> None:
        self.first, self.max_delay, self.factor = first, max_delay, factor
        self.current = first

    def next(self) -> float:
        """The delay to wait now; the one after grows."""
        delay = self.current
        self.current = min(self.max_delay, self.current * self.factor)
        return delay

    def reset(self) -> None:
        self.current = self.first

    def __iter__(self) -> Iterator[float]:
        while True:
            yield self.next()


class Retry:
    """Call an attempt until it succeeds or `seconds` have passed.

    An attempt fails when it raises one of `retry_on` or returns a result that `accept`
    rejects; anything else it raises goes straight up. `wait_first`: sleep one delay before
    the first attempt (the caller has just failed one of its own)."""

    def __init__(self, seconds: float, delay: float, max_delay: Optional[float] = None,
                 factor: float = 2.0, retry_on: tuple[type[BaseException], ...] = (Exception,),
                 accept: Callable[[object], bool] = lambda result: True,
                 wait_first: bool = False, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.backoff = Backoff(delay, delay if max_delay is None else max_delay, factor)
        self.retry_on = retry_on
        self.accept = accept
        self.wait_first = wait_first
        self.sleep = sleep
        self.clock = clock

    def __call__(self, attempt: Callable[[], T]) -> T:
        deadline = self.clock() + self.seconds
        self.backoff.reset()
        last_error: Optional[BaseException] = None
        waited = not self.wait_first
        while True:
            if not waited:
                left = deadline - self.clock()
                if left <= 0:
                    raise RetryExhausted(self.seconds, last_error)
                self.sleep(min(self.backoff.next(), left))
            waited = False
            try:
                result = attempt()
            except self.retry_on as exc:
                last_error = exc
            else:
                if self.accept(result):
                    return result
                last_error = None
            if self.clock() >= deadline:
                raise RetryExhausted(self.seconds, last_error)
