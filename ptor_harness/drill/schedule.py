"""A worker's share of `--rate`: when each op is due, as pgbench's `-R` plans them.

Arrivals are a Poisson process (exponential gaps at the worker's share of the rate), so
the load is an open one: an op is due at its time whether or not the one before it has
come back, and its latency counts from that time as well as from its send (the wait a
slow or absent server makes clients queue for is in the figures, not hidden by the
closed loop: coordinated omission). The rule for an outage: ops that fell due while the
worker had no server to send them to are not sent afterwards as a burst; once it is
connected again they are skipped (counted, never planned, so never lost nor in doubt)
and the schedule goes on from the first one due after that moment. Ops that fall behind
while the worker is connected (a harness or cluster too slow for the rate) are sent late,
and their schedule lag says by how much. With --ops-per-transaction a transaction is due,
not an op: its ops go one after the other, and its latencies count to its COMMIT.
"""

from __future__ import annotations

import random
import time
from typing import Callable

from ..verify.distribution import LatencyHistogram

POLL = 0.01  # seconds between looks at the stop events while an op is not yet due


class Schedule:
    """The due times of one worker's ops, and what came of them."""

    def __init__(self, rate: float, seed: int, ops_per_arrival: int = 1) -> None:
        # one arrival is one transaction of `ops_per_arrival` ops (--ops-per-transaction),
        # so arrivals come at this worker's share of the op rate over that
        self.ops = ops_per_arrival
        self.rate = rate / ops_per_arrival  # arrivals per second
        self.rng = random.Random(seed)
        self.due = 0.0  # epoch seconds the next op is due
        self.sent = 0
        self.skipped = 0
        self.lag = LatencyHistogram()  # send - due
        # send - due of the ops due while this worker's writes went through: none had
        # failed since the last acknowledgement, and the spell of failures before that
        # had ended. Ops due in an outage and sent late once a server answered again
        # (a new primary's first commits held up) are the cluster's recovery, not a
        # harness or cluster too slow for the rate.
        self.lag_writable = LatencyHistogram()
        self.failing = False  # an op failed and none has been acknowledged since
        self.back_at = 0.0  # the first acknowledgement after the last spell of failures
        self.from_due = LatencyHistogram()  # completion - due, for acknowledged ops

    def start(self, now: float) -> None:
        self.due = now + self.rng.expovariate(self.rate)

    def advance(self) -> None:
        self.due += self.rng.expovariate(self.rate)

    def skip_missed(self, now: float) -> None:
        """After an outage: every op due before `now` is skipped."""
        while self.due < now:
            self.skipped += self.ops
            self.advance()

    def wait_turn(self, stopping: Callable[[], bool],
                  clock: Callable[[], float] = time.time,
                  sleep: Callable[[float], None] = time.sleep) -> bool:
        """Until the next op is due; False if told to stop meanwhile."""
        while True:
            left = self.due - clock()
            if left <= 0:
                return True
            if stopping():
                return False
            sleep(min(left, POLL))

    def done(self, sent_at: float, ended_at: float, acknowledged: bool, ops: int = 1) -> None:
        """The op (or transaction of `ops` ops) due now was sent at `sent_at` and came back
        at `ended_at`."""
        self.sent += ops
        lag = max(0.0, sent_at - self.due)
        self.lag.add(lag)
        if not self.failing and self.due >= self.back_at:
            self.lag_writable.add(lag)
        if acknowledged:
            self.from_due.add(max(0.0, ended_at - self.due))
            if self.failing:
                self.failing, self.back_at = False, ended_at
        else:
            self.failing = True
        self.advance()
