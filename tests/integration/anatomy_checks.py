"""Checks of a drill's failover anatomy against what the test observes itself: the promoted
node's timeline history file (written by the promotion), the new primary's walsender start
(pg_stat_replication.backend_start: when the old primary began to stream again), the kill
as the fault recorded it, and the ledger's own ops."""

import glob
import os
import sqlite3
import threading
import time
from typing import Optional

import pytest

TOLERANCE = 0.2  # seconds: the bound, twice the observer's default interval
CANONICAL = ["fault injected", "first client error", "old primary unreachable",
             "standby promoted", "writes acknowledged again", "old primary rejoined",
             "redundancy restored"]
# The order the events must keep. A client's first error and the observer's first
# unanswered sample are both consequences of the fault, each seen within its own
# resolution (a client through a proxy, the observer directly): no order between them.
STAGES = [["fault injected"], ["first client error", "old primary unreachable"],
          ["standby promoted"], ["new primary writable"], ["writes acknowledged again"],
          ["old primary rejoined"], ["redundancy restored"]]
# A promoted primary whose commits wait for a quorum standby (repmgr's two-node `ANY 1`
# lab) takes writes only once the old primary has rejoined and streams: the rejoin comes
# before both. "redundancy restored" is a sample's time, without an `after` to bound it,
# so it keeps no order with the first acknowledged write.
QUORUM_STAGES = [["fault injected"], ["first client error", "old primary unreachable"],
                 ["standby promoted"], ["new primary writable"], ["old primary rejoined"],
                 ["writes acknowledged again", "redundancy restored"]]


def events(report: dict) -> dict:
    """The anatomy's events by name; of the faults injected, the one the outage followed
    (the drill's other faults are listed too, at their own times)."""
    return {e["name"]: e for e in report["anatomy"]["events"]
            if e["name"] != "fault injected" or e["seconds_after_fault"] == 0}


def promotion_time(node) -> float:
    """When the promoted node wrote its newest timeline history file."""
    newest = max(glob.glob(os.path.join(node.datadir, "pg_wal", "*.history")))
    return os.stat(newest).st_mtime


def ledger_firsts(run_dir: str, fault_at: float) -> tuple[float, float]:
    """From the embedded ledger: the first failed or in-doubt op after the fault, and the
    first acknowledged op after that."""
    db = sqlite3.connect(os.path.join(run_dir, "ledger.sqlite"))
    try:
        (first_error,) = db.execute(
            "SELECT min(t_end) FROM ledger_op WHERE outcome != 'ok' AND t_end >= ?",
            (fault_at,)).fetchone()
        (first_ok,) = db.execute(
            "SELECT min(t_end) FROM ledger_op WHERE outcome = 'ok' AND t_end > ?",
            (first_error,)).fetchone()
    finally:
        db.close()
    return first_error, first_ok


def check_in_order(report: dict, required: list[str], order: list = STAGES) -> dict:
    """Every required event is there; the events keep the `order` of stages, each observer
    event allowed its resolution (it happened after its `after`)."""
    found = events(report)
    missing = [name for name in required if name not in found]
    assert not missing, (missing, report["anatomy"]["events"])
    stages = [[found[name] for name in stage if name in found] for stage in order]
    stages = [stage for stage in stages if stage]
    for earlier_stage, later_stage in zip(stages, stages[1:]):
        for earlier in earlier_stage:
            happened_by = earlier["after"] if earlier["after"] is not None else earlier["at"]
            for later in later_stage:
                assert happened_by <= later["at"] + 0.01, (earlier, later)
    return found


def check_against_own_observations(report: dict, new_primary, run_dir=None) -> dict:
    """Each event within TOLERANCE of the test's own observation of it; the primary's view of
    its standbys at the fault names the node that was then promoted as the lab names it
    (whatever name its WAL receiver gave the primary: "standby", "pgautofailover_standby_2"),
    as is the server the workers reached after the failover, so one server has one name in
    the report."""
    seen = [x["standby"] for x in report["anatomy"]["replication_at_fault"]
            if x["seen_by"].startswith("primary")]
    assert new_primary.name in seen, report["anatomy"]["replication_at_fault"]
    # the server the workers wrote to after the failover, named by node too
    assert report["servers"]["primary_after"]["node"] == new_primary.name, report["servers"]
    found = events(report)
    fault = report["faults"][0]
    lost = next(e for name, e in found.items() if name.startswith("old primary u"))
    assert 0 <= lost["at"] - fault["started_at"] <= TOLERANCE + 0.1, (lost, fault)
    promoted = found["standby promoted"]
    assert abs(promoted["at"] - promotion_time(new_primary)) <= TOLERANCE, promoted
    if run_dir is not None:
        first_error, first_ok = ledger_firsts(run_dir, fault["started_at"])
        client = found["first client error"]["at"]
        assert client <= first_error + 0.001 and first_error - client <= TOLERANCE
        assert abs(found["writes acknowledged again"]["at"] - first_ok) <= TOLERANCE
    return found


