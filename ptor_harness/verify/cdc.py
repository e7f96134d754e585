"""The CDC check (--cdc-slot): the changes the consumer received, joined with the ledger's
ops and with what reconciliation found the new primary holds.

A received change names a row version (drill/cdc_decode.py): an insert or update the op
whose seq it is, a delete the first delete of that key after the version it removed. Per
op, then:
- missed: acknowledged, with an effect (an insert, or an update or delete that matched a
  row), held by the new primary (not lost), and never received: a downstream lacks it;
- phantom: received, but not in the new primary's history (an acknowledged op found lost,
  or an op in doubt found not applied): a downstream holds what the database lost;
- duplicate: received more than once (allowed after a failover, counted);
- received of an op the client was told failed: the server committed it all the same.
A change that names no op of the ledger (`unmatched`) is counted too: it should not be.
Pure: the ledger's rows and the findings in, figures out (the coordinator reads them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Optional

from ..ops import DELETE, FAILED, INSERT, KIND_NAMES, OK, CdcChange, Op
from .distribution import percentile
from .findings import EXAMPLES


@dataclass
class CdcTally:
    """The CDC figures over every worker."""

    expected: int = 0  # acknowledged ops with an effect the new primary holds
    received: int = 0  # changes received, duplicates included
    received_ops: int = 0  # distinct ops received
    missed: int = 0
    phantom: int = 0
    duplicates: int = 0  # receipts beyond the first of an op
    received_failed: int = 0
    unmatched: int = 0
    first_received_at: Optional[float] = None
    last_received_at: Optional[float] = None
    missed_examples: list = field(default_factory=list)
    phantom_examples: list = field(default_factory=list)
    duplicate_examples: list = field(default_factory=list)
    received_times: list = field(default_factory=list)  # every receipt's time, for outages
    lags: list = field(default_factory=list)  # acknowledgement to first receipt, seconds


def example(bucket: list, item: dict) -> None:
    if len(bucket) < EXAMPLES:
        bucket.append(item)


def effective(op: Op) -> bool:
    """An acknowledged op whose change a consumer must see: an insert, or an update or
    delete that matched a row (one that matched none changed nothing)."""
    return op.outcome == OK and (op.kind == INSERT or bool(op.rows))


class CdcCheck:
    """Joins each worker's ops (in key order) with the changes received of its rows."""

    def __init__(self, lost: Iterable[tuple], not_applied: Iterable[tuple]) -> None:
        self.lost = {(worker, seq) for worker, seq, *_ in lost}
        self.not_applied = set(not_applied)
        self.tally = CdcTally()

    def add_worker(self, worker: int, ops: Iterable[Op], received: list[CdcChange]) -> None:
        """One worker: its ops in key order (Ledger.ops_by_key), its received changes."""
        t = self.tally
        by_key: dict[int, list[CdcChange]] = {}
        for change in received:
            by_key.setdefault(change.key, []).append(change)
            t.received += 1
            t.received_times.append(change.received_at)
        key_ops: list[Op] = []
        for op in ops:
            if key_ops and key_ops[0].key != op.key:
                self._judge(worker, key_ops, by_key.pop(key_ops[0].key, []))
                key_ops = []
            key_ops.append(op)
        if key_ops:
            self._judge(worker, key_ops, by_key.pop(key_ops[0].key, []))
        t.unmatched += sum(len(changes) for changes in by_key.values())

    def _judge(self, worker: int, ops: list[Op], changes: list[CdcChange]) -> None:
        """One key: each received change to the op it names, then each op judged."""
        t = self.tally
        receipts: dict[int, list[CdcChange]] = {}  # op seq -> the changes naming it
        for change in changes:
            if change.kind == DELETE:
                op = next((o for o in ops if o.kind == DELETE and o.seq > change.version),
                          None)
            else:
                op = next((o for o in ops if o.seq == change.version and o.kind == change.kind),
                          None)
            if op is None:
                t.unmatched += 1
            else:
                receipts.setdefault(op.seq, []).append(change)
        for op in ops:
            got = receipts.pop(op.seq, None)
            lost = (worker, op.seq) in self.lost
            if effective(op) and not lost:
                t.expected += 1
                if not got:
                    t.missed += 1
                    example(t.missed_examples, describe(worker, op))
            if not got:
                continue
            t.received_ops += 1
            if op.outcome == OK and op.t_end is not None:
                t.lags.append(got[0].received_at - op.t_end)
            if len(got) > 1:
                t.duplicates += len(got) - 1
                example(t.duplicate_examples, dict(describe(worker, op), times=len(got)))
            if lost or (worker, op.seq) in self.not_applied:
                t.phantom += 1
                example(t.phantom_examples, dict(describe(worker, op), lsn=got[0].lsn,
                                                 received_at=got[0].received_at))
            elif op.outcome == FAILED:
                t.received_failed += 1

    def finish(self) -> CdcTally:
        t = self.tally
        t.received_times.sort()
        if t.received_times:
            t.first_received_at, t.last_received_at = t.received_times[0], \
                t.received_times[-1]
        return t


