"""db.Watchdog, behind db.bounded: one thread runs each action at its deadline, unless the
block ended first (a socket pair stands in for a server that never answers)."""

import socket
import threading
import time

from ptor_harness.db import Watchdog, bounded


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
