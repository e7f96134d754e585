"""The drill lock follows a failover to a newer primary of the same cluster, never back."""

from ptor_harness.lock import is_newer


def test_only_a_higher_timeline_of_the_same_cluster_is_newer():
    assert is_newer(("7301", 2), ("7301", 1))
    assert not is_newer(("7301", 1), ("7301", 1))  # the same primary
    assert not is_newer(("7301", 1), ("7301", 2))  # an old primary still up: stay
    assert not is_newer(("9999", 5), ("7301", 1))  # another cluster altogether
    assert not is_newer(None, ("7301", 1)) and not is_newer(("7301", 2), None)
