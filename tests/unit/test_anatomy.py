"""The failover's anatomy from synthetic observer samples: events in order with their
sources, the outage's breakdown, replication at the fault, two primaries at once, Service
Available, lanes and the lag curve; and the report's SLA, RPO bytes and brownout."""

import pytest

from ptor_harness.ops import ENDPOINT, NodeSample, ReplicationRow
from ptor_harness.verify import anatomy as a
from ptor_harness.verify import lanes as ln
from ptor_harness.verify.metrics import brownout, sla_percent

SYSTEM = "7300"


def sample(node, at, role, timeline=1, wal=None, received=None, replayed=None,
           monitor=True, system=SYSTEM):
    if role == "down":
        return NodeSample(node, at, 0.05, False, None, None, None, None, None, None, None,
                          None, "OperationalError: refused")
    return NodeSample(node, at, 0.001, True, role == "standby", timeline, system, wal,
                      received, replayed, at - 0.01 if role == "standby" else None, monitor,
                      None)


def kill_and_promote(rejoin=True):
    """node1 primary until it is killed at 1.0; node2 promoted (timeline 2) seen at 1.3;
    node1 back as a standby streaming from 2.0; node2 streams to it (sync) from 2.1."""
    samples, replication = [], []
    for i in range(30):
        t = round(i * 0.1, 1)
        if t < 1.0:
            samples.append(sample("node1", t, "primary", wal=1000 + 100 * i))
            samples.append(sample("node2", t + 0.001, "standby", received=950 + 100 * i,
                                  replayed=900 + 100 * i))
            replication.append(ReplicationRow("node1", t, "standby", "streaming", "sync",
                                              1000 + 100 * i, 980 + 100 * i, 950 + 100 * i,
                                              900 + 100 * i, 0.001, 0.002, 0.003))
        else:
            back = rejoin and t >= 2.0
            samples.append(sample("node1", t, "standby" if back else "down", timeline=2,
                                  received=5000 if back else None))
            promoted = t >= 1.3
            samples.append(sample("node2", t + 0.001, "primary" if promoted else "standby",
                                  timeline=2 if promoted else 1, wal=4000 + i))
            if t >= 2.1:
                replication.append(ReplicationRow("node2", t + 0.001, "standby", "streaming",
                                                  "sync", 1, 1, 1, 1, 0.0, 0.0, 0.0))
        samples.append(sample(ENDPOINT, t + 0.002,
                              "down" if 1.0 <= t < 1.2 else "primary"))
    return samples, replication


def test_events_in_order_each_with_its_source():
    samples, replication = kill_and_promote()
    out = a.anatomy(samples, replication, 1.0, "kill-primary", 1.02, 1.35)
    names = [e["name"] for e in out["events"]]
    assert names == ["fault injected", "old primary unreachable", "first client error",
                     "standby promoted", "writes acknowledged again", "old primary rejoined",
                     "redundancy restored"]
    by = {e["name"]: e for e in out["events"]}
    assert by["old primary unreachable"]["at"] == 1.0
    assert by["old primary unreachable"]["source"] == "observer: node1"
    assert by["standby promoted"]["at"] == pytest.approx(1.301)
    assert by["standby promoted"]["after"] == pytest.approx(1.201)  # the resolution
    assert "timeline 2 (was 1)" in by["standby promoted"]["detail"]
    assert by["old primary rejoined"]["at"] == 2.0
    assert by["redundancy restored"]["at"] == pytest.approx(2.101)
    assert out["old_primary"] == "node1" and out["new_primary"] == "node2"
    assert out["detection_seconds"] == pytest.approx(0.02)
    assert out["promotion_seconds"] == pytest.approx(1.301 - 1.02)
    assert out["routing_seconds"] == pytest.approx(1.35 - 1.301)


def test_a_promotion_before_the_first_client_error_spends_none_of_the_outage():
    """A frozen primary: its sessions hang until their timeout, and the standby is
    promoted (1.301) before any client sees an error (1.32): the phases follow one
    another from that error and add up to the fault's time to the first write."""
    samples, replication = kill_and_promote()
    out = a.anatomy(samples, replication, 1.0, "hang-primary", 1.32, 1.35)
    assert out["detection_seconds"] == pytest.approx(0.32)
    assert out["promotion_seconds"] == 0.0
    assert out["routing_seconds"] == pytest.approx(1.35 - 1.32)
    assert out["detection_seconds"] + out["promotion_seconds"] + out["routing_seconds"] == \
        pytest.approx(1.35 - 1.0)


