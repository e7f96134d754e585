"""Envelopes that cross process boundaries, and the queue they travel on.

Every message on the shared Queue to the recorder has one shape, `(tag, sender, data)`
(Locust's `Message(type, data, node_id)`): the tag says what `data` is, the sender is the
worker's number (or OBSERVER, COORDINATOR). They are plain tuples, because pickling a named
class per op costs throughput. The coordinator's events queue carries rarer news, each a
dataclass so the code that handles it reads as the domain.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing.queues
import os
import pickle
import select
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

# One write of at most PIPE_BUF bytes to a pipe is atomic (POSIX): never torn by the
# writer's death, never interleaved with another writer's. The Queue adds a 4-byte length
# and pickles our bytes once more (a few bytes of framing): 64 bytes of room cover both.
MAX_MESSAGE_BYTES = select.PIPE_BUF - 64
TRACEBACK_CHARS = 2000  # the tail of a crash's traceback that travels to the coordinator


class MessageTooLarge(ValueError):
    """A message that does not fit in one atomic pipe write; the sender splits it."""


class OpQueue(multiprocessing.queues.Queue):
    """The shared Queue from the workers to the recorder, without a cross-process lock.

    multiprocessing.Queue serializes its writers with one lock shared by every process. A
    worker SIGKILLed while its feeder thread holds it (blocked writing to a full pipe,
    which a busy load makes common) never releases it, and every other writer, the
    coordinator's stop message included, then waits for ever: the drill wedges. Here each
    process has a lock of its own (for its one feeder thread), and every message is pickled
    by `put` and refused when larger than MAX_MESSAGE_BYTES, so the kernel writes each one
    whole or not at all, whoever dies when.
    """

    def __init__(self, maxsize: int = 0, *, ctx) -> None:
        super().__init__(maxsize, ctx=ctx)
        self._wlock = threading.Lock()

    def __getstate__(self):
        return tuple(None if part is self._wlock else part for part in super().__getstate__())

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self._wlock = threading.Lock()

    def put(self, obj, block: bool = True, timeout: Optional[float] = None) -> None:
        data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(f"a {len(data)}-byte message does not fit in one atomic "
                                  f"pipe write (PIPE_BUF is {select.PIPE_BUF} bytes)")
        super().put(data, block, timeout)

    def get(self, block: bool = True, timeout: Optional[float] = None):
        return pickle.loads(super().get(block, timeout))


def op_queue(ctx, maxsize: int = 0) -> OpQueue:
    return OpQueue(maxsize, ctx=ctx)


def put_split(put: Callable[[tuple], None], tag: str, sender: int, items: list) -> None:
    """Put (tag, sender, items), as several messages in order when one would not fit. A
    single op always fits: its error label is at most 200 characters."""
    try:
        put((tag, sender, items))
    except MessageTooLarge:
        if len(items) < 2:
            raise
        half = len(items) // 2
        put_split(put, tag, sender, items[:half])
        put_split(put, tag, sender, items[half:])


# A Piece's room for its part of the pickled message: the rest of the atomic write is the
# Piece's own pickling (its class name, four numbers, the bytes' length), under 200 bytes.
PIECE_BYTES = MAX_MESSAGE_BYTES - 256
_message_numbers = itertools.count(1)


@dataclass(frozen=True)
class Piece:
    """A part of a rare message too large for one atomic pipe write (`put_whole`)."""

    sender: int  # the sending process's pid
    message: int  # the message's number at its sender
    index: int
    count: int
    data: bytes


def put_whole(queue, obj) -> None:
    """Put a rare message of any size: as it is when it fits, else in Pieces that an
    `Assembler` puts together again. Each piece is one atomic write; a sender that dies
    part way leaves an incomplete message, which is never delivered (as if it had died
    before sending it)."""
    try:
        queue.put(obj)
        return
    except MessageTooLarge:
        pass
    data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    count = -(-len(data) // PIECE_BYTES)
    number, sender = next(_message_numbers), os.getpid()
    for index in range(count):
        queue.put(Piece(sender, number, index, count,
                        data[index * PIECE_BYTES:(index + 1) * PIECE_BYTES]))


class Assembler:
    """The receiving side of `put_whole`: pieces in, whole messages out."""

    def __init__(self) -> None:
        self.parts: dict[tuple[int, int], dict[int, bytes]] = {}

    def add(self, piece: Piece) -> Optional[object]:
        """The message, once its last piece is in; else None."""
        key = (piece.sender, piece.message)
        parts = self.parts.setdefault(key, {})
        parts[piece.index] = piece.data
        if len(parts) < piece.count:
            return None
        del self.parts[key]
        return pickle.loads(b"".join(parts[i] for i in range(piece.count)))


# Senders that are not workers.
OBSERVER = -1
COORDINATOR = -2
CONSUMER = -3  # the CDC consumer (cdc.py)
# The tags of the messages to the recorder, with what their data is.
OPS = "ops"  # [op tuple, ...]
INTENTS = "intents"  # (block number, [(seq, kind, key), ...]) -> acknowledged with the number
RETRACT = "retract"  # first seq: the worker's intents from it on were never sent
IDENTITY = "identity"  # an identity tuple (ops.Identity) the worker read
NODES = "nodes"  # [node sample tuple, ...] from the node observer
REPLICATION = "replication"  # [replication row tuple, ...], likewise
CDC = "cdc"  # (block number, [CdcChange tuple, ...]) -> acknowledged with the number
WORKER_END = "end"  # None: the worker sends nothing after this
RECORDER_STOP = "stop"  # None: from the coordinator, after all workers ended


def tail(text: str, chars: int = TRACEBACK_CHARS) -> str:
    """The end of a traceback, where the cause is, short enough for one message."""
    return text if len(text) <= chars else "...\n" + text[-chars:]


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
    spilled_batches: int = 0


@dataclass(frozen=True)
class BackgroundFinished:
    """The background load's commands, ended at the drain (background.CommandRecord each:
    starts, exits, progress lines, what was left of its process group). A second of
    progress a line: sent with `put_whole`, as it outgrows one pipe write within a
    minute or two."""

    commands: list


def coordinator_gone(alive) -> bool:
    """True once the coordinator has exited, however it ended (SIGKILL included). `alive`
    is the read end of a pipe whose write end the coordinator alone holds (Crew), so it
    reads as closed exactly then. A child's parent is the fork server, which outlives the
    coordinator while any child holds its pipe: the parent's pid says nothing."""
    return alive.poll()


