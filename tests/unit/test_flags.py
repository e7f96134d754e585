"""The crew's go / stop / abort flags (drill/flags.py): a child SIGKILLed while it looks at
them, as a worker does many times a second, can never wedge the coordinator's stop. With
multiprocessing.Event in their place this test hangs at the first `set` (its lock, or its
count of sleepers, stays with the dead child)."""

import multiprocessing
import threading
import time

from ptor_harness.drill.flags import crew_flags


def look_without_end(flag, looks) -> None:
    """A child that looks at the flag as fast as it can, waits on it briefly, and so on,
    counting its looks."""
    while True:
        flag.is_set()
        flag.wait(0.001)
        looks[0] += 1


def wait_for(flag, answer) -> None:
    answer.send(flag.wait(30))


def test_a_child_killed_while_it_looks_cannot_wedge_the_flags():
    ctx = multiprocessing.get_context("spawn")
    go, stop, abort, _ = crew_flags(ctx)
    for _ in range(8):
        looks = ctx.Array("q", 1, lock=False)
        child = ctx.Process(target=look_without_end, args=(stop, looks))
        child.start()
        deadline = time.monotonic() + 60
        while looks[0] < 20 and time.monotonic() < deadline:  # looking: the kill lands mid-look
            time.sleep(0.001)
        assert looks[0] >= 20
        child.kill()
        child.join(10)
        assert child.exitcode is not None
    setter = threading.Thread(target=stop.set, daemon=True)
    setter.start()
    setter.join(5)
    assert not setter.is_alive(), "setting the flag waited on a dead child"
    answer, tell = ctx.Pipe(duplex=False)
    child = ctx.Process(target=wait_for, args=(stop, tell))
    child.start()
    assert answer.poll(60) and answer.recv() is True
    child.join(10)
    assert not go.is_set() and not abort.is_set()  # one flag's set touches no other


def test_a_wait_ends_false_at_its_timeout_and_true_once_set():
    ctx = multiprocessing.get_context("spawn")
    go, _, _, _ = crew_flags(ctx)
    started = time.monotonic()
    assert go.wait(0.05) is False
    assert time.monotonic() - started >= 0.05
    go.set()
    assert go.wait(0) is True and go.is_set()
