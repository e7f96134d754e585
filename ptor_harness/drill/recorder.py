"""The recorder process: the only writer of the ledger.

It drains the shared Queue in batches (everything that has arrived, up to a cap), writes a
batch in one transaction, commits it, and only then tells each worker that its intents are
durable. One commit thus serves every worker that sent something meanwhile (group commit).
Nothing is ever dropped: the loop ends only on the coordinator's stop message, which the
coordinator sends after every worker process has exited and so flushed its puts.

When the repo goes away: in sync repo mode the recorder holds its batch and retries (the
workers, waiting for their acks, pause); in async repo mode it appends batches to a spill
file and keeps draining, so the load never stalls, and replays the file once the repo is
back. After max-outage without the repo it gives up: the load is stopped, the rest of the
queue still goes to the spill file, and the file stays for `ptor reconcile --run`.
"""

from __future__ import annotations

import queue as queue_module
import time
import traceback
from typing import Optional

import psycopg2

from ..db import error_label
from ..errors import RecorderError
from ..ledger import LedgerSpec
from ..ledger.spill import Spill, replay
from ..retry import Backoff, Retry, RetryExhausted
from . import messages

# A repo that went away (its session is gone): wait for it, first after REPO_DELAY
# seconds, then twice as long each time, up to REPO_MAX_DELAY.
REPO_GONE = (psycopg2.OperationalError, psycopg2.InterfaceError)
REPO_DELAY, REPO_MAX_DELAY = 0.05, 1.0

MAX_BATCH_MESSAGES = 2000