def test_a_promotion_seen_after_the_first_write_is_bounded_by_it():
    """The observer samples every 0.1 s: when a write was acknowledged through the endpoint
    between the sample before the promotion and the one that showed it, the promotion
    happened before that write (routing 0, never negative)."""
    samples, replication = kill_and_promote()
    out = a.anatomy(samples, replication, 1.0, "kill-primary", 1.02, 1.25)
    assert out["promotion_seconds"] == pytest.approx(1.25 - 1.02)
    assert out["routing_seconds"] == 0.0


def test_commits_the_new_primary_held_are_the_first_commit_not_routing():
    """repmgr's quorum after a switchover: the workers' sessions were on the new primary
    at +6.306 (before the observer's sample showed it promoted, at +6.377), and their
    first commits waited until a standby attached, +7.364. Routing read 0.987 s."""
    samples, replication = kill_and_promote()  # node2 seen promoted at 1.301
    out = a.anatomy(samples, replication, 1.0, "switchover", 1.02, 2.3, reached_at=1.25)
    assert out["promotion_seconds"] == pytest.approx(1.25 - 1.02)  # a session found it
    assert out["routing_seconds"] == 0.0
    assert out["first_commit_seconds"] == pytest.approx(2.3 - 1.25)
    assert out["detection_seconds"] + out["promotion_seconds"] + out["routing_seconds"] + \
        out["first_commit_seconds"] == pytest.approx(2.3 - 1.0)
    later = a.anatomy(samples, replication, 1.0, "kill-primary", 1.02, 1.35, reached_at=1.33)
    assert later["routing_seconds"] == pytest.approx(1.33 - 1.301)
    assert later["first_commit_seconds"] == pytest.approx(0.02)
    unknown = a.anatomy(samples, replication, 1.0, "kill-primary", 1.02, 1.35)
    assert unknown["first_commit_seconds"] is None  # no session known: routing as before
    assert unknown["routing_seconds"] == pytest.approx(1.35 - 1.301)


def test_ops_held_on_a_hung_old_primary_past_the_promotion_are_their_own_part():
    """hang-primary: node2 promoted at 1.301, the probe failed at 1.02 (its 1 s bound),
    the workers' ops in flight only at 3.0 (theirs): 1.70 s held, then routing to the
    session on node2 (3.2), then the first commit."""
    samples, replication = kill_and_promote()
    out = a.anatomy(samples, replication, 1.0, "hang-primary", 1.02, 3.25, reached_at=3.2,
                    clients_failed_at=3.0)
    assert out["held_seconds"] == pytest.approx(3.0 - 1.301)
    assert out["routing_seconds"] == pytest.approx(0.2)
    assert out["first_commit_seconds"] == pytest.approx(0.05)
    assert out["detection_seconds"] + out["promotion_seconds"] + out["held_seconds"] + \
        out["routing_seconds"] + out["first_commit_seconds"] == pytest.approx(3.25 - 1.0)
    crash = a.anatomy(samples, replication, 1.0, "kill-primary", 1.02, 1.35, reached_at=1.33,
                      clients_failed_at=1.02)  # the workers failed first: nothing held
    assert crash["held_seconds"] == 0.0


def held_read_only(samples, until):
    """node2's samples as a manager that holds a promoted node read-only until `until`
    makes them (pg_auto_failover's default_transaction_read_only while it promotes); every
    other sample says whether it is read-only as a server would."""
    return [s._replace(read_only=s.in_recovery or (s.node == "node2" and s.at < until))
            if s.reachable else s for s in samples]


def test_a_promoted_node_held_read_only_is_not_routing():
    samples, replication = kill_and_promote()
    out = a.anatomy(held_read_only(samples, 2.05), replication, 1.0, "kill-primary", 1.02,
                    2.15)
    by = {e["name"]: e for e in out["events"]}
    writable = by["new primary writable"]
    assert writable["at"] == pytest.approx(2.101) and writable["after"] == pytest.approx(2.001)
    assert writable["source"] == "observer: node2" and "no longer read-only" in \
        writable["detail"]
    names = [e["name"] for e in out["events"]]
    assert names.index("standby promoted") < names.index("new primary writable") < \
        names.index("writes acknowledged again")
    assert out["promotion_seconds"] == pytest.approx(1.301 - 1.02)
    assert out["read_only_seconds"] == pytest.approx(2.101 - 1.301)
    assert out["routing_seconds"] == pytest.approx(2.15 - 2.101)
    # a write acknowledged before the sample that showed it bounds it, as for a promotion
    early = a.anatomy(held_read_only(samples, 2.05), replication, 1.0, "kill-primary", 1.02,
                      2.06)
    assert early["read_only_seconds"] == pytest.approx(2.06 - 1.301)
    assert early["routing_seconds"] == 0.0
    names = [e["name"] for e in early["events"]]  # listed before the write that bounds it
    assert names.index("new primary writable") < names.index("writes acknowledged again")


