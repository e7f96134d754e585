"""The client-side bound on every op of a worker (see OpWatchdog)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .. import db

if TYPE_CHECKING:
    from .worker import Worker


class OpWatchdog:
    """Bounds every op on the client side. A primary whose processes are frozen (SIGSTOP, a
    hung VM) never runs its statement_timeout, and the kernel keeps answering TCP
    keepalives for it, so a worker blocked in libpq would wait forever. This thread shuts
    down the socket of an op older than `limit` seconds: libpq sees the connection drop,
    the op ends in doubt, and the worker reconnects. Costs nothing per op (one attribute
    write); off when statement-timeout is 0 (the user asked for no limit)."""

    def __init__(self, worker: Worker, limit: float) -> None:
        self.worker = worker
        self.limit = limit
        self.cut = 0
        self.thread = threading.Thread(target=self._run, name="ptor-op-watchdog",
                                       daemon=True)

    def start(self) -> None:
        if self.worker.spec.statement_timeout > 0:
            self.thread.start()

    def _run(self) -> None:
        interval = min(0.5, self.limit / 10)
        while True:
            time.sleep(interval)
            flight = self.worker.in_flight
            if flight is not None and time.time() - flight[0] > self.limit:
                db.cut_socket(flight[1])
                self.cut += 1
                while self.worker.in_flight is flight:  # until that op has ended
                    time.sleep(interval)