class Recorder:
    """The batching loop, separate from process glue so it can be driven in tests."""

    def __init__(self, ledger, queue, ack_conns: dict, outage_limit: float = 0.0,
                 spill: Optional[Spill] = None, events=None, run_id: str = "") -> None:
        self.ledger = ledger
        self.outage_limit = outage_limit
        self.repo_reconnects = 0
        self.spill = spill  # async repo mode only: where batches wait for a lost repo
        self.events = events
        self.run_id = run_id
        self.repo_lost_at = 0.0
        self.next_attempt = 0.0
        self.backoff = Backoff(REPO_DELAY, REPO_MAX_DELAY)
        self.gave_up: Optional[str] = None
        self.queue = queue
        self.ack_conns = ack_conns
        self.ops = 0
        self.intents = 0
        self.identities = 0
        self.ended: set[int] = set()

    def next_batch(self, alive) -> list:
        """Block for the first message, then take whatever else is already there."""
        while True:
            try:
                batch = [self.queue.get(timeout=1.0)]
                break
            except queue_module.Empty:
                if self.spill is not None and self.spill.holding:
                    self.replay_spill()  # the load is idle: catch up meanwhile
                if messages.coordinator_gone(alive):  # flush and stop
                    return [(messages.RECORDER_STOP, messages.COORDINATOR, None)]
        while len(batch) < MAX_BATCH_MESSAGES:
            try:
                batch.append(self.queue.get_nowait())
            except queue_module.Empty:
                break
        return batch

    def write(self, batch: list) -> bool:
        """Write and commit one batch, then ack intents. Returns False once told to stop."""
        intents: list[tuple] = []
        ops: list[tuple] = []
        identities: list[tuple] = []
        retracts: list[tuple] = []
        node_samples: list[tuple] = []
        replication: list[tuple] = []
        cdc: list[tuple] = []
        acks: dict[int, int] = {}
        stop = False
        for tag, sender, data in batch:
            if tag == messages.OPS:
                ops.extend(data)
            elif tag == messages.INTENTS:
                block_no, block = data
                intents.extend((sender, seq, kind, key) for seq, kind, key in block)
                acks[sender] = block_no
            elif tag == messages.IDENTITY:
                identities.append(data)
            elif tag == messages.NODES:
                node_samples.extend(data)
            elif tag == messages.REPLICATION:
                replication.extend(data)
            elif tag == messages.CDC:
                block_no, changes = data
                cdc.extend(changes)
                acks[sender] = block_no
            elif tag == messages.RETRACT:
                retracts.append((sender, data))
            elif tag == messages.WORKER_END:
                self.ended.add(sender)
            elif tag == messages.RECORDER_STOP:
                stop = True
            else:
                raise ValueError(f"unknown message tag {tag!r}")
        if intents or ops or identities or retracts or node_samples or replication or cdc:
            self.store(intents, ops, identities, retracts, node_samples, replication, cdc)
        self.ops += len(ops)
        self.intents += len(intents)
        self.identities += len(identities)
        for worker, block_no in acks.items():
            self.ack_conns[worker].send(block_no)
        return not stop

    def store(self, *rows: list) -> None:
        """Write and commit a batch. When the repo goes away in sync repo mode, keep the
        batch, reconnect with backoff for up to `outage_limit` seconds, and write it again
        (skipping rows a cut-off commit may have stored); meanwhile no intent is
        acknowledged, so the workers send no op the ledger does not hold. In async repo
        mode the batch goes to the spill file instead and the loop goes on."""
        if self.spill is not None and (self.spill.holding or self.gave_up):
            self.spill.append(rows)
            self.replay_spill()
            return
        try:
            self.ledger.write(*rows)
            self.ledger.commit()
            return
        except REPO_GONE as exc:
            if self.outage_limit <= 0:
                raise
            error = exc
        if self.spill is not None:
            self.repo_lost_at = time.monotonic()
            self.backoff.reset()
            self.next_attempt = self.repo_lost_at + self.backoff.next()
            self.spill.append(rows)
            return
        def write_again() -> None:
            self.ledger.reconnect()
            self.ledger.write(*rows, again=True)
            self.ledger.commit()

        try:
            Retry(self.outage_limit, REPO_DELAY, REPO_MAX_DELAY, retry_on=REPO_GONE,
                  wait_first=True)(write_again)
        except RetryExhausted as exhausted:
            error = exhausted.last_error or error
        else:
            self.repo_reconnects += 1
            return
        raise RecorderError(f"the repo stayed unreachable for {self.outage_limit:g} s "
                            f"(max-outage): {error_label(error)}; every op sent is in the "
                            f"ledger as an intent at least: {self.reconcile_hint()}")

    def replay_spill(self) -> bool:
        """One attempt, when the backoff allows, to bring the repo up to date from the spill
        file; True once the file is replayed and gone. Past max-outage, give up."""
        if self.gave_up:
            return False
        now = time.monotonic()
        if now < self.next_attempt:
            return False
        try:
            self.ledger.reconnect()
            replay(self.ledger, self.spill.path)
        except REPO_GONE as exc:
            if now - self.repo_lost_at >= self.outage_limit:
                self.give_up(exc)
            self.next_attempt = now + self.backoff.next()
            return False
        self.spill.discard()
        self.repo_reconnects += 1
        return True

    def give_up(self, error: Exception) -> None:
        """Stop waiting for the repo: the coordinator ends the load; what is still queued
        goes to the spill file, which stays for `ptor reconcile --run` later."""
        self.spill.sync()
        self.gave_up = (f"the repo stayed unreachable for {self.outage_limit:g} s "
                        f"(max-outage): {error_label(error)}; the ledger rows it missed are "
                        f"kept in {self.spill.path}: {self.reconcile_hint()}")
        if self.events is not None:
            self.events.put(messages.RecorderCrashed(self.gave_up, ""))

    def reconcile_hint(self) -> str:
        return (f"once the repo is back, run ptor reconcile --run {self.run_id} with the "
                "same --report-dir and --repo-pgdsn")

    def finish(self) -> None:
        """After the stop message: a spill file still waiting is replayed before the
        recorder reports success (or the recorder gives up at max-outage)."""
        while self.spill is not None and self.spill.holding and not self.gave_up:
            if not self.replay_spill():
                time.sleep(0.05)
        if self.spill is not None:
            self.spill.close()
        if self.gave_up:
            raise RecorderError(self.gave_up)

    def run(self, alive) -> None:
        while self.write(self.next_batch(alive)):
            pass
        self.finish()


def run_recorder(spec: LedgerSpec, queue, ack_conns: dict, events, alive) -> None:
    """Process entry point: open the ledger here, drain until stopped (or until the
    coordinator is gone: messages.coordinator_gone), report the totals."""
    messages.start_child("recorder")
    try:
        ledger = spec.open()
        spill = Spill(spec.spill_path) if spec.spill_path and not spec.durable else None
        recorder = Recorder(ledger, queue, ack_conns, spec.outage_limit, spill, events,
                            spec.run_id)
        recorder.run(alive)
        ledger.close()
        events.put(messages.RecorderFinished(recorder.ops, recorder.intents,
                                             recorder.identities, None,
                                             recorder.repo_reconnects,
                                             spill.total_rows if spill else 0,
                                             spill.total_batches if spill else 0))
    except BaseException as exc:
        # ptor's own errors are whole sentences for the user; anything else is labelled
        error = str(exc) if isinstance(exc, RecorderError) else error_label(exc)
        events.put(messages.RecorderCrashed(error, messages.tail(traceback.format_exc())))
        raise SystemExit(1) from None