def test_a_promoted_node_that_takes_writes_at_once_has_no_read_only_spell():
    samples, replication = kill_and_promote()
    for marked in (held_read_only(samples, 0.0), samples):  # asked, and not asked (older)
        out = a.anatomy(marked, replication, 1.0, "kill-primary", 1.02, 1.35)
        assert "new primary writable" not in [e["name"] for e in out["events"]]
        assert out["read_only_seconds"] is None
        assert out["routing_seconds"] == pytest.approx(1.35 - 1.301)


def test_replication_at_the_fault_from_both_sides():
    samples, replication = kill_and_promote()
    rows = a.anatomy(samples, replication, 1.0, "kill-primary", 1.02, 1.35)[
        "replication_at_fault"]
    primary_view, standby_view = rows
    # last primary sample before the fault: wal 1900; standby sent 1900, flushed 1850 ...
    assert primary_view["seen_by"] == "primary node1" and primary_view["sync_state"] == "sync"
    assert (primary_view["sent_bytes_behind"], primary_view["flushed_bytes_behind"],
            primary_view["replayed_bytes_behind"]) == (0, 50, 100)
    assert standby_view["standby"] == "node2" and standby_view["seen_by"] == "itself"
    assert standby_view["flushed_bytes_behind"] == 50  # received 1850 of 1900
    assert standby_view["replay_lag_seconds"] == pytest.approx(0.01)


def test_no_rejoin_and_no_redundancy_are_left_out():
    samples, replication = kill_and_promote(rejoin=False)
    replication = [r for r in replication if r.node == "node1"]
    names = [e["name"] for e in a.anatomy(samples, replication, 1.0, "kill-primary", 1.02,
                                          1.35)["events"]]
    assert "old primary rejoined" not in names and "redundancy restored" not in names


def test_a_demoted_primary_is_not_unreachable():
    samples = [sample("node1", 0.0, "primary"), sample("node2", 0.0, "standby"),
               sample("node1", 1.0, "standby", timeline=2),
               sample("node2", 1.0, "primary", timeline=2)]
    events = a.anatomy(samples, [], 0.5, "switchover", None, None)["events"]
    # a switchover: the old primary is demoted, and follows the new one's timeline at once
    assert [e["name"] for e in events] == ["fault injected", "old primary demoted (in recovery)",
                                           "standby promoted", "old primary rejoined"]


def test_two_primaries_of_one_cluster_at_once():
    samples = [sample("node1", t / 10, "primary") for t in range(20)]
    samples += [sample("node2", t / 10, "standby" if t < 8 else "primary") for t in range(20)]
    samples += [sample("other", t / 10, "primary", system="9999") for t in range(20)]
    both = a.two_primaries(a.by_node(samples))
    assert both == [{"nodes": ["node1", "node2"], "start": 0.8, "end": 1.9,
                     "seconds": pytest.approx(1.1)}]


def test_service_available_counts_from_the_fault_to_the_first_connection():
    samples, _ = kill_and_promote()
    assert a.service_available(samples, 1.0) == pytest.approx(0.202)
    steady = [sample(ENDPOINT, t / 10, "primary") for t in range(20)]
    assert a.service_available(steady, 1.0) == 0.0
    assert a.service_available(steady, 5.0) is None  # not sampled after the fault


def test_lanes_merge_equal_samples_and_the_lag_curve_follows_the_primary():
    samples, replication = kill_and_promote()
    lanes = ln.role_lanes(samples)
    assert [seg["state"] for seg in lanes["node1"]] == ["primary", "unreachable", "standby"]
    assert [seg["timeline"] for seg in lanes["node2"]] == [1, 2]
    lag = ln.lag_series(samples, replication)["standby"]
    assert lag[0] == [0.0, 100] and len(lag) == 10 + 9  # before the fault, and after 2.1