def check_ledger(ledger, workers: int, findings) -> CdcTally:
    """The CDC check over a run's ledger, against reconciliation's findings."""
    check = CdcCheck(findings.lost_ops, findings.not_applied_ops)
    for worker in range(workers):
        check.add_worker(worker, ledger.ops_by_key(worker), ledger.cdc_changes(worker))
    return check.finish()


def confirmed_before(confirmed: list, fault_at: Optional[float]) -> Optional[int]:
    """The last position the consumer confirmed at or before the fault."""
    if fault_at is None:
        return None
    return max((lsn for at, lsn in confirmed if at <= fault_at), default=None)


def section(outcome, fault_at: Optional[float]) -> Optional[dict]:
    """The report's `cdc` (None without --cdc-slot): the slot on the new primary, the
    consumer's connections, its outage around the fault, and the check's figures."""
    cdc = outcome.scenario.cdc
    if cdc.cdc_slot is None:
        return None
    heard, slot, t = outcome.cdc, outcome.cdc_slot_after or {}, outcome.cdc_tally
    times = t.received_times if t is not None else []
    lags = t.lags if t is not None else []
    return {
        "slot": cdc.cdc_slot, "plugin": cdc.cdc_plugin,
        "slot_on_new_primary": slot.get("status"),
        "slot_invalidation_reason": slot.get("invalidation_reason"),
        "confirmed_flush_lsn_on_new_primary": slot.get("confirmed_flush_lsn"),
        "confirmed_before_fault_lsn": confirmed_before(heard.confirmed, fault_at)
        if heard else None,
        "consumer_reported": heard is not None,
        "caught_up": heard.caught_up if heard else False,
        "connections": heard.connections if heard else [],
        "outage": outage(times, fault_at, heard.connections if heard else ()),
        "received": t.received if t else None,
        "received_ops": t.received_ops if t else None,
        "received_before_fault": None if t is None or fault_at is None
        else sum(1 for at in times if at <= fault_at),
        "received_after_fault": None if t is None or fault_at is None
        else sum(1 for at in times if at > fault_at),
        "expected": t.expected if t else None,
        "missed": t.missed if t else None,
        "phantom": t.phantom if t else None,
        "duplicates": t.duplicates if t else None,
        "received_failed": t.received_failed if t else None,
        "unmatched": t.unmatched if t else None,
        "lag_p50_seconds": percentile(lags, 50), "lag_p99_seconds": percentile(lags, 99),
        "received_per_second": per_second(times),
        "examples": {"missed": t.missed_examples, "phantom": t.phantom_examples,
                     "duplicate": t.duplicate_examples} if t else {},
    }


def per_second(times: list[float]) -> list[list]:
    """[second, changes received in it] for every second with one (Unix seconds)."""
    counts: dict[int, int] = {}
    for at in times:
        counts[int(at)] = counts.get(int(at), 0) + 1
    return [[second, n] for second, n in sorted(counts.items())]


def describe(worker: int, op: Op) -> dict:
    return {"worker": worker, "key": op.key, "seq": op.seq, "kind": KIND_NAMES[op.kind],
            "outcome": op.outcome, "acknowledged_at": op.t_end}


def outage(times: list[float], fault_at: Optional[float],
           connections: Sequence = ()) -> Optional[dict]:
    """The consumer's outage the fault caused: from the last change it received before
    it lost its session (the first loss at or after the fault) to the first it received
    after that. Changes the old primary had already sent keep arriving for a moment after
    the fault, so the gap around the fault's instant alone said 0.004 s where the consumer
    was away 5.6 s (Patroni, kill-primary). Without a loss on record (a fault that did not
    cut the session) it is the gap around the fault. `last_before_fault` and
    `first_after_fault` stay the changes either side of the fault's instant."""
    if fault_at is None:
        return None
    losses = [c["lost"]["at"] for c in connections
              if isinstance(c.get("lost"), dict) and (c["lost"].get("at") or 0) >= fault_at]
    lost_at = min(losses, default=None)
    cut = fault_at if lost_at is None else lost_at

    def around(at: float) -> tuple[Optional[float], Optional[float]]:
        before = [t for t in times if t <= at]
        after = [t for t in times if t > at]
        return (before[-1] if before else None), (after[0] if after else None)

    last, first = around(cut)
    last_at_fault, first_at_fault = around(fault_at)
    return {"last_before_fault": last_at_fault, "first_after_fault": first_at_fault,
            "session_lost_at": lost_at,
            "last_before": last, "first_after": first,
            "seconds": None if last is None or first is None else first - last}
