"""The recorder process: the only writer of the ledger.

It drains the shared Queue in batches (everything that has arrived, up to a cap), writes a
batch in one transaction, commits it, and only then tells each worker that its intents are
durable. One commit thus serves every worker that sent something meanwhile (group commit).
Nothing is ever dropped: the loop ends only on the coordinator's stop message, which the
coordinator sends after every worker process has exited and so flushed its puts.
"""

from __future__ import annotations

import os
import queue as queue_module
import traceback

from . import messages
from .db import error_label
from .ledger import LedgerSpec

MAX_BATCH_MESSAGES = 2000


class Recorder:
    """The batching loop, separate from process glue so it can be driven in tests."""

    def __init__(self, ledger, queue, ack_conns: dict) -> None:
        self.ledger = ledger
        self.queue = queue
        self.ack_conns = ack_conns
        self.ops = 0
        self.intents = 0
        self.identities = 0
        self.ended: set[int] = set()

    def next_batch(self, parent_pid: int) -> list:
        """Block for the first message, then take whatever else is already there."""
        while True:
            try:
                batch = [self.queue.get(timeout=1.0)]
                break
            except queue_module.Empty:
                if os.getppid() != parent_pid:  # the coordinator is gone: flush and stop
                    return [(messages.RECORDER_STOP,)]
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
        acks: dict[int, int] = {}
        stop = False
        for message in batch:
            tag = message[0]
            if tag == messages.OPS:
                ops.extend(message[2])
            elif tag == messages.INTENTS:
                worker, block_no = message[1], message[2]
                intents.extend((worker, seq, kind, key) for seq, kind, key in message[3])
                acks[worker] = block_no
            elif tag == messages.IDENTITY:
                identities.append(message[1])
            elif tag == messages.RETRACT:
                retracts.append((message[1], message[2]))
            elif tag == messages.WORKER_END:
                self.ended.add(message[1])
            elif tag == messages.RECORDER_STOP:
                stop = True
            else:
                raise ValueError(f"unknown message tag {tag!r}")
        if intents or ops or identities or retracts:
            self.ledger.write(intents, ops, identities, retracts)
            self.ledger.commit()
        self.ops += len(ops)
        self.intents += len(intents)
        self.identities += len(identities)
        for worker, block_no in acks.items():
            self.ack_conns[worker].send(block_no)
        return not stop

    def run(self, parent_pid: int) -> None:
        while self.write(self.next_batch(parent_pid)):
            pass


def run_recorder(spec: LedgerSpec, queue, ack_conns: dict, events, parent_pid: int) -> None:
    """Process entry point: open the ledger here, drain until stopped, report the totals."""
    messages.ignore_stop_signals()
    try:
        ledger = spec.open()
        recorder = Recorder(ledger, queue, ack_conns)
        recorder.run(parent_pid)
        ledger.close()
        events.put(messages.RecorderFinished(recorder.ops, recorder.intents,
                                             recorder.identities))
    except BaseException as exc:
        events.put(messages.RecorderCrashed(error_label(exc), traceback.format_exc()))
        raise SystemExit(1) from None
