"""The run's outcome: what a drill gathered, typed, for the report to turn into figures.

It sits below both the coordinator, which fills it in as the drill goes, and the report,
which reads it; neither computes anything the other needs. What the drill's processes
report reaches it through its own methods (`heard`, `worker_crashed`, `error`), so how
each piece of news lands is written once, here, whoever passes it on (the crew). Why the
load stopped is one `StopReason` (a kind and its sentence), not a set of flags set in
pairs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # for the annotations only: the outcome imports no process code
    from .config import Scenario
    from .drill.background import CommandRecord
    from .drill.faults import FaultRecord
    from .drill.messages import (
        CdcFinished,
        ProbeGap,
        RecorderFinished,
        WorkerCrashed,
        WorkerSchedule,
    )
    from .ops import Identity, NodeSample, ReplicationRow
    from .verify.cdc import CdcTally
    from .verify.findings import Findings
    from .verify.metrics import RunMetrics


class Stop(enum.Enum):
    """Why the load ended."""

    DURATION = "duration"  # --duration passed and every fault had returned
    OBSERVED = "observed"  # the outage was over and writes were healthy --observe-after s
    WORKERS_ENDED = "workers-ended"  # every worker ended (--ops-per-worker, or crashes)
    RECORDER_FAILED = "recorder-failed"  # the ledger could not be kept
    SIGNAL = "signal"  # SIGINT / SIGTERM
    DEADLINE = "deadline"  # --max-run-seconds
    MAX_OUTAGE = "max-outage"  # no primary accepted writes for --max-outage s
    RECONCILED_LATER = "reconciled-later"  # `ptor reconcile`: the run did not finish
    RECHECKED = "rechecked"  # `ptor reconcile` of a run that had finished: a second check


# How a Stop.RECONCILED_LATER reason's sentence begins: the report keeps only the sentence
# (`stop_reason`), and the account tells such a run by it
RECONCILED_LATER_SAYS = "reconciled later by ptor reconcile"
RECHECKED_SAYS = "Re-checked by ptor reconcile"


@dataclass(frozen=True)
class StopReason:
    """One reason the load stopped, with the sentence the report shows."""

    kind: Stop
    detail: str
    signal: Optional[str] = None  # the signal's name, for Stop.SIGNAL

    def noting(self, more: str) -> StopReason:
        """The same reason with one more clause (e.g. a spill file replayed later)."""
        return StopReason(self.kind, f"{self.detail}; {more}", self.signal)


def stopped_by(stop: Optional[StopReason], kind: Stop) -> bool:
    """Whether the load ended for that kind of reason."""
    return stop is not None and stop.kind is kind


def interrupted_by(stop: Optional[StopReason]) -> Optional[str]:
    """The signal's name when a signal ended the load."""
    return stop.signal if stopped_by(stop, Stop.SIGNAL) else None


@dataclass
class LockStatus:
    """The drill lock as it was kept during the run (see lock.py)."""

    retaken: int = 0  # times taken again on a new primary
    lost_to: Optional[str] = None  # another drill took the cluster's lock meanwhile
    failed: Optional[str] = None  # the keeper died: the lock was not kept


@dataclass
class HarnessLoad:
    """How hard ptor itself worked during the load (see saturation.py)."""

    cpu_samples: list[tuple[float, float, float]] = field(default_factory=list)
    cpu_cores: int = 1
    queue_peak: int = 0  # most messages waiting for the recorder at once
    queue_capacity: int = 0


@dataclass
class ObserverStatus:
    """The node observer during the run: which nodes, found how, what it delivered."""

    nodes: list[str] = field(default_factory=list)
    found: str = "off"  # where the nodes came from, or why it was off
    sent: int = 0  # samples handed to the recorder
    dropped: int = 0  # samples dropped because the recorder's queue was full
    failure: Optional[str] = None  # it died or had to be killed


