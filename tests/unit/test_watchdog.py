"""bounds.Watchdog, behind bounds.bounded, and a worker's OpBound: each cuts at its
deadline what has not ended by then (a socket pair stands in for a server that never
answers)."""

import socket
import threading
import time

from ptor_harness.bounds import OpBound, Watchdog, bounded


def test_an_action_runs_at_its_deadline_and_a_disarmed_one_never():
    dog = Watchdog()
    fired = []
    late = dog.arm(0.05, lambda: fired.append("late"))
    kept = dog.arm(0.05, lambda: fired.append("kept"))
    dog.disarm(kept)
    # actions run in deadline order: once this later one ran, the disarmed one's
    # deadline had passed too
    after = threading.Event()
    dog.arm(0.1, after.set)
    assert after.wait(30)
    assert fired == ["late"]
    dog.disarm(late)  # after it ran: nothing to do


def test_many_bounded_blocks_share_one_thread():
    dog = Watchdog()
    before = threading.active_count()
    tokens = [dog.arm(60, lambda: None) for _ in range(200)]
    assert threading.active_count() <= before + 1
    for token in tokens:
        dog.disarm(token)


class FakeConn:
    def __init__(self, sock):
        self.sock = sock

    def fileno(self):
        return self.sock.fileno()


def test_bounded_cuts_a_block_stuck_past_its_time_only():
    mine, theirs = socket.socketpair()
    try:
        conn = FakeConn(mine)
        with bounded(conn, 5.0):
            pass  # ends in time: never cut
        theirs.send(b"x")
        assert mine.recv(1) == b"x"
        t0 = time.monotonic()
        with bounded(conn, 0.1):
            data = mine.recv(1)  # the peer never answers: the watchdog shuts it down
        assert data == b"" and 0.05 < time.monotonic() - t0 < 3
    finally:
        mine.close()
        theirs.close()


def test_the_op_bound_cuts_only_an_op_older_than_its_limit():
    """A worker's OpBound knows an op by its socket and start: one that ended in time is
    never cut; one still in flight past the limit has its socket shut down (the blocked
    read returns), and the bound waits for that op to end before it looks again."""
    mine, theirs = socket.socketpair()
    try:
        op_bound = OpBound(0.2, enabled=True)
        op_bound.start()
        op_bound.begin(mine.fileno(), time.time())
        op_bound.end()  # ended in time
        theirs.send(b"x")
        assert mine.recv(1) == b"x" and op_bound.cut == 0
        t0 = time.monotonic()
        op_bound.begin(mine.fileno(), time.time())
        data = mine.recv(1)  # the peer never answers: the bound shuts the socket down
        op_bound.end()
        assert data == b"" and 0.15 < time.monotonic() - t0 < 5 and op_bound.cut == 1
    finally:
        mine.close()
        theirs.close()
    off = OpBound(0.2, enabled=False)  # statement-timeout 0: the user asked for no limit
    off.start()
    assert not off.thread.is_alive()
