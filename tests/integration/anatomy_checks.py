"""Checks of a drill's failover anatomy against what the test observes itself: the promoted
node's timeline history file (written by the promotion), the new primary's walsender start
(pg_stat_replication.backend_start: when the old primary began to stream again), the kill
as the fault recorded it, and the ledger's own ops."""

import glob
import os
import sqlite3

TOLERANCE = 0.2  # seconds: the bound, twice the observer's default interval
CANONICAL = ["fault injected", "first client error", "old primary unreachable",
             "standby promoted", "writes acknowledged again", "old primary rejoined",
             "redundancy restored"]


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
    """Every required event is there; the events keep the canonical order, each observer
    event allowed its resolution (it happened after its `after`)."""
    found = events(report)
    missing = [name for name in required if name not in found]
    assert not missing, (missing, report["anatomy"]["events"])
    ordered = [found[name] for name in CANONICAL if name in found]
    for earlier, later in zip(ordered, ordered[1:]):
        happened_by = earlier["after"] if earlier["after"] is not None else earlier["at"]
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


def walsender_start(new_primary) -> float:
    (started,) = new_primary.query(
        "SELECT extract(epoch FROM backend_start)::float8 FROM pg_stat_replication "
        "ORDER BY backend_start DESC LIMIT 1")[0]
    return started