def ignore_stop_signals() -> None:
    """Ctrl-C reaches the whole process group and a service manager may TERM it all: only
    the coordinator decides how a drill stops, so its children ignore both and are told."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def name_process(role: str) -> None:
    """Name this process in ps and top (`ptor: worker 3`, `ptor: recorder`): a forked
    child otherwise shows the fork server's command line, so neither a user watching a
    drill nor the CPU benchmark could tell the workers from the recorder. The title is the
    role alone, nothing of the scenario, so it never holds a secret."""
    with contextlib.suppress(ImportError):  # installed without its dependencies
        import setproctitle

        setproctitle.setproctitle(f"ptor: {role}")


def start_child(role: str) -> None:
    """Where every child of the coordinator begins: it ignores the stop signals and takes
    its name."""
    ignore_stop_signals()
    name_process(role)


@dataclass(frozen=True)
class WorkerSchedule:
    """A worker's share of --rate, as it went (schedule.py): ops sent and skipped, and the
    packed histograms (LatencyHistogram.packed) of their schedule lag and, for
    acknowledged ops, of their latency from when they were due; `lag_writable`: the lag
    of the ops due while the worker's writes went through."""

    worker: int
    sent: int
    skipped: int
    lag: tuple
    from_due: tuple
    lag_writable: tuple = ()


@dataclass(frozen=True)
class ProbeGap:
    """One outage as the probe saw it: its last answer, its first failure, and its first
    write after (None: writes never came back while it ran)."""

    last_ok: Optional[float]
    first_failure: float
    first_write: Optional[float]

    @property
    def seconds(self) -> Optional[float]:
        if self.first_write is None or self.last_ok is None:
            return None
        return self.first_write - self.last_ok


@dataclass(frozen=True)
class CdcFinished:
    """The CDC consumer's last word (cdc.py): its connections (each: number, when, the
    server, its system and timeline, why it failed or was lost), every confirmation
    (when, LSN), the changes received, and whether it caught up with the load's last write
    (`target`: the LSN it read up to) before it stopped. Sent with `put_whole`."""

    connections: list
    confirmed: list
    received: int
    caught_up: bool
    target: Optional[int]


@dataclass(frozen=True)
class CdcCrashed:
    """The CDC consumer died of an exception."""

    error: str
    traceback: str


@dataclass(frozen=True)
class ObserverFinished:
    """The observer's last word: samples it had to drop (the recorder's queue was full)."""

    samples: int
    dropped: int
