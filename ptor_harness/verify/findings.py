"""What reconciliation finds (reconcile.py fills it in): lost acknowledged ops by kind and
by evidence, ops in doubt resolved, anomalies with examples; and the RPO in time.

A hole is a lost `ok` op of a worker below a kept later op of the same worker on the same
server: WAL is linear, so that means corruption or split brain. Losing a suffix before a
failover is not a hole. An acknowledged update or delete whose rowcount was 0 matched no
row, so it has no effect to find: it is counted (`noop_writes`, a sign its row was already
lost) but never as a loss or a hole. A split-brain write is an `ok` op acknowledged by a
server after a newer primary of the same cluster (a higher timeline) had already served a
client. A partial transaction is one whose ops reconciliation found partly applied
(transactions.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

from ..ops import KIND_NAMES, NOT_REPLICATED, Op
from .commit_order import CommitBounds, Unplaced, place

EXAMPLES = 10
# The anomaly classes, each with the Findings field that holds its examples.
ANOMALY_CLASSES = ("phantom_rows", "holes", "failed_but_applied", "split_brain_writes",
                   "resurrected_rows", "partial_transactions")
EXAMPLES_OF = {"phantom_rows": "phantom_examples", "holes": "hole_examples",
               "failed_but_applied": "failed_applied_examples",
               "split_brain_writes": "split_brain_examples",
               "resurrected_rows": "resurrected_examples",
               "partial_transactions": "partial_transaction_examples"}
# Every counted kind of finding with examples: the anomalies, and payloads no op wrote.
_EXAMPLES_OF = {**EXAMPLES_OF, "checksum_mismatches": "checksum_examples"}
# How a lost op was found (see the module's docstring).
FINAL_STATE, VERSION_CHAIN, WORKER_ORDER = "final_state", "version_chain", "worker_order"
COMMIT_ORDER = "commit_order"
EVIDENCE = (FINAL_STATE, VERSION_CHAIN, WORKER_ORDER, COMMIT_ORDER)
# Why a lost op was lost, as far as the ledger tells: its commit's wait for the synchronous
# standby was cancelled (PostgreSQL's warning came with the acknowledgement); it was
# acknowledged by a server after a newer primary had served (split brain); or neither
# (the report then looks at the replication mode at the fault).
SYNC_WAIT_CANCELLED, SPLIT_BRAIN, OTHER_CAUSE = "sync_wait_cancelled", "split_brain", "other"
CAUSES = (SYNC_WAIT_CANCELLED, SPLIT_BRAIN, OTHER_CAUSE)


def cause_of(error: Optional[str], acknowledged_by_stale_primary: bool) -> str:
    """Why an acknowledged op was lost, from what its acknowledgement said (see CAUSES)."""
    if error == NOT_REPLICATED:
        return SYNC_WAIT_CANCELLED
    return SPLIT_BRAIN if acknowledged_by_stale_primary else OTHER_CAUSE


@dataclass
class Findings:
    """Everything reconciliation found, summed over workers."""

    rows_checked: int = 0
    keys_checked: int = 0
    mismatched_rows: int = 0
    lost: dict = field(default_factory=lambda: {k: 0 for k in KIND_NAMES.values()})
    lost_by_evidence: dict = field(default_factory=lambda: {e: 0 for e in EVIDENCE})
    # why each was lost, where the ledger can tell: see Reconciler._lose
    lost_by_cause: dict = field(default_factory=lambda: {c: 0 for c in CAUSES})
    lost_examples: list = field(default_factory=list)
    first_lost_ack: Optional[float] = None  # acknowledgement times of the lost ops
    last_lost_ack: Optional[float] = None
    unverifiable: int = 0  # acknowledged ops no evidence shows kept or lost: assumed kept
    unverifiable_examples: list = field(default_factory=list)
    applied: int = 0
    not_applied: int = 0
    unrecorded_applied: int = 0  # rows of ops a killed worker never reported (async mode)
    superseded: int = 0
    phantom_rows: int = 0
    phantom_examples: list = field(default_factory=list)
    failed_but_applied: int = 0
    checksum_mismatches: int = 0
    holes: int = 0
    hole_examples: list = field(default_factory=list)
    noop_writes: int = 0  # acknowledged updates/deletes that matched no row (rowcount 0)
    # acknowledged transactions with a lost op (--ops-per-transaction; else lost ops), and
    # transactions found partly applied (transactions.py): an anomaly
    lost_transactions: int = 0
    partial_transactions: int = 0
    partial_transaction_examples: list = field(default_factory=list)
    resurrected_rows: int = 0  # acknowledged deletes undone (also counted as lost deletes)
    resurrected_examples: list = field(default_factory=list)
    split_brain_writes: int = 0  # acknowledged by a server no longer the newest primary
    split_brain_examples: list = field(default_factory=list)
    failed_applied_examples: list = field(default_factory=list)
    checksum_examples: list = field(default_factory=list)
    # (worker, server) -> highest kept seq; lost (worker, seq, key, server) for hole finding
    _surviving: dict = field(default_factory=dict)
    _lost: list = field(default_factory=list)
    _unverifiable: list = field(default_factory=list)  # (worker, seq), few
    # what worker order left open (commit_order.Unplaced), few, and the bounds that may
    # place it once every worker is in
    _unplaced: list = field(default_factory=list)
    _bounds: CommitBounds = field(default_factory=CommitBounds)
    _not_applied: list = field(default_factory=list)  # (worker, seq) of in-doubt ops, few

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def lost_ops(self) -> tuple:
        """(worker, seq, key, server) of every lost op, in the order found."""
        return tuple(self._lost)

    @property
    def not_applied_ops(self) -> tuple:
        """(worker, seq) of every in-doubt op found not applied (the CDC check's phantoms
        among changes received of ops in doubt)."""
        return tuple(self._not_applied)

    @property
    def unverifiable_ops(self) -> tuple:
        """(worker, seq) of every op assumed kept for want of evidence."""
        return tuple(self._unverifiable)

    def _example(self, bucket: list, item: dict) -> None:
        if len(bucket) < EXAMPLES:
            bucket.append(item)

    # --- recording (reconcile.py) ------------------------------------------------------

    def anomaly(self, name: str, example: dict) -> None:
        """One more of anomaly `name` (or of `checksum_mismatches`), with its example."""
        setattr(self, name, getattr(self, name) + 1)
        self._example(getattr(self, _EXAMPLES_OF[name]), example)

    def lose(self, worker: int, op: Op, evidence: str, cause: str, server: object) -> None:
        """An op found lost: counted by kind, evidence and cause, an example, the span of
        lost acknowledgements widened, and kept (with the server it ran on) for holes."""
        self.lost[KIND_NAMES[op.kind]] += 1
        self.lost_by_evidence[evidence] += 1
        self.lost_by_cause[cause] += 1
        self._example(self.lost_examples, {"worker": worker, "key": op.key, "seq": op.seq,
                                           "kind": KIND_NAMES[op.kind],
                                           "committed_at": op.t_end, "found_by": evidence,
                                           "cause": cause})
        if op.t_end is not None:
            if self.first_lost_ack is None or op.t_end < self.first_lost_ack:
                self.first_lost_ack = op.t_end
            if self.last_lost_ack is None or op.t_end > self.last_lost_ack:
                self.last_lost_ack = op.t_end
        self._lost.append((worker, op.seq, op.key, server))

    def settle_doubt(self, worker: int, op: Op, applied: bool) -> None:
        """An op in doubt, found applied or not."""
        if applied:
            self.applied += 1
        else:
            self.not_applied += 1
            self._not_applied.append((worker, op.seq))

    def surviving(self, worker: int, server: object, top: int) -> None:
        """The highest seq of `worker` on `server` found kept (for holes)."""
        self._surviving[(worker, server)] = top

    def leave_open(self, unit: Unplaced) -> None:
        """A unit worker order left open: placed by commit order once every worker is in,
        or unverifiable (`place_by_commit_order`)."""
        self._unplaced.append(unit)

    def note_bounds(self, bounds: CommitBounds) -> None:
        """One worker's latest kept start and earliest lost acknowledgement per server."""
        self._bounds.merge(bounds)

    def place_by_commit_order(self) -> list[tuple[Unplaced, bool]]:
        """Every worker in: place what commit order places (returned, for the caller to
        count); what it leaves open is unverifiable."""
        decided, still_open = place(self._unplaced, self._bounds)
        self._unplaced = []
        for unit in still_open:
            for op in unit.ops:
                self.add_unverifiable(unit.worker, op)
        return decided

    def add_unverifiable(self, worker: int, op: Op) -> None:
        """An acknowledged op no evidence shows kept or lost: assumed kept, and listed."""
        self.unverifiable += 1
        self._unverifiable.append((worker, op.seq))
        self._example(self.unverifiable_examples, {
            "worker": worker, "key": op.key, "seq": op.seq, "kind": KIND_NAMES[op.kind],
            "acknowledged_at": op.t_end})

    def absorb(self, other: Findings) -> None:
        """Take in the findings of later workers, reconciled elsewhere (before either's
        `find_holes`): counts add up, examples keep worker order up to EXAMPLES each, the
        lost acknowledgements' span widens, and the per-worker records for holes join."""
        for name in (f.name for f in fields(self)):
            mine, theirs = getattr(self, name), getattr(other, name)
            if name in ("first_lost_ack", "last_lost_ack"):
                known = [t for t in (mine, theirs) if t is not None]
                pick = min if name == "first_lost_ack" else max
                setattr(self, name, pick(known) if known else None)
            elif isinstance(mine, int):
                setattr(self, name, mine + theirs)
            elif name == "_surviving":  # keyed by (worker, server): the workers differ
                mine.update(theirs)
            elif name == "_bounds":
                mine.merge(theirs)
            elif isinstance(mine, dict):
                for key, n in theirs.items():
                    mine[key] = mine.get(key, 0) + n
            elif name.endswith("examples"):
                mine.extend(theirs[:max(0, EXAMPLES - len(mine))])
            else:
                mine.extend(theirs)

    def find_holes(self) -> None:
        """Lost ops below a kept op of the same worker and server (every worker in)."""
        for worker, seq, key, server in self._lost:
            top = self._surviving.get((worker, server), 0)
            if top > seq:
                self.holes += 1
                self._example(self.hole_examples, {"worker": worker, "key": key, "seq": seq,
                                                   "surviving_seq": top})

    def as_dict(self) -> dict:
        return {name: (dict(value) if isinstance(value, dict) else value)
                for name, value in vars(self).items() if not name.startswith("_")}


def rpo_window(first_lost_ack: Optional[float], last_lost_ack: Optional[float],
               fault_at: Optional[float]) -> dict:
    """The RPO in time: how long acknowledged writes were being lost (the first to the last
    lost acknowledgement; 0 when nothing, or a single instant, was lost) and how far each
    end lies before the fault (negative: acknowledged after it). `fault_at` is the first
    fault injection, or the first failed op when ptor injected none."""
    if first_lost_ack is None or last_lost_ack is None:
        return {"window_seconds": 0.0, "first_lost_before_fault_seconds": None,
                "last_lost_before_fault_seconds": None}
    return {
        "window_seconds": last_lost_ack - first_lost_ack,
        "first_lost_before_fault_seconds": None if fault_at is None
        else fault_at - first_lost_ack,
        "last_lost_before_fault_seconds": None if fault_at is None
        else fault_at - last_lost_ack,
    }
