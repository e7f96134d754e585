"""One model of servers and primaries (servers.py): the same server, the same primary, a
newer primary, the newest timeline, and the moves of the primary the workers followed."""

from ptor_harness.ops import Identity
from ptor_harness.servers import (
    identity_changes,
    newer_primary_since,
    newest_timeline,
    position,
    primaries,
    primary_moves,
)


def ident(worker=0, session=1, at=1.0, port=7211, recovery=False, system="42", timeline=1,
          started=100.0):
    return Identity(worker, session, at, "127.0.0.1", port, recovery, system, timeline,
                    started)


def test_a_restart_changes_the_history_but_not_the_primary():
    before, restarted = ident(), ident(started=200.0)
    assert before.server() != restarted.server()
    assert before.primary() == restarted.primary()
    assert len(primaries([before, restarted])) == 1
    assert len(primaries([before, ident(port=7212, timeline=2)])) == 2


def test_standbys_and_unknowns_are_no_primary():
    assert primaries([ident(), ident(port=7212, recovery=True), None]) == {ident().primary()}


def test_a_position_needs_both_the_system_and_the_timeline():
    assert position(ident(timeline=3)) == ("42", 3)
    assert position(ident(system=None)) is None and position(ident(timeline=None)) is None
    assert position(None) is None


def test_the_newest_timeline_is_of_primaries_of_the_one_cluster():
    seen = [ident(timeline=1), ident(timeline=3, recovery=True), ident(timeline=2),
            ident(system="99", timeline=7), None]
    assert newest_timeline(seen, "42") == 2
    assert newest_timeline(seen, "13") is None
    # a role that may not read the system identifier: the timelines still compare
    assert newest_timeline([ident(system=None, timeline=4), ident(timeline=9)], None) == 4


def test_a_newer_primary_is_dated_by_the_first_client_it_served():
    seen = [ident(at=1.0, timeline=1), ident(worker=1, at=6.0, timeline=2),
            ident(worker=2, at=5.0, timeline=2), ident(at=9.0, timeline=3),
            ident(at=2.0, system="99", timeline=1)]
    assert newer_primary_since(seen) == {("42", 1): 5.0, ("42", 2): 9.0}


def test_identity_changes_are_grouped_into_moves_of_the_primary():
    seen = [ident(worker=w, session=1, at=1.0 + w) for w in range(3)]
    seen += [ident(worker=w, session=2, at=10.0 + w, port=7212, timeline=2) for w in range(3)]
    seen += [ident(worker=0, session=3, at=20.0, port=7212, timeline=2, started=300.0)]
    seen += [ident(worker=1, session=3, at=21.0, port=7211, recovery=True)]
    changes = identity_changes(seen)
    assert [(c["worker"], c["at"]) for c in changes] == [(0, 10.0), (1, 11.0), (2, 12.0),
                                                         (0, 20.0)]
    moves = primary_moves(changes)
    assert [(m["first"], m["last"], m["workers"]) for m in moves] == [(10.0, 12.0, 3),
                                                                      (20.0, 20.0, 1)]
    assert moves[0]["to"].startswith("127.0.0.1:7212")
