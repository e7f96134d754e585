"""Commit order across workers: what worker order leaves open at the cut, placed by the
other workers on the same server (an op acknowledged before a kept op started is kept; one
started after a lost op was acknowledged is lost)."""

import pickle

from ptor_harness.ops import DELETE, INSERT
from ptor_harness.verify.reconcile import Reconciler

from .synthetic import op


def at_the_cut(worker=0):
    """Worker 0's ledger: key 1 kept (row), key 2 inserted at 2.0 and deleted at 3.0 (no
    row either way), key 3's insert at 4.0 lost. Worker order leaves key 2 open."""
    return [op(1, INSERT, 1, 1.0, worker=worker), op(2, INSERT, 2, 2.0, worker=worker),
            op(3, DELETE, 2, 3.0, worker=worker, prev=2),
            op(4, INSERT, 3, 4.0, worker=worker)], [(1, 1)]


def reconcile(ledgers, servers=None, reconciler=None):
    """Each worker's (ops, rows); `servers`: (worker, session) -> server (default A)."""
    servers = servers or {}
    r = reconciler or Reconciler(lambda w, s: servers.get((w, s), "A"))
    for worker, (ops, rows) in sorted(ledgers.items()):
        r.add_worker(worker, sorted(ops, key=lambda o: (o.key, o.seq)), sorted(rows))
    return r


def test_a_kept_op_started_after_the_open_key_places_it_kept():
    """Worker 1's op started at 3.499 and the new primary holds it: key 2's delete (acked
    at 3.0) committed before it, so it is kept, and the insert under it too."""
    other = [op(1, INSERT, 1, 3.5, worker=1)], [(1, 1)]
    f = reconcile({0: at_the_cut(), 1: other}).finish()
    assert f.unverifiable == 0 and f.lost_total == 1 and f.holes == 0
    assert f.lost_by_evidence["commit_order"] == 0


def test_a_lost_op_acknowledged_before_the_open_key_started_places_it_lost():
    """Worker 1's insert acknowledged at 1.5 is lost: key 2's insert and delete, sent after
    it, committed after it, past the cut: both lost, by commit order, and not holes."""
    other = [op(1, INSERT, 1, 1.5, worker=1)], []
    f = reconcile({0: at_the_cut(), 1: other}).finish()
    assert f.unverifiable == 0
    assert f.lost == {"insert": 3, "update": 0, "delete": 1}
    assert f.lost_by_evidence == {"final_state": 2, "version_chain": 0, "worker_order": 0,
                                  "commit_order": 2}
    assert {(e["worker"], e["seq"]) for e in f.lost_examples
            if e["found_by"] == "commit_order"} == {(0, 2), (0, 3)}
    assert f.holes == 0 and f.mismatched_rows == 3  # keys 3 and 2 of worker 0, 1 of 1


def test_overlapping_or_other_servers_ops_place_nothing():
    """Worker 1's kept op began at 1.499, before key 2's ops were acknowledged; its lost
    op was acknowledged at 4.5, after they began; and worker 2's evidence is on server B:
    nothing shows the order, so key 2 stays unverifiable (assumed kept, never lost)."""
    other = [op(1, INSERT, 1, 1.5, worker=1), op(2, INSERT, 2, 4.5, worker=1)], [(1, 1)]
    elsewhere = [op(1, INSERT, 1, 9.0, worker=2)], [(1, 1)]
    f = reconcile({0: at_the_cut(), 1: other, 2: elsewhere},
                  servers={(2, 1): "B"}).finish()
    assert f.unverifiable == 2 and {(e["worker"], e["seq"]) for e in f.unverifiable_examples
                                    } == {(0, 2), (0, 3)}
    assert f.lost_total == 2 and f.lost_by_evidence["commit_order"] == 0


def test_an_op_placed_by_commit_order_places_others():
    """Worker 0's open key (acked at 3.2 and 3.5) is after worker 2's kept op (started at
    2.499), so nothing places it at first. Worker 1's open key is placed kept by it (its
    insert acked at 2.0); its delete, sent at 3.799, is then kept evidence that places
    worker 0's key kept too."""
    ops0 = [op(1, INSERT, 1, 1.0), op(2, INSERT, 2, 3.2), op(3, DELETE, 2, 3.5, prev=2),
            op(4, INSERT, 3, 4.9)]
    ops1 = [op(1, INSERT, 1, 1.0, worker=1), op(2, INSERT, 2, 2.0, worker=1),
            op(3, DELETE, 2, 3.8, worker=1, prev=2), op(4, INSERT, 3, 5.0, worker=1)]
    later = [op(1, INSERT, 1, 2.5, worker=2)], [(1, 1)]
    f = reconcile({0: (ops0, [(1, 1)]), 1: (ops1, [(1, 1)]), 2: later}).finish()
    assert f.unverifiable == 0 and f.lost_total == 2 and f.holes == 0
    # without worker 1, worker 0's key stays open
    g = reconcile({0: (ops0, [(1, 1)]), 2: later}).finish()
    assert g.unverifiable == 2


def test_workers_reconciled_elsewhere_give_the_same_findings():
    """The share (drill/reconcile_share.py) reconciles the higher workers in a process of
    its own: its open units and bounds join the coordinator's before they are placed."""
    ledgers = {0: at_the_cut(), 1: ([op(1, INSERT, 1, 1.5, worker=1)], [])}
    whole = reconcile(ledgers).finish()
    here = reconcile({0: ledgers[0]})
    there = reconcile({1: ledgers[1]})
    here.findings.absorb(pickle.loads(pickle.dumps(there.findings)))  # as the share sends
    split = here.finish()
    assert split.as_dict() == whole.as_dict()
    assert split.lost_by_evidence["commit_order"] == 2


def test_transactions_of_several_ops_keep_the_open_key_unverifiable():
    """With --ops-per-transaction a worker's transactions are tallied as its ops are
    decided, per worker: an open unit cannot wait for the others, and stays unverifiable."""
    ops, rows = at_the_cut()
    other = [op(1, INSERT, 1, 1.5, worker=1), op(2, INSERT, 2, 1.5, worker=1)], []
    r = Reconciler(lambda w, s: "A", ops_per_transaction=2)
    f = reconcile({0: (ops, rows), 1: other}, reconciler=r).finish()
    assert f.unverifiable == 2 and f.lost_by_evidence["commit_order"] == 0
