"""When the pg_auto_failover lab hurries a node that rejoins by copying the primary."""

from ptor_harness.lab.autofailover import Rebuilds

SETTLED = {"node1": ("primary", "primary"), "node2": ("secondary", "secondary")}
COPYING = {"node1": ("catchingup", "catchingup"), "node2": ("primary", "primary")}


def test_a_node_catching_up_for_a_while_gets_the_primarys_checkpoint():
    rebuilds = Rebuilds()
    assert rebuilds.hurry(COPYING, 100.0) is None  # just began: pg_rewind may do
    assert rebuilds.hurry(COPYING, 104.9) is None
    assert rebuilds.hurry(COPYING, 105.0) == "node2"
    assert rebuilds.hurry(COPYING, 110.0) is None  # not again at once
    assert rebuilds.hurry(COPYING, 115.0) == "node2"


def test_a_settled_lab_or_one_without_a_primary_gets_none():
    rebuilds = Rebuilds()
    assert rebuilds.hurry(SETTLED, 0.0) is None and rebuilds.hurry(SETTLED, 60.0) is None
    no_primary = {"node1": ("catchingup", "catchingup"), "node2": ("demoted", "primary")}
    assert rebuilds.hurry(no_primary, 0.0) is None and rebuilds.hurry(no_primary, 60.0) is None
    # catching up since 0.0 all along: a primary once there is one
    assert rebuilds.hurry(COPYING, 61.0) == "node2"
    # the node caught up, then fell behind again: its wait starts over
    rebuilds = Rebuilds()
    rebuilds.hurry(COPYING, 0.0)
    rebuilds.hurry(SETTLED, 3.0)
    assert rebuilds.hurry(COPYING, 6.0) is None
    assert rebuilds.hurry({"node1": ("secondary", "catchingup"), "node2": ("wait_primary",
                                                                          "primary")},
                          11.0) == "node2"
