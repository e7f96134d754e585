"""Servers named by node. A server a worker reached: by where it says it is (the
observer's sessions asked each node the same). A primary's pg_stat_replication rows: the
name each standby's WAL receiver gives (its samples' standby_name) tells which node a row
is about, over time (the same name moves to the old primary once it rejoins), and a name
no node or two nodes gave stays as the primary gave it."""

from ptor_harness.ops import ENDPOINT, NodeSample, ReplicationRow
from ptor_harness.verify import anatomy as a
from ptor_harness.verify import lanes
from ptor_harness.verify.node_names import name_standbys, node_of_server


def sample(node, at, role, name=None):
    if role == "down":
        return NodeSample(node, at, 0.05, False, None, None, None, None, None, None, None,
                          None, "OperationalError: refused")
    standby = role == "standby"
    return NodeSample(node, at, 0.001, True, standby, 1, "7300", None if standby else 1000,
                      990 if standby else None, 980 if standby else None, None, True, None,
                      name if standby else None)


def row(primary, at, name, sync="sync"):
    return ReplicationRow(primary, at, name, "streaming", sync, 1000, 995, 990, 980, 0.001,
                          0.002, 0.003)


def failover(name="standby"):
    """node1 primary until 1.0 (node2 its standby, both naming themselves `name` to the
    primary); node2 primary from 1.3; node1 its standby from 2.0."""
    samples, replication = [], []
    for i in range(30):
        t = round(i * 0.1, 1)
        if t < 1.0:
            samples += [sample("node1", t, "primary"), sample("node2", t + 0.001, "standby",
                                                              name)]
            replication.append(row("node1", t, name))
        else:
            samples.append(sample("node1", t, "standby" if t >= 2.0 else "down", name))
            samples.append(sample("node2", t + 0.001, "primary" if t >= 1.3 else "standby",
                                  name))
            if t >= 2.1:
                replication.append(row("node2", t + 0.001, name))
        samples.append(sample(ENDPOINT, t + 0.002, "primary"))
    return samples, replication


def test_each_row_names_the_node_that_gave_the_name_then():
    samples, replication = failover()
    named = name_standbys(samples, replication)
    assert [r.application_name for r in named if r.node == "node1"] == ["node2"] * 10
    assert [r.application_name for r in named if r.node == "node2"] == ["node1"] * 9
    # nothing else about a row changes
    assert [r._replace(application_name=None) for r in named] == \
        [r._replace(application_name=None) for r in replication]


def test_a_rejoining_standby_not_yet_naming_itself_is_still_named():
    """pg_auto_failover's old primary rejoining: the new primary lists it by its
    application name at 2.1 and 2.2 while its own nearest samples give no name yet (its
    WAL receiver starting); its first naming sample, at 2.5, is within a second: the rows
    are its. (Seen as a third lane, "pgautofailover_standby_2", in the lag curve.)"""
    samples, replication = failover("pgautofailover_standby_2")
    samples = [s._replace(standby_name=None) if s.node == "node1" and s.at < 2.45 else s
               for s in samples]
    named = name_standbys(samples, replication)
    assert {r.application_name for r in named if r.node == "node2"} == {"node1"}


def test_a_name_one_node_alone_ever_gave_names_rows_no_sample_speaks_for():
    """The old primary cloned anew: its server down while the new primary streams to it
    under its application name (pg_auto_failover's pgautofailover_standby_1, one node's
    alone): the rows are that node's. A name two nodes gave over the drill (the
    streaming lab's "standby") is never guessed from afar."""
    samples, replication = failover("pgautofailover_standby_1")
    # node2, the standby before the failover, gave its own name (standby_2); node1 gives
    # standby_1 once it streams again, from 2.0
    samples = [s._replace(standby_name="pgautofailover_standby_2") if s.node == "node2"
               and s.standby_name else s for s in samples]
    far = [r._replace(at=r.at + 60) for r in replication if r.node == "node2"]
    assert {r.application_name for r in name_standbys(samples, far)} == {"node1"}
    moved = [r._replace(at=r.at + 60) for r in failover()[1] if r.node == "node2"]
    assert name_standbys(failover()[0], moved) == moved  # "standby": two nodes gave it