def test_sla_rpo_bytes_and_brownout():
    assert sla_percent(8.64) == 99.99
    assert sla_percent(None) is None
    timeline = [{"t": t, "ok": 100} for t in range(100, 110)]
    timeline += [{"t": 110, "ok": 40}, {"t": 111, "ok": 0}, {"t": 113, "ok": 90},
                 {"t": 114, "ok": 30}]
    found = brownout(timeline, 100.0, 110.0, 116.0, 0.5)
    assert found["warmup_ok_per_second"] == 100.0
    # 111 (0 ok), 112 (no op at all) below 50; 113 fine; 114 below; 115 nothing
    assert found["periods"] == [{"start": 111.0, "end": 113.0, "seconds": 2.0},
                                {"start": 114.0, "end": 116.0, "seconds": 2.0}]
    assert found["seconds"] == 4.0
    assert brownout(timeline, 100.0, 100.5, 116.0, 0.5)["seconds"] is None  # no warmup
    # a 1 s warmup from +.84 to +1.86 holds no whole second: the one it starts in held the
    # workers' start too (188 ops/s read of thousands), no baseline to judge by
    start = [{"t": 100, "ok": 188}, {"t": 101, "ok": 2900}, {"t": 102, "ok": 3000}]
    assert brownout(start, 100.84, 101.86, 110.0, 0.5)["warmup_ok_per_second"] is None
    assert brownout(start, 100.84, 102.9, 110.0, 0.5)["warmup_ok_per_second"] == 2900


def test_read_outages_of_the_endpoint_and_each_node():
    samples, _ = kill_and_promote()
    outages = a.read_outages(samples, 1.0)
    assert outages[ENDPOINT] == pytest.approx(1.202 - 0.902)  # down 1.0-1.2
    assert outages["node1"] == pytest.approx(2.0 - 0.9)  # killed, back as a standby
    assert outages["node2"] == 0.0
    gone, _ = kill_and_promote(rejoin=False)
    assert a.read_outages(gone, 1.0)["node1"] is None  # never answered again


def test_a_primary_restarted_in_place_is_back_not_promoted():
    """pg_auto_failover with its standby stopped, then the primary killed: nothing could
    be promoted, and the old primary came back as the primary 15 s later. The anatomy
    went from "old primary unreachable" straight to "writes acknowledged again"."""
    samples = []
    for i in range(40):
        t = round(i * 0.5, 1)
        samples.append(sample("node1", t, "down" if 2.0 <= t < 15.5 else "primary"))
        samples.append(sample("node2", t + 0.001, "down"))
    out = a.anatomy(samples, [], 2.0, "kill-primary", 2.02, 15.6)
    names = [e["name"] for e in out["events"]]
    assert names == ["fault injected", "old primary unreachable", "first client error",
                     "old primary back", "writes acknowledged again"], names
    back = next(e for e in out["events"] if e["name"] == "old primary back")
    assert back["at"] == 15.5 and back["after"] == 15.0
    assert back["detail"] == "node1 primary again, timeline 1"
    assert out["new_primary"] is None and out["promotion_seconds"] is None


def test_an_event_the_write_bounds_is_shown_by_the_write_with_the_samples_time_beside():
    """Seen on pg_auto_failover: "new primary writable" at +16.772 listed above "writes
    acknowledged again" at +16.756, which reads as an error. The event keeps the sample's
    time (`at`) and says the write's (`happened_by`); the terminal and report.html show
    "by" the write, the sample's time in the detail. An event its sample placed before the
    write has no `happened_by`."""
    from ptor_harness.outputs.event_time import after_fault, event_when
    from ptor_harness.outputs.html import since_fault

    samples, replication = kill_and_promote()
    out = a.anatomy(samples, replication, 1.0, "kill-primary", 1.02, 1.25)
    by = {e["name"]: e for e in out["events"]}
    promoted = by["standby promoted"]
    assert promoted["at"] == pytest.approx(1.301) and promoted["happened_by"] == 1.25
    assert by["writes acknowledged again"]["happened_by"] is None
    assert by["fault injected"]["happened_by"] is None
    when, detail = event_when(promoted, lambda t: f"+{t:.3f}")
    assert when == "by +1.250"
    assert detail.endswith("seen in the sample at +1.301") and detail.startswith(
        promoted["detail"])
    assert after_fault(promoted) == pytest.approx(0.25)
    assert since_fault(promoted) == ("by +0.250 s", detail.replace("+1.301", "+0.301 s"))
    later = a.anatomy(samples, replication, 1.0, "kill-primary", 1.02, 1.35)
    promoted = next(e for e in later["events"] if e["name"] == "standby promoted")
    assert promoted["happened_by"] is None
    assert event_when(promoted, lambda t: f"+{t:.3f}") == ("+1.301", promoted["detail"])
    assert after_fault(promoted) == promoted["seconds_after_fault"]