class Watching(threading.Thread):
    """A test's own background watch: runs while its `with` block does."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join()


class StandbyWatcher(Watching):
    """The test's own view, every 20 ms: of the old primary, whether its WAL receiver
    streams and on which timeline (it follows the new primary once it streams the new
    timeline; a rejoining node first fetches its old timeline up to the switch point, and
    its manager may then restart or re-clone it); of the node that will be the new
    primary, whether a standby streams from it synchronously."""

    FOLLOWING = "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'"
    SYNC = ("SELECT count(*) > 0 FROM pg_stat_replication WHERE state = 'streaming' AND "
            "sync_state IN ('sync', 'quorum')")

    PRIMARY = "SELECT NOT pg_is_in_recovery()"
    # out of recovery and taking writes, in this round's own transaction (autocommit): a
    # manager may hold a promoted node read-only (default_transaction_read_only)
    WRITABLE = ("SELECT NOT pg_is_in_recovery(), "
                "current_setting('transaction_read_only') = 'off'")

    def __init__(self, new, old):
        super().__init__()
        self.new, self.old = new, old
        self.following: list[tuple[float, int]] = []  # (time, timeline the old one streams)
        self.sync: list[float] = []  # times a synchronous standby streamed from the new one
        # (time, old answers as a primary, new answers as a primary), each round
        self.primaries: list[tuple[float, bool, bool]] = []
        # (time, the new node out of recovery, and taking writes), each round it answered
        self.writable: list[tuple[float, bool, bool]] = []

    def ask(self, conns: dict, node, sql: str) -> list:
        """One statement on the node's session (a new one when the last was lost: the node
        restarting under its manager); [] while it does not answer."""
        try:
            if node.name not in conns:
                conns[node.name] = node.connect(timeout=2)
            with conns[node.name].cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        except Exception:
            conn = conns.pop(node.name, None)
            if conn is not None:
                conn.close()
            return []

    def run(self):
        conns: dict = {}
        while not self.stop.is_set():
            now = time.time()
            for (timeline,) in self.ask(conns, self.old, self.FOLLOWING):
                self.following.append((now, timeline))
            if self.ask(conns, self.new, self.SYNC) == [(True,)]:
                self.sync.append(now)
            self.primaries.append((now, self.ask(conns, self.old, self.PRIMARY) == [(True,)],
                                   self.ask(conns, self.new, self.PRIMARY) == [(True,)]))
            for primary, writable in self.ask(conns, self.new, self.WRITABLE):
                self.writable.append((now, primary, writable))
            time.sleep(0.02)
        for conn in conns.values():
            conn.close()

    def two_primaries(self) -> Optional[tuple[float, float]]:
        """(the first round in which both nodes answered as primaries, the first round
        after the last such one in which the old node no longer did), or None: the test's
        own sight of a split brain, and when the old primary's writes could last end."""
        both = [i for i, (_, old, new) in enumerate(self.primaries) if old and new]
        if not both:
            return None
        after = next((t for t, old, _ in self.primaries[both[-1] + 1:] if not old),
                     self.primaries[-1][0])
        return self.primaries[both[0]][0], after

    def first_following(self, since: float, timeline: int) -> float:
        return next(t for t, tli in self.following if t >= since and tli == timeline)

    def first_sync(self, since: float) -> float:
        return next(t for t in self.sync if t >= since)


def check_held_read_only(report: dict, watcher: StandbyWatcher) -> None:
    """Where the test saw the promoted node out of recovery but refusing writes for longer
    than the observer's resolution (pg_auto_failover holds it so while it promotes), the
    report has the event of it taking writes, within TOLERANCE of when the test saw it,
    and `read_only_seconds` is that spell; where the test saw no such spell, neither has
    the report."""
    promoted_at = next((t for t, primary, _ in watcher.writable if primary), None)
    writable_at = next((t for t, primary, writable in watcher.writable
                        if primary and writable), None)
    found, anatomy = events(report), report["anatomy"]
    spell = None if None in (promoted_at, writable_at) else writable_at - promoted_at
    if spell is not None and spell > 2 * TOLERANCE:
        event = found.get("new primary writable")
        assert event is not None, (spell, anatomy["events"])
        assert abs(event["at"] - writable_at) <= TOLERANCE, (event, writable_at)
        assert anatomy["read_only_seconds"] == pytest.approx(spell, abs=2 * TOLERANCE)
    elif spell is not None and spell < 0.01:
        assert "new primary writable" not in found, anatomy["events"]
        assert anatomy["read_only_seconds"] is None, anatomy


def check_rejoin(report: dict, watcher: StandbyWatcher) -> None:
    """The old primary streaming the new primary's timeline, and a synchronous standby
    again, each within TOLERANCE of when the test saw it."""
    found = events(report)
    since = found["standby promoted"]["after"] or found["standby promoted"]["at"]
    rejoined = watcher.first_following(since, report["servers"]["primary_after"]["timeline"])
    assert abs(found["old primary rejoined"]["at"] - rejoined) <= TOLERANCE, (
        found["old primary rejoined"], rejoined, report["anatomy"]["events"])
    restored = watcher.first_sync(since)
    assert abs(found["redundancy restored"]["at"] - restored) <= TOLERANCE, restored