def test_the_anatomy_then_names_one_server_one_way():
    samples, replication = failover()
    out = a.anatomy(samples, name_standbys(samples, replication), 1.0, "kill-primary",
                    1.02, 1.35)
    assert {x["standby"] for x in out["replication_at_fault"]} == {"node2"}
    assert a.closest_standby(out["replication_at_fault"])[0] == "node2"
    restored = next(e for e in out["events"] if e["name"] == "redundancy restored")
    assert restored["detail"].startswith("node1 streaming")
    assert set(lanes.lag_series(samples, name_standbys(samples, replication))) == \
        {"node1", "node2"}


def test_a_name_no_node_gave_or_two_gave_stays_the_primarys():
    samples, replication = failover()
    stranger = [row("node1", 0.5, "pg_receivewal")]  # a client of no node ptor watches
    assert name_standbys(samples, stranger) == stranger
    # both standbys of a primary give the default name: which one is which is unknown
    twins = [sample("node1", 0.0, "primary"), sample("node2", 0.0, "standby", "walreceiver"),
             sample("node3", 0.0, "standby", "walreceiver")]
    rows = [row("node1", 0.0, "walreceiver", "async"), row("node1", 0.0, "walreceiver",
                                                          "async")]
    assert name_standbys(twins, rows) == rows


def test_without_names_or_far_from_any_sample_nothing_is_renamed():
    samples, replication = failover()
    unnamed = [s._replace(standby_name=None) for s in samples]
    assert name_standbys(unnamed, replication) == replication  # no pg_monitor: no names
    late = [r._replace(at=r.at + 60) for r in replication]  # no standby sample near them
    assert name_standbys(samples, late) == late


def test_a_server_is_the_node_whose_sessions_reached_its_address():
    samples = [sample("node1", 0.0, "primary")._replace(server="127.0.0.1:7211"),
               sample("node2", 0.0, "standby", "standby")._replace(server="127.0.0.1:7212"),
               sample(ENDPOINT, 0.0, "primary")._replace(server="127.0.0.1:7212")]
    assert node_of_server(samples, "127.0.0.1", 7212) == "node2"
    assert node_of_server(samples, "127.0.0.1", 7211) == "node1"
    assert node_of_server(samples, "127.0.0.1", 7213) is None  # no node there
    assert node_of_server(samples, None, 7212) is None  # a Unix socket: no address
    # two nodes behind one address (a proxy given as a node): which one is unknown
    twice = samples + [sample("node3", 0.0, "standby")._replace(server="127.0.0.1:7212")]
    assert node_of_server(twice, "127.0.0.1", 7212) is None


def test_each_move_of_the_primary_names_its_servers_by_node():
    """A kill, then a switchover back: the server in between is named too (report format
    13), each address looked up once however many identities name it."""
    from ptor_harness import servers
    from ptor_harness.outputs.report import moves_by_node

    from .synthetic import identity

    samples = [sample("node1", 0.0, "primary")._replace(server="127.0.0.1:7211"),
               sample("node2", 0.0, "standby", "standby")._replace(server="127.0.0.1:7212")]
    identities = [identity(0, 1, 7211, 1, at=0.1), identity(0, 2, 7212, 2, at=3.0),
                  identity(0, 3, 7211, 3, at=9.0)] + \
        [identity(1, n, 7212, 2, at=3.0 + n / 1000) for n in range(1, 500)]
    moves = moves_by_node(servers.primary_moves(servers.identity_changes(identities)),
                          identities, samples)
    assert [(m["from_node"], m["to_node"]) for m in moves] == [("node1", "node2"),
                                                               ("node2", "node1")]
    assert moves_by_node(moves, identities, []) == [
        dict(m, from_node=None, to_node=None) for m in moves]  # no observer: no names
