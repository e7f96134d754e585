"""Client-side bounds: what ends a wait that the server cannot end.

A server-side statement_timeout bounds nothing that never reaches a server (a pooler
queueing a client's statements while no server is free) or that a frozen server never runs
(SIGSTOP, a hung VM, whose kernel keeps answering TCP keepalives). So ptor bounds its own
waits on the client: `bounded` cuts a connection whose block outlives its seconds (one
`Watchdog` thread per process runs every such deadline), and each worker's `OpBound` cuts
the socket of an op older than its limit. Cutting is `cut_socket`: the blocked call
returns at once with a connection error, which the caller classifies as usual.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Callable, Optional

import psycopg2


def cut_socket(conn_or_fd) -> None:
    """Shut a session's socket down from any thread: a call blocked on it (a frozen server
    never answers, and its kernel keeps TCP alive) returns at once with a connection error.
    Takes a connection or its file descriptor."""
    with contextlib.suppress(OSError, ValueError, psycopg2.Error):  # closed already: done
        fd = conn_or_fd if isinstance(conn_or_fd, int) else conn_or_fd.fileno()
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


class Watchdog:
    """One thread per process that runs an action at its deadline unless disarmed first.

    `bounded` arms it for every bounded block (the probe's ~90 checks a second among them):
    one long-lived thread and a heap of deadlines, not a thread per block."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.heap: list[tuple[float, int, Callable[[], None]]] = []
        self.armed: set[int] = set()
        self.tokens = itertools.count()
        self.thread: Optional[threading.Thread] = None

    def arm(self, seconds: float, action: Callable[[], None]) -> int:
        """The thread is woken only when the new deadline comes before every one it sleeps
        toward: bounds of one length arm in deadline order, so the probe's checks (about
        90 a second, each bounded by seconds) wake it about once per bound, not on every
        check."""
        with self.cond:
            token = next(self.tokens)
            entry = (time.monotonic() + seconds, token, action)
            heapq.heappush(self.heap, entry)
            self.armed.add(token)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="ptor-watchdog",
                                               daemon=True)
                self.thread.start()
            if self.heap[0] is entry:  # sooner than anything the thread waits for
                self.cond.notify()
            return token

    def disarm(self, token: int) -> None:
        """After this returns, the action of `token` has run already or never will."""
        with self.cond:
            self.armed.discard(token)

    def run(self) -> None:
        with self.cond:
            while True:
                while self.heap and self.heap[0][1] not in self.armed:
                    heapq.heappop(self.heap)  # disarmed: forget it
                if not self.heap:
                    self.cond.wait()
                    continue
                wait = self.heap[0][0] - time.monotonic()
                if wait > 0:
                    self.cond.wait(wait)
                    continue
                _, token, action = heapq.heappop(self.heap)
                self.armed.discard(token)
                action()  # under the lock: a disarm never returns while it runs


WATCHDOG = Watchdog()


@contextlib.contextmanager
def bounded(conn, seconds: float) -> Iterator[None]:
    """Cut `conn` (see cut_socket) if the block is still running after `seconds`.

    A server-side statement_timeout bounds nothing that never reaches a server: a pooler
    (pgbouncer) accepts a client while no server is available and queues its statements,
    the identity check a worker makes as it connects included, for minutes. The block then
    fails with a connection error instead. A block that ends in time is never cut."""
    token = WATCHDOG.arm(seconds, lambda: cut_socket(conn))
    try:
        yield
    finally:
        WATCHDOG.disarm(token)


class OpBound:
    """Bounds every op of one worker on the client side: a thread shuts down the socket of
    an op older than `limit` seconds, so libpq sees the connection drop, the op ends in
    doubt, and the worker reconnects. The worker marks each op's flight (`begin` with its
    socket and start, `end`); that is all it costs per op. Off when `enabled` is false
    (statement-timeout 0: the user asked for no limit)."""

    def __init__(self, limit: float, enabled: bool) -> None:
        self.limit = limit
        self.enabled = enabled
        self.cut = 0  # ops whose socket it shut down
        self.in_flight: Optional[tuple[float, int]] = None  # (started, socket fd)
        self.thread = threading.Thread(target=self._run, name="ptor-op-bound", daemon=True)

    def start(self) -> None:
        if self.enabled:
            self.thread.start()

    def begin(self, fd: int, started: float) -> None:
        """An op is sent on socket `fd` at `started` (wall-clock seconds)."""
        self.in_flight = (started, fd)

    def end(self) -> None:
        """The op in flight has ended, however."""
        self.in_flight = None

    def _run(self) -> None:
        interval = min(0.5, self.limit / 10)
        while True:
            time.sleep(interval)
            flight = self.in_flight
            if flight is not None and time.time() - flight[0] > self.limit:
                self.cut += 1  # counted first: the op returns the moment its socket goes
                cut_socket(flight[1])
                while self.in_flight is flight:  # until that op has ended
                    time.sleep(interval)
