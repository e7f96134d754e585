"""The drill lock follows a failover to a newer primary of the same cluster, never back."""

from ptor_harness.servers import is_newer


def test_only_a_higher_timeline_of_the_same_cluster_is_newer():
    assert is_newer(("7301", 2), ("7301", 1))
    assert not is_newer(("7301", 1), ("7301", 1))  # the same primary
    assert not is_newer(("7301", 1), ("7301", 2))  # an old primary still up: stay
    assert not is_newer(("9999", 5), ("7301", 1))  # another cluster altogether
    assert not is_newer(None, ("7301", 1)) and not is_newer(("7301", 2), None)


def fake_conn(rows):
    """A session whose statements answer `rows` in turn (fetchone), whatever was asked."""
    class Cursor:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, *args):
            pass

        def fetchone(self):
            return next(rows)

    class Conn:
        def cursor(self):
            return Cursor()

    return Conn()


def test_a_holder_whose_details_are_hidden_is_still_named():
    """Another role's session, seen without pg_read_all_stats: no name, address or start."""
    from ptor_harness.lock import try_lock

    conn = fake_conn(iter([(False,), (None, None, None)]))
    assert try_lock(conn, "ptor") == "session (unnamed) from a local socket or a hidden " \
                                     "address"


def test_a_keeper_whose_thread_dies_says_so():
    """If the keeper's thread dies, the verdict can no longer be a pass (report checks)."""
    from ptor_harness.lock import LockKeeper

    class Broken:
        def close(self):
            pass

    keeper = LockKeeper.__new__(LockKeeper)
    keeper.conn, keeper.died = Broken(), None

    def explode():
        raise RuntimeError("boom")

    keeper._keep = explode
    keeper._run()
    assert keeper.failed == "the drill lock's keeper failed: RuntimeError: boom"


def test_a_holder_that_ends_between_the_try_and_the_look_is_no_holder():
    """The lock was held when tried, and its holder was gone when asked who it was (a
    campaign's hold whose pooler was just removed): the lock is tried again and taken,
    not refused; a holder that keeps ending is reported as such, in bounded tries."""
    from ptor_harness import lock

    taken = fake_conn(iter([(False,), None, (True,)]))
    assert lock.try_lock(taken, "ptor") is None
    ending = iter([(False,), None] * lock.ENDED_HOLDER_TRIES)
    assert lock.try_lock(fake_conn(ending), "ptor") == "another session (it has just ended)"
    assert next(ending, "used up") == "used up"
