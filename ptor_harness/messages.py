"""Envelopes that cross process boundaries.

Hot-path messages (op batches, intents) are small tuples of plain values with a tag in
front, because pickling named classes per op costs throughput. Everything rarer is a
dataclass so the code that handles it reads as the domain.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Optional

# Tags of the hot-path tuples sent by workers to the recorder over the shared Queue.
OPS = "ops"  # (OPS, worker, [op tuple, ...])
INTENTS = "intents"  # (INTENTS, worker, block, [(seq, kind, key), ...]) -> ack with `block`
RETRACT = "retract"  # (RETRACT, worker, first_seq): intents from first_seq on were never sent
IDENTITY = "identity"  # (IDENTITY, identity tuple)
WORKER_END = "end"  # (WORKER_END, worker): the worker sends nothing after this
RECORDER_STOP = "stop"  # (RECORDER_STOP,): from the coordinator, after all workers ended


@dataclass(frozen=True)
class WorkerCrashed:
    """A worker died of an exception; the coordinator reports it with its traceback."""

    worker: int
    error: str
    traceback: str


@dataclass(frozen=True)
class RecorderCrashed:
    """The recorder could not write the ledger; the run stops at once."""

    error: str
    traceback: str


@dataclass(frozen=True)
class RecorderFinished:
    """The recorder drained everything and committed it."""

    ops: int
    intents: int
    identities: int
    error: Optional[str] = None
    repo_reconnects: int = 0  # times the repo went away and the batch was written again
    spilled_rows: int = 0  # async repo mode: ledger rows that waited in the spill file


def ignore_stop_signals() -> None:
    """Ctrl-C reaches the whole process group and a service manager may TERM it all: only
    the coordinator decides how a drill stops, so its children ignore both and are told."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