@dataclass
class DrillOutcome:
    """Everything the report needs, gathered by the coordinator (not computed by it)."""

    run_id: str
    run_dir: str
    scenario: Scenario
    ledger_kind: str
    phases: dict[str, float] = field(default_factory=dict)
    seed: Optional[int] = None
    primary_before: Optional[Identity] = None
    postgres_version: Optional[str] = None  # the primary's, as it said before the load
    synchronous_commit: Optional[str] = None  # its sessions' setting, before the load
    primary_after: Optional[Identity] = None
    latency: Optional[dict] = None  # --check-primary-latency: connect and SELECT 1 summaries
    faults: list[FaultRecord] = field(default_factory=list)
    faults_planned: int = 0
    stop: Optional[StopReason] = None
    errors: list[str] = field(default_factory=list)
    worker_crashes: list[WorkerCrashed] = field(default_factory=list)
    recorder_totals: Optional[RecorderFinished] = None
    metrics: Optional[RunMetrics] = None
    findings: Optional[Findings] = None
    validation_error: Optional[str] = None
    # why each attempt the server broke off mid-check failed (the check started again)
    validation_interrupted: list[str] = field(default_factory=list)
    # where reconciliation read the truth: "endpoint", or the node the observer watches
    # when the endpoint led to no primary (a pooler left on the demoted node)
    reconciled_on: Optional[str] = None
    identities: list[Identity] = field(default_factory=list)
    lock: LockStatus = field(default_factory=LockStatus)
    probe_gaps: list[ProbeGap] = field(default_factory=list)  # outages as the probe saw them
    schedules: list[WorkerSchedule] = field(default_factory=list)  # --rate, per worker
    # --background-load: each command's supervision (None: the drill had none, or its
    # process never reported)
    background: Optional[list[CommandRecord]] = None
    connect_samples: list[tuple[float, int]] = field(default_factory=list)  # (at, attempts)
    harness: HarnessLoad = field(default_factory=HarnessLoad)
    observer: ObserverStatus = field(default_factory=ObserverStatus)
    node_samples: list[NodeSample] = field(default_factory=list)  # from the ledger
    # the primary's WAL position through the endpoint at the load's start, the end of
    # the warmup and the drain (drill/wal_position.py): the WAL rate without an observer
    wal_positions: list[NodeSample] = field(default_factory=list)
    replication: list[ReplicationRow] = field(default_factory=list)
    # writes refused as read-only (SQLSTATE 25006), per session that refused them:
    # (worker, session, count, first and last time)
    refused_writes: list = field(default_factory=list)
    # --cdc-slot: the consumer's last word, the slot on the new primary, and the check
    cdc: Optional[CdcFinished] = None
    cdc_slot_after: Optional[dict] = None
    cdc_tally: Optional[CdcTally] = None

    def stopped(self, kind: Stop, detail: str, signal: Optional[str] = None) -> None:
        self.stop = StopReason(kind, detail, signal)

    def error(self, text: str) -> bool:
        """An error the report lists, once however often it is told; True if it is new."""
        if text in self.errors:
            return False
        self.errors.append(text)
        return True

    def worker_crashed(self, crash: WorkerCrashed) -> bool:
        """A worker's death, once whether its own report or its exit was seen first;
        True if it is new."""
        if any(c.worker == crash.worker for c in self.worker_crashes):
            return False
        self.worker_crashes.append(crash)
        self.error(f"worker {crash.worker} {crash.error}")
        return True

    def watching(self, nodes: list[str], found: str) -> None:
        """The node observer's nodes (none: it is off) and where they came from."""
        self.observer = ObserverStatus(nodes=nodes, found=found)

    def heard(self, news) -> bool:
        """A process's last word (drill/messages.py): the recorder's totals, a probe gap,
        a worker's schedule, the observer's counts, the background load's commands. False
        for anything else, which the caller handles."""
        from .drill import messages  # at run time only: the outcome imports no process code

        if isinstance(news, messages.RecorderFinished):
            self.recorder_totals = news
        elif isinstance(news, messages.ProbeGap):
            self.probe_gaps.append(news)
        elif isinstance(news, messages.WorkerSchedule):
            self.schedules.append(news)
        elif isinstance(news, messages.ObserverFinished):
            self.observer.sent, self.observer.dropped = news.samples, news.dropped
        elif isinstance(news, messages.BackgroundFinished):
            self.background = news.commands
        elif isinstance(news, messages.CdcFinished):
            self.cdc = news
        else:
            return False
        return True

    @property
    def stop_reason(self) -> str:
        return self.stop.detail if self.stop else ""

    @property
    def interrupted(self) -> Optional[str]:
        return interrupted_by(self.stop)

    @property
    def deadline_reached(self) -> bool:
        return stopped_by(self.stop, Stop.DEADLINE)
