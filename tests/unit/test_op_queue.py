"""The shared queue from the workers to the recorder survives a writer SIGKILLed mid-write.

A plain multiprocessing.Queue serializes its writers with one lock shared by every process;
a writer killed while holding it (blocked on a full pipe, common under load) wedges every
other writer for ever. `messages.op_queue` has no shared write lock and keeps each message
within PIPE_BUF, which the kernel writes atomically."""

import multiprocessing
import os
import queue as queue_module
import random
import signal
import time

import pytest

from ptor_harness.drill import messages

WRITERS, VICTIMS = 6, 4


def write_forever(q, writer: int, stop) -> None:
    """Put messages as large as the queue allows until told to stop, then an end marker."""
    seq = 0
    while not stop.is_set():
        seq += 1
        q.put(("m", writer, seq, bytes([seq % 256]) * 3500))
    q.put(("end", writer, seq, b""))


def check(message, last: dict) -> None:
    tag, writer, seq, body = message
    assert seq == last.get(writer, 0) + (1 if tag == "m" else 0), "lost or reordered"
    assert body == (bytes([seq % 256]) * 3500 if tag == "m" else b""), "torn message"
    last[writer] = seq


def test_a_writer_killed_mid_write_does_not_wedge_the_others():
    ctx = multiprocessing.get_context("spawn")
    q = messages.op_queue(ctx, 200)
    stop = ctx.Event()
    procs = [ctx.Process(target=write_forever, args=(q, w, stop)) for w in range(WRITERS)]
    for proc in procs:
        proc.start()
    last: dict = {}
    rng = random.Random(7)
    try:
        for victim in procs[:VICTIMS]:  # slow reading keeps the pipe full: writers block
            until = time.monotonic() + rng.uniform(0.1, 0.3)
            while time.monotonic() < until:
                check(q.get(timeout=10), last)
                time.sleep(0.0005)
            os.kill(victim.pid, signal.SIGKILL)
            victim.join(5)
        survivors = range(VICTIMS, WRITERS)
        before = {w: last.get(w, 0) for w in survivors}
        deadline = time.monotonic() + 10
        while any(last.get(w, 0) < before[w] + 200 for w in survivors):
            assert time.monotonic() < deadline, f"the queue wedged: {last} after {before}"
            check(q.get(timeout=10), last)
        stop.set()
        ended: set = set()
        while ended != set(survivors):
            try:
                message = q.get(timeout=10)
            except queue_module.Empty:
                pytest.fail(f"no end marker from {set(survivors) - ended}: wedged")
            if message[0] == "end":
                assert message[1] in survivors
                ended.add(message[1])
            check(message, last)
    finally:
        stop.set()
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            proc.join(5)


def test_messages_that_would_not_fit_are_refused_or_split_in_order():
    ctx = multiprocessing.get_context("spawn")
    q = messages.op_queue(ctx)
    with pytest.raises(messages.MessageTooLarge, match="PIPE_BUF"):
        q.put(("m", 0, 0, b"x" * messages.MAX_MESSAGE_BYTES))
    ops = [(0, seq, "I", seq, 1.5, 2.5, "indeterminate", "E" * 200, 1, None)
           for seq in range(1, 101)]  # 100 ops with long error labels: ~30 kB pickled
    messages.put_split(q.put, messages.OPS, 0, ops)
    received = []
    while len(received) < len(ops):
        tag, worker, part = q.get(timeout=5)
        assert (tag, worker) == (messages.OPS, 0) and part
        received.extend(part)
    assert received == ops
    with pytest.raises(queue_module.Empty):
        q.get(timeout=0.2)


def test_a_rare_message_too_large_for_one_write_travels_in_pieces():
    """A background load's records (a progress line a second: a week's worth is kept)
    outgrow one atomic write within minutes; put_whole sends them in pieces, and the
    Assembler gives the message back whole, whichever senders' pieces come between."""
    ctx = multiprocessing.get_context("spawn")
    q = messages.op_queue(ctx)
    progress = [(float(t), 1234.5 + t, t % 3) for t in range(3600)]  # an hour
    big = messages.BackgroundFinished([{"command": "pgbench", "progress": progress}])
    q.put(messages.Piece(os.getpid() + 1, 1, 0, 2, b"half"))  # another sender's, first
    messages.put_whole(q, big)
    small = messages.BackgroundFinished([])
    messages.put_whole(q, small)  # fits: sent as it is
    assembler, whole = messages.Assembler(), []
    pieces = 0
    while len(whole) < 2:
        item = q.get(timeout=5)
        if isinstance(item, messages.Piece):
            pieces += item.sender == os.getpid()
            done = assembler.add(item)
            if done is not None:
                whole.append(done)
        else:
            whole.append(item)
    assert whole == [big, small] and pieces > 10
    assert list(assembler.parts) == [(os.getpid() + 1, 1)]  # incomplete: never delivered
    with pytest.raises(queue_module.Empty):
        q.get(timeout=0.2)
