"""A worker's half of the ledger stream: intents sent ahead, outcomes sent in batches.

Each op is journaled as Jepsen does: planned (its intent), then completed with an outcome.
In sync repo mode the intents of a block of ops are durable in the ledger before the first
of them is sent (the recorder says so on the worker's ack pipe); the worker sends the next
block's intents ahead so that wait overlaps the current block's work. Outcomes travel to the
recorder over the shared Queue in messages of at most FLUSH_OPS ops, at least every
FLUSH_SECONDS.
"""

from __future__ import annotations

import queue as queue_module
import time
from typing import Callable

from . import messages

FLUSH_OPS = 64  # outcomes per Queue message at most (about 2.7 kB: one atomic pipe write)
FLUSH_SECONDS = 0.1  # and at least this often


class Stopped(Exception):
    """The coordinator asked the worker to stop (or to abort)."""


class OpJournal:
    """The messages one worker sends the recorder, and the durability it waits for."""

    def __init__(self, worker: int, queue, ack_conn, aborted: Callable[[], bool]) -> None:
        self.worker = worker
        self.queue = queue
        self.ack_conn = ack_conn
        self.aborted = aborted
        self.outbox: list[tuple] = []
        self.last_flush = time.monotonic()
        self.block_no = 0
        self.acked_block = -1

    def send(self, message: tuple) -> None:
        """Blocking put that never drops, but gives up if the run is aborted."""
        while True:
            try:
                self.queue.put(message, timeout=0.2)
                return
            except queue_module.Full:
                if self.aborted():
                    raise Stopped() from None

    def add(self, op: tuple) -> None:
        """One op's outcome (a tuple in `Op` order), sent with others."""
        self.outbox.append(op)
        if len(self.outbox) >= FLUSH_OPS or time.monotonic() - self.last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.outbox:
            messages.put_split(self.send, messages.OPS, self.worker, self.outbox)
            self.outbox = []
        self.last_flush = time.monotonic()

    def send_intents(self, block: list) -> int:
        """A block's intents, to be made durable; returns its number for wait_durable."""
        block_no = self.block_no
        self.block_no += 1
        self.send((messages.INTENTS, self.worker, (block_no, block)))
        return block_no

    def wait_durable(self, block_no: int) -> None:
        """Wait for the recorder to confirm that intents up to `block_no` are durable."""
        while self.acked_block < block_no:
            if self.aborted():
                raise Stopped()
            if self.ack_conn.poll(0.2):
                self.acked_block = self.ack_conn.recv()

    def retract(self, first_unsent_seq: int) -> None:
        """Intents from this seq on were never sent: the ledger forgets them."""
        self.send((messages.RETRACT, self.worker, first_unsent_seq))

    def end(self) -> None:
        """The last outcomes, then the end of this worker's stream."""
        self.flush()
        self.send((messages.WORKER_END, self.worker, None))
