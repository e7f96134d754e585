"""Checks of a drill's failover anatomy against what the test observes itself: the promoted
node's timeline history file (written by the promotion), the new primary's walsender start
(pg_stat_replication.backend_start: when the old primary began to stream again), the kill
as the fault recorded it, and the ledger's own ops."""

import glob
import os
import sqlite3
import threading
import time

TOLERANCE = 0.2  # seconds: the bound, twice the observer's default interval
CANONICAL = ["fault injected", "first client error", "old primary unreachable",
             "standby promoted", "writes acknowledged again", "old primary rejoined",
             "redundancy restored"]
# The order the events must keep. A client's first error and the observer's first
# unanswered sample are both consequences of the fault, each seen within its own
# resolution (a client through a proxy, the observer directly): no order between them.
STAGES = [["fault injected"], ["first client error", "old primary unreachable"],
          ["standby promoted"], ["writes acknowledged again"], ["old primary rejoined"],
          ["redundancy restored"]]


def events(report: dict) -> dict:
    return {e["name"]: e for e in report["anatomy"]["events"]}


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


def check_in_order(report: dict, required: list[str]) -> dict:
    """Every required event is there; the events keep the order of STAGES, each observer
    event allowed its resolution (it happened after its `after`)."""
    found = events(report)
    missing = [name for name in required if name not in found]
    assert not missing, (missing, report["anatomy"]["events"])
    stages = [[found[name] for name in stage if name in found] for stage in STAGES]
    stages = [stage for stage in stages if stage]
    for earlier_stage, later_stage in zip(stages, stages[1:]):
        for earlier in earlier_stage:
            happened_by = earlier["after"] if earlier["after"] is not None else earlier["at"]
            for later in later_stage:
                assert happened_by <= later["at"] + 0.01, (earlier, later)
    return found


def check_against_own_observations(report: dict, new_primary, run_dir=None) -> dict:
    """Each event within TOLERANCE of the test's own observation of it."""
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
    """The test's own view of the node that will be the new primary: every 20 ms, whether
    a standby streams from it (caught up: a walsender's short "catchup" of the old
    timeline is not a rejoin, the node may still be restarted or cloned anew), and
    whether one streams synchronously."""

    def __init__(self, node):
        super().__init__()
        self.node, self.points = node, []

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = self.node.connect(timeout=2)
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FILTER (WHERE state = 'streaming'), "
                                "count(*) FILTER (WHERE state = 'streaming' AND sync_state "
                                "IN ('sync', 'quorum')) FROM pg_stat_replication")
                    streaming, sync = cur.fetchone()
                self.points.append((time.time(), streaming > 0, sync > 0))
            except Exception:  # the node restarting under its manager: a new session
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.02)
        if conn is not None:
            conn.close()

    def first(self, since: float, synchronous: bool = False) -> float:
        return next(t for t, streaming, sync in self.points
                    if t >= since and (sync if synchronous else streaming))


def check_rejoin(report: dict, watcher: StandbyWatcher) -> None:
    """The old primary streaming again, and a synchronous standby again, each within
    TOLERANCE of when the test saw it on the new primary."""
    found = events(report)
    since = found["standby promoted"]["after"] or found["standby promoted"]["at"]
    rejoined = watcher.first(since)
    assert abs(found["old primary rejoined"]["at"] - rejoined) <= TOLERANCE, (
        found["old primary rejoined"], rejoined, report["anatomy"]["events"])
    restored = watcher.first(since, synchronous=True)
    assert abs(found["redundancy restored"]["at"] - restored) <= TOLERANCE, restored

