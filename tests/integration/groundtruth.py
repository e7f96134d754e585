"""Ground truth of a failover's loss that ptor's own code does not compute.

The old primary keeps a logical replication slot (test_decoding) from before the load, so
every transaction it ever committed can be decoded from its own WAL afterwards, with the
LSN where its commit record ends. The new primary's timeline history file says where the
old timeline ended (the switch point). A transaction the old primary committed past that
point is not in the new primary's history: lost, with every row it changed. Each change
names one op: an INSERT or UPDATE by the `last_seq` it wrote, a DELETE by the one delete of
its key that could have committed (keys are never reused). Each ptor op is one transaction
unless the drill ran --ops-per-transaction: the WAL then says which ops one commit held.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from typing import NamedTuple, Optional

import psycopg2

from ptor_harness.ledger import LedgerSpec
from ptor_harness.ops import DELETE, KIND_NAMES, OK

from .conftest import free_port_base, lab_command

SLOT = "ptor_truth"
CHANGE = re.compile(r"^table [^.]+\.worker_(\d+): (INSERT|UPDATE|DELETE): id\[bigint\]:(\d+)"
                    r"(?: last_seq\[bigint\]:(\d+))?")
KINDS = {"INSERT": "I", "UPDATE": "U", "DELETE": "D"}


class Commit(NamedTuple):
    """One row a committed transaction changed in a worker table, as the old primary's WAL
    has it (`xid` and `end_lsn`: its transaction's)."""

    worker: int
    kind: str
    key: int
    last_seq: Optional[int]  # None for a DELETE
    end_lsn: int
    xid: str = ""


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def keep_decodable_history(lab) -> None:
    """Make the lab's primary (node1) keep a decodable record of every commit from now on:
    wal_level=logical (a fast restart, unless the lab runs with it: repmgr's) and a
    logical slot."""
    primary = lab.nodes["node1"]
    if primary.query("SHOW wal_level")[0][0] == "logical":
        primary.query("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')",
                      (SLOT,))
        return
    primary.query("ALTER SYSTEM SET wal_level = logical")
    primary.kill(signal.SIGINT)  # fast shutdown: everything flushed and sent
    primary.start()
    primary.wait_ready()
    primary.query("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (SLOT,))
    lab.wait_replication(primary, "async" if lab.state["mode"] == "async" else "sync")


def switch_point(new_primary, timeline: int) -> int:
    """Where timeline `timeline - 1` ended, from the new primary's history file."""
    path = os.path.join(new_primary.datadir, "pg_wal", f"{timeline:08X}.history")
    with open(path) as history:
        for line in history:
            fields = line.split()
            if fields and fields[0] == str(timeline - 1):
                return lsn(fields[1])
    raise AssertionError(f"{path} has no entry for timeline {timeline - 1}")


def commits_of(old_primary) -> list[Commit]:
    """Every worker-table transaction the old primary committed since the slot was made,
    each a single row (ptor's default of one op per transaction)."""
    changes = changes_of(old_primary)
    assert len({c.xid for c in changes}) == len(changes), \
        "a ptor transaction changed more than one row"
    return changes


def changes_of(old_primary) -> list[Commit]:
    """Decode every row change of a worker table the old primary committed since the slot
    was made; a crashed one is first started on its own, on a fresh port (a split-brain
    one still runs)."""
    if not old_primary.running():
        old_primary.port = free_port_base(1)
        old_primary.write_auto_conf({"wal_level": "logical"})  # the slot needs it
        old_primary.start()
    rows = old_primary.query(
        "SELECT lsn::text, xid::text, data FROM pg_logical_slot_peek_changes(%s, NULL, NULL, "
        "'include-xids', '1', 'skip-empty-xacts', '1')", (SLOT,))
    pending: dict = {}
    commits = []
    for at, xid, data in rows:
        match = CHANGE.match(data)
        if match:
            worker, kind, key, last_seq = match.groups()
            pending.setdefault(xid, []).append((int(worker), KINDS[kind], int(key),
                                                None if last_seq is None else int(last_seq)))
        elif data.startswith("COMMIT") and xid in pending:
            commits.extend(Commit(*change, lsn(at), xid) for change in pending.pop(xid))
    return commits


def lost_ops(commits: list[Commit], switch: int, ops_of_worker) -> list:
    """The ledger ops whose commits lie past the switch point. `ops_of_worker(w)` streams
    a worker's ledger ops (only to name each commit's op: its key and kind)."""
    return [op for _, op in lost_changes(commits, switch, ops_of_worker)]


def lost_changes(commits: list[Commit], switch: int, ops_of_worker) -> list[tuple]:
    """(change, the ledger op that made it) for every change committed past the switch."""
    lost = [c for c in commits if c.end_lsn > switch]
    named = []
    for worker in sorted({c.worker for c in lost}):
        ops = list(ops_of_worker(worker))
        by_seq = {op.seq: op for op in ops}
        deletes: dict = {}
        for op in ops:  # a delete that may have committed: acknowledged, or in doubt
            if op.kind == DELETE and (op.in_doubt or (op.outcome == "ok" and op.rows)):
                deletes.setdefault(op.key, []).append(op)
        for commit in (c for c in lost if c.worker == worker):
            if commit.kind == DELETE:
                (op,) = deletes[commit.key]
            else:
                op = by_seq[commit.last_seq]
                assert (op.kind, op.key) == (commit.kind, commit.key), (op, commit)
            named.append((commit, op))
    return named


def failover_command(lab, steps: str) -> str:
    parts = []
    for step in steps.split("; "):
        words = step.split()
        parts.append(" ".join(words) if words[0] == "sleep" else lab_command(lab, *words))
    return " && ".join(parts)


def drill(lab, run_ptor, ledger: str, async_repo: bool, *args):
    """Run the drill through a failover to node2; return it and its ledger's LedgerSpec."""
    repo = ["--repo-pgdsn", lab.repo_dsn()] if ledger == "postgresql" else []
    run = run_ptor("--init", "--warmup-duration", "1", "--failover-after", "1",
                   "--observe-after", "3", "--duration", "40", "--full-data-validation",
                   *repo, *(["--async-repo-mode"] if async_repo else []), *args)
    r = run.report
    assert r is not None and r["validation"]["completed"] is True, run
    new = lab.nodes["node2"]
    after = r["servers"]["primary_after"]
    assert after["port"] == new.port and after["timeline"] == 2, after
    return run, LedgerSpec(r["run_id"], repo[1] if repo else None, "ptor",
                           os.path.join(r["run_dir"], "ledger.sqlite"), durable=True)


def truth_and_report(lab, run_ptor, ledger: str, async_repo: bool, *args):
    """Run the drill, then return (its report, the acknowledged ops the old primary's WAL
    shows lost, the in-doubt ones)."""
    run, spec = drill(lab, run_ptor, ledger, async_repo, *args)
    reader = spec.open()
    try:
        truth = lost_ops(commits_of(lab.nodes["node1"]), switch_point(lab.nodes["node2"], 2),
                         reader.ops_by_seq)
    finally:
        reader.close()
    return run, [op for op in truth if op.outcome == OK], [op for op in truth if op.in_doubt]


def placeable(rpo: dict, acknowledged: list) -> list:
    """The acknowledged ops the WAL shows lost, less those ptor listed as unverifiable: no
    evidence it has places them (a key inserted and deleted at the cut that no other
    worker's op on the server orders), so it assumes them kept and counts them apart,
    where they keep a drill from passing. Each must be listed (few by nature, so all
    fit the examples), and the loss ptor counts must be exactly the rest."""
    listed = {(e["worker"], e["seq"]) for e in rpo["unverifiable_examples"]}
    assert rpo["unverifiable_ops"] == len(listed), rpo["unverifiable_examples"]
    return [op for op in acknowledged if (op.worker, op.seq) not in listed]


def check_against_truth(name: str, run, acknowledged: list, in_doubt: list) -> None:
    r = run.report
    rpo = r["rpo"]
    placed = placeable(rpo, acknowledged)
    by_kind = {name: sum(1 for op in placed if op.kind == kind)
               for kind, name in KIND_NAMES.items()}
    print(f"\n[{name}] WAL past the switch point: {len(acknowledged) + len(in_doubt)} "
          f"commits of ptor ops, {len(acknowledged)} acknowledged ({by_kind}), "
          f"{len(in_doubt)} in doubt; ptor: lost {rpo['lost_acknowledged_ops']} by "
          f"{rpo['lost_by_evidence']}, unverifiable {rpo['unverifiable_ops']}, ops ok "
          f"{r['ops']['ok']}, in doubt {r['ops']['indeterminate']}")
    assert rpo["lost_acknowledged_ops"] == len(placed)
    assert rpo["lost_by_kind"] == by_kind
    assert r["indeterminate"]["not_applied"] >= len(in_doubt)
    assert r["indeterminate"]["unrecorded_applied"] == 0
    assert r["anomalies"]["holes"] == 0 and r["anomalies"]["phantom_rows"] == 0
    assert (run.code, r["verdict"]) == ((1, "fail") if acknowledged else (0, "pass")), run


class WalSampler(threading.Thread):
    """The test's own view of a primary's WAL position, every 10 ms, until stopped or the
    node goes away."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node, self.points, self.stop = node, [], threading.Event()

    def run(self):
        conn = self.node.connect()
        try:
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    cur.execute("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8")
                    self.points.append((time.time(), cur.fetchone()[0]))
                    time.sleep(0.01)
        except psycopg2.OperationalError:  # the node went away (killed): its points stand
            pass
        finally:
            conn.close()

    def at(self, t):
        before = max((p for p in self.points if p[0] <= t), default=None)
        after = min((p for p in self.points if p[0] >= t), default=None)
        if before is None or after is None or after[0] == before[0]:
            return (before or after)[1]
        share = (t - before[0]) / (after[0] - before[0])
        return before[1] + share * (after[1] - before[1])
