"""Reconciliation against a model of what really happened (Hypothesis).

One worker runs the real workload planner against a simulated primary A; every op ends
ok, failed, or in doubt (and then was or was not applied, which the client never learns).
A failover keeps only a prefix of A's history on the new primary B (asynchronous
replication), and the worker goes on on B. The ground truth of every op is known here, so
the properties are exact:

- no false alarm: every op reported lost was acknowledged and is really gone;
- nothing missed: wherever a key's row contradicts the last acknowledged op that changed
  it, a lost op of that key is reported (a loss the final rows cannot show, such as an
  insert lost together with the delete that followed it, is no contradiction);
- every in-doubt op is resolved, none superseded; no phantom, hole, applied failure or
  wrong payload is invented.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from ptor_harness.ops import DELETE, FAILED, INDETERMINATE, INSERT, OK, Op
from ptor_harness.reconcile import Reconciler
from ptor_harness.workload import Workload

OUTCOMES = st.sampled_from([(OK, True), (OK, True), (OK, True), (FAILED, False),
                            (INDETERMINATE, True), (INDETERMINATE, False)])


def apply(state: dict, kind: str, key: int, seq: int) -> int:
    """Apply an op to a server's rows (key -> last_seq); returns its row count."""
    if kind == INSERT:
        state[key] = seq
        return 1
    if key not in state:
        return 0
    if kind == DELETE:
        del state[key]
    else:
        state[key] = seq
    return 1


@settings(max_examples=500, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**31), outcomes=st.lists(OUTCOMES, min_size=1, max_size=120),
       data=st.data())
def test_reconciliation_is_exact_against_the_truth(seed, outcomes, data):
    failover_at = data.draw(st.integers(0, len(outcomes)), label="failover after op")
    kept = data.draw(st.integers(0, failover_at), label="B holds A's history up to op")
    workload = Workload(seed, 50, 30, 20)
    a: dict = {}
    ledger, truth = [], {}  # truth: seq -> (applied, on A)
    b = None
    for index, (outcome, applied) in enumerate(outcomes, 1):
        if index == failover_at + 1:  # the failover: B starts from A's kept prefix
            b = {}
            for op in ledger:
                if op.seq <= kept and truth[op.seq][0]:
                    apply(b, op.kind, op.key, op.seq)
        (seq, kind, key), = workload.plan(1)
        on_a = b is None
        rows = None
        if applied and outcome != FAILED:
            count = apply(a if on_a else b, kind, key, seq)
            rows = count if outcome == OK else None
        truth[seq] = (applied and outcome != FAILED, on_a)
        workload.settle(kind, key, outcome)
        ledger.append(Op(0, seq, kind, key, seq - 0.5, seq, outcome, None,
                         1 if on_a else 2, rows))
    final = b if b is not None else a
    if b is None:
        kept = len(outcomes)  # no failover: nothing is lost

    def gone(op: Op) -> bool:
        applied, on_a = truth[op.seq]
        return applied and on_a and op.seq > kept

    reconciler = Reconciler(lambda worker, session: "A" if session == 1 else "B")
    reconciler.add_worker(0, sorted(ledger, key=lambda op: (op.key, op.seq)),
                          sorted(final.items()))
    f = reconciler.finish()

    reported = {seq for _, seq, _, _ in f._lost}
    by_seq = {op.seq: op for op in ledger}
    assert all(by_seq[seq].outcome == OK and gone(by_seq[seq]) for seq in reported), \
        "a kept or unacknowledged op was reported lost"
    for key in {op.key for op in ledger}:
        effective = [op for op in ledger if op.key == key and op.outcome == OK
                     and (op.kind == INSERT or op.rows != 0)]
        if not effective:
            continue
        last = effective[-1]  # the last acknowledged op that changed the key
        row = final.get(key)
        visible = (row is not None and row >= last.seq) if last.kind != DELETE \
            else (row is None or row > last.seq)
        for doubt in (op for op in ledger if op.key == key and op.in_doubt
                      and op.seq > last.seq):  # applied, it explains the row too
            visible = visible or (row is None if doubt.kind == DELETE else row == doubt.seq)
        if not visible:  # the row contradicts an acknowledged op: a loss to report
            assert any(seq in reported for seq in (op.seq for op in effective)), \
                f"key {key}: row {row}, last acknowledged {last}, nothing reported lost"
    in_doubt = sum(1 for op in ledger if op.in_doubt)
    assert f.applied + f.not_applied == in_doubt and f.superseded == 0
    assert f.phantom_rows == f.holes == f.failed_but_applied == f.checksum_mismatches == 0
