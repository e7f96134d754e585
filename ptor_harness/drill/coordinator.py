"""The coordinator: owns the phases of a drill and orchestrates the parts that run them.

check -> warmup -> load (faults fired on schedule) -> drain -> reconcile -> report. Each
phase is timestamped into the ledger. The preflight (preflight.py) takes the lock and
prepares the cluster; the crew (crew.py) runs the recorder, the probe and the workers;
the stop rules (stoprules.py) say when the load ends; reconciliation and the report
(verify/, outputs/) turn the ledger and the new primary into the verdict. The coordinator
gathers the `DrillOutcome` (outcome.py) they need; what it works out itself is only what
orchestrating takes (the reconciliation's time budget and which workers a reconciliation
share takes); which primary is newest it asks servers.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
import time
from typing import Optional

import psycopg2

from ..config import Scenario
from ..errors import PtorError
from ..ledger import LedgerSpec, spill
from ..ledger.journal import PhaseJournal, journal_spill_path
from ..ops import ENDPOINT, READ_ONLY
from ..outcome import DrillOutcome, Stop, StopReason
from ..outputs import exports, report
from ..servers import first_primary, newest_timeline
from ..verify.cdc import check_ledger as cdc_check
from ..verify.node_names import name_standbys
from ..verify.validation import (
    ValidationIncomplete,
    again_while_interrupted,
    confirm_primary,
    reconcile_run,
)
from .cdc import spec_for
from .cdc_slot import slot_state
from .cpu_sampler import CpuSampler
from .crew import QUEUE_MESSAGES, Crew
from .faults import FAULT_ENDED, FaultSchedule, LabAction, ShellCommand, fault_phase
from .metrics_pass import MetricsPass
from .observer import cluster_nodes
from .preflight import DrillLocks, check_cluster
from .reconcile_share import ShareCheck, start_share
from .stoprules import StopRules
from .wal_position import POSITION_TIMEOUT, WalPositions
from .watcher import LoadWatcher

log = logging.getLogger("ptor")
TICK = 0.05
RECONCILE_ATTEMPTS = 3  # a check the server broke off is started again, this often in all
STARTUP_SECONDS = 60.0  # spawning the crew, before its connects (startup_budget)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def make_run_dir(path: str) -> None:
    """The run's folder, readable by its owner only (it describes a cluster). One that
    exists already (this run's, made earlier) keeps its mode: ptor changes no mode of a
    folder it did not just create."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # whatever the umask


class Drill:
    """One drill from check to reconciliation."""

    def __init__(self, scenario: Scenario, progress: bool = False,
                 run_id: Optional[str] = None) -> None:
        self.scenario = scenario
        self.progress = progress
        self.run_id = run_id or new_run_id()
        self.run_dir = os.path.join(scenario.outputs.report_dir, self.run_id)
        repo = scenario.connection.repo_pgdsn
        self.ledger_spec = LedgerSpec(
            self.run_id, repo, scenario.connection.schema,
            None if repo else os.path.join(self.run_dir, "ledger.sqlite"),
            durable=not scenario.load.async_repo_mode,
            outage_limit=scenario.thresholds.max_outage,
            spill_path=spill.spill_path(self.run_dir) if repo else None)
        self.outcome = DrillOutcome(self.run_id, self.run_dir, scenario, self.ledger_spec.kind)
        self.ledger = None
        self.journal: Optional[PhaseJournal] = None
        self.started = time.monotonic()
        self.stop_signal: Optional[str] = None
        self.current_phase = ""
        self.locks = DrillLocks(scenario.connection, self.run_id)
        self.schedule: Optional[FaultSchedule] = None
        self.output_failures: list[str] = []
        self.cdc_since: Optional[int] = None  # --cdc-slot: where this run's changes begin

    def request_stop(self, signal_name: str) -> None:
        """Asked from a signal handler: end the load at the next tick, then drain,
        reconcile and report as usual (a fault under way is let finish)."""
        self.stop_signal = signal_name

    def kill_faults(self) -> None:
        """Asked from a signal handler on a second signal: kill a failover command under
        way, its whole process group."""
        if self.schedule is not None:
            self.schedule.kill()

    def seconds_left(self) -> Optional[float]:
        """Time left before --max-run-seconds (None: no deadline)."""
        limit = self.scenario.thresholds.max_run_seconds
        return None if limit is None else limit - (time.monotonic() - self.started)

    def phase(self, name: str, at: Optional[float] = None, **detail) -> None:
        now = time.time() if at is None else at
        self.outcome.phases[name] = now
        self.current_phase = name
        log.info("phase %s", name)
        if self.journal is not None:  # never waits on the repo
            self.journal.record(now, "phase:" + name, detail)

    @contextlib.contextmanager
    def open_ledger(self):
        """The run's ledger for the body, with the journal that writes its phase events;
        both closed however the body ends."""
        self.ledger = self.ledger_spec.open()
        self.journal = PhaseJournal(self.ledger_spec, journal_spill_path(self.run_dir))
        self.journal.start()
        try:
            yield self.ledger
        finally:
            self.journal.close()
            self.journal = None
            self.ledger.close()

    def run(self) -> dict:
        """Run the drill and return its report (also recorded in the ledger), every output
        written."""
        s = self.scenario
        try:
            try:
                self.locks.take()
                self.phase("check")
                found = check_cluster(s, self.run_id)
                self.outcome.primary_before, self.outcome.latency = found.primary, found.latency
                self.outcome.postgres_version, self.cdc_since = found.postgres_version, \
                    found.cdc_since
                self.outcome.synchronous_commit = found.synchronous_commit
                make_run_dir(self.run_dir)
                with self.open_ledger() as ledger:
                    ledger.create_run(time.time(), s.as_public_dict())
                    seed = s.load.seed
                    self.outcome.seed = seed if seed is not None else \
                        random.SystemRandom().randrange(2**31)
                    self.load(self.outcome.seed)
                    result = self.conclude()
            except PtorError as exc:
                self.record_unfinished(str(exc))
                raise
            except Exception as exc:  # a bug of ptor's: the CLI keeps its traceback
                self.record_unfinished(f"ptor stopped on an error of its own: "
                                       f"{type(exc).__name__}: {exc}")
                raise
        finally:
            self.locks.release()
        self.output_failures = exports.write_outputs(result, self.run_dir, s.outputs)
        return result

    def conclude(self, record: bool = True) -> dict:
        """Reconcile, judge, and record the verdict in the ledger (unless `record` is
        False: a second check of a run that had finished leaves its verdict there): where
        a drill and a later `ptor reconcile` both end."""
        self.reconcile()
        self.outcome.lock = self.locks.status()
        result = report.build(self.outcome)
        if record:
            self.ledger.finish_run(time.time(), result["verdict"], result)
        return result

    def record_unfinished(self, error: str) -> None:
        """A run that could not start (the cluster unreachable, another drill's lock) or
        could not finish (its ledger could not be written) leaves its reason in its folder,
        so `ptor history` can say why, and in every export asked for, so that no collector
        or CI system reads the drill before it as this one's."""
        error = self.scenario.redact(error)
        log.error("%s", error, extra={"file_only": True})  # the CLI says it on stderr
        with contextlib.suppress(OSError):
            make_run_dir(self.run_dir)
        stub = exports.unfinished(self.run_id, self.run_dir, error, self.outcome.phases,
                                  self.scenario.as_public_dict(), self.ledger_spec.kind)
        for failure in exports.write_unfinished(stub, self.run_dir, self.scenario.outputs):
            log.error("%s", self.scenario.redact(failure))

    # --- the load ------------------------------------------------------------------------

    def load(self, seed: int) -> None:
        """Start the crew, fire the faults on schedule, follow the load until a stop rule
        holds, then stop the crew and drain the ledger."""
        s, outcome = self.scenario, self.outcome
        crew = Crew(s, self.ledger_spec, outcome, seed, spec_for(s, self.cdc_since),
                    self.journal.record if self.journal is not None else None)
        crew.start()
        watcher = LoadWatcher(crew.board, self.progress, lambda: self.current_phase)
        sampler = CpuSampler(crew.pids)
        c = s.connection
        positions = WalPositions(c.primary_pgdsn, min(POSITION_TIMEOUT, c.rto_conn_timeout),
                                 c.statement_timeout)
        try:
            startup = self.startup_budget()
            if not crew.wait_ready(startup, lambda: self.stop_signal is not None):
                waiting = [w for w in range(s.load.parallel_workers)
                           if not crew.board.get(w, "ready")]
                if waiting and not crew.abort.is_set() and self.stop_signal is None:
                    log.warning("worker(s) %s not started after %.0f s: the warmup begins "
                                "without them", ", ".join(map(str, waiting)), startup)
            plan = self.fault_plan()
            self.phase("warmup", faults_planned=len(plan))
            positions.read_soon()
            crew.go.set()
            warm_end = time.time() + s.load.warmup_duration
            self.schedule = FaultSchedule(plan, warm_end)
            outcome.faults_planned = len(self.schedule.plan)
            self.schedule.start()
            rules = StopRules(s, crew, watcher, self.schedule, warm_end + s.load.duration,
                              self.seconds_left, lambda: self.stop_signal)
            in_load = False
            while True:
                now = time.time()
                if not in_load and now >= warm_end:
                    in_load = True
                    self.phase("load")
                    positions.read_soon()  # before a fault, as a rule (--failover-after)
                for ordinal, at, name in self.schedule.newly_fired():
                    self.phase(fault_phase(ordinal), at=at, action=name)
                self.journal_ended_faults()
                crew.poll()
                watcher.tick(now)
                outcome.connect_samples.append((now, crew.connect_attempts()))
                sampler.sample(now, crew.queue.qsize())
                reason = rules.check(now, in_load)
                if reason is not None:
                    self.stopped(reason)
                    break
                time.sleep(TICK)
        finally:
            watcher.clear_line()
            self.phase("drain")
            outcome.wal_positions = positions.finish()
            outcome.harness.cpu_samples = sampler.samples
            outcome.harness.cpu_cores = sampler.cores
            outcome.harness.queue_peak = sampler.queue_peak
            outcome.harness.queue_capacity = QUEUE_MESSAGES
            crew.stop.set()
            crew.go.set()  # workers still waiting to start see the stop at once
            if self.schedule is not None:
                self.schedule.cancel_and_join()
                self.journal_ended_faults()
                outcome.faults = list(self.schedule.records)
            crew.stop_all()

    def journal_ended_faults(self) -> None:
        """Each fault's record into the ledger as it ends, so `ptor reconcile` of a run
        that never finished still knows what was injected and how it went."""
        for ordinal, record in self.schedule.newly_ended():
            if self.journal is not None:
                self.journal.record(record.ended_at or time.time(), FAULT_ENDED,
                                    dict(record.as_dict(), ordinal=ordinal))

    def startup_budget(self) -> float:
        """How long the workers may take to start and make their first connect attempt:
        a spawn and a bounded connect each, on a slow machine; never past the run's
        deadline."""
        budget = STARTUP_SECONDS + self.scenario.connection.rto_conn_timeout
        left = self.seconds_left()
        return budget if left is None else max(0.0, min(budget, left))

    def stopped(self, reason: StopReason) -> None:
        self.outcome.stop = reason
        if reason.kind is Stop.SIGNAL:
            log.warning("%s: stopping the load, then draining and reconciling",
                        reason.signal)
        elif reason.kind is Stop.DEADLINE:
            log.warning("max-run-seconds reached: stopping the load")
            if self.schedule is not None and self.schedule.running():
                # a hard deadline: a failover command under way does not get to outlast it
                self.schedule.kill("max-run-seconds was reached")
        elif reason.kind is Stop.MAX_OUTAGE:
            self.outcome.errors.append(reason.detail)

    def fault_plan(self) -> list:
        """(seconds after warmup, trigger) for the failover command and every --fault."""
        f = self.scenario.faults
        plan = []
        if f.failover_command:
            plan.append((f.failover_after, ShellCommand(
                f.failover_command, timeout=f.failover_timeout, redact=self.scenario.redact)))
        plan += [(at, LabAction(action, f.lab_dir)) for action, at in f.fault]
        return plan

    # --- after the load ------------------------------------------------------------------

    def reconcile(self) -> None:
        """The ledger's figures, then the new primary joined with the ledger: the
        findings, or why they could not be had (never a guess)."""
        s, outcome, ledger = self.scenario, self.outcome, self.ledger
        self.phase("reconcile")
        try:
            ledger.analyze()
        except psycopg2.Error:  # a session the repo dropped while it was away
            ledger.reconnect()
            ledger.analyze()
        outcome.identities = ledger.identities()
        if outcome.primary_before is None:  # `ptor reconcile`: its check went with it
            outcome.primary_before = first_primary(outcome.identities)
        outcome.node_samples = ledger.node_samples()
        outcome.replication = name_standbys(outcome.node_samples, ledger.replication_rows())
        outcome.refused_writes = ledger.refused_writes(READ_ONLY)
        totals = outcome.recorder_totals
        ops = totals.ops if totals else ledger.count("ledger_op")
        metrics = MetricsPass(self.ledger_spec, ledger, s.load.parallel_workers,
                              s.load.ops_per_transaction, ops)
        try:
            self.reconcile_with_primary(ops)
        except BaseException:
            metrics.cancel()
            raise
        outcome.metrics = metrics.result()
        self.phase("report")

    def reconcile_with_primary(self, ops: int) -> None:
        """Confirm a primary and join it with the ledger (Findings), or say why not. A
        check the server broke off (the cluster still changing after the fault) starts
        again on the primary confirmed then, a few times at most; each is reported."""
        try:
            again_while_interrupted(lambda: self.reconcile_once(ops), RECONCILE_ATTEMPTS,
                                    self.outcome.validation_interrupted, self.scenario.redact)
        except ValidationIncomplete as exc:
            self.outcome.validation_error = self.scenario.redact(str(exc))

    def check_rows_are_this_runs(self, conn) -> None:
        """A drill holds its cluster's lock from the tables' emptying to its report (a
        later `ptor reconcile` cannot: LateReconciliation checks)."""

    def reconcile_once(self, ops: int) -> None:
        """One attempt: confirm a primary and join it with the ledger. Raises
        ValidationIncomplete. What a broken-off attempt before it found goes: the report
        names the primary of the last attempt."""
        s, outcome, ledger = self.scenario, self.outcome, self.ledger
        outcome.reconciled_on = outcome.primary_after = outcome.cdc_slot_after = None
        c = s.connection
        budget = min(s.thresholds.max_outage, 60.0)
        left = self.seconds_left()
        if left is not None:  # past the run's deadline, allow a short bounded check only
            budget = min(budget, max(left, 5.0))
        deadline = time.monotonic() + budget
        before = outcome.primary_before
        servers = [(ENDPOINT, c.primary_pgdsn)] + [
            (node.name, node.dsn) for node in cluster_nodes(s)[0]]
        system = before.system_id if before else None
        confirmed = confirm_primary(
            servers, c.schema, c.rto_conn_timeout, deadline, c.statement_timeout,
            system, newest_timeline(outcome.identities + [before], system))
        conn, identity = confirmed.conn, confirmed.identity
        outcome.reconciled_on, outcome.primary_after = confirmed.label, identity
        if s.cdc.cdc_slot is not None:
            outcome.cdc_slot_after = slot_state(conn, s.cdc.cdc_slot)
        workers, share = s.load.parallel_workers, None
        try:
            self.check_rows_are_this_runs(conn)
            share = start_share(conn, ShareCheck(
                self.ledger_spec, confirmed.dsn, c.rto_conn_timeout, c.statement_timeout,
                c.schema, list(range(workers // 2, workers)), self.run_id,
                s.load.payload_bytes, s.preparation.full_data_validation, outcome.identities,
                identity, s.load.async_repo_mode, s.load.ops_per_transaction), ops)
            outcome.findings = reconcile_run(
                conn, ledger, c.schema, workers, self.run_id,
                s.load.payload_bytes, s.preparation.full_data_validation,
                outcome.identities, identity, outcomes_only=s.load.async_repo_mode,
                ops_per_transaction=s.load.ops_per_transaction, share=share)
            if s.cdc.cdc_slot is not None:
                outcome.cdc_tally = cdc_check(ledger, workers, outcome.findings)
        finally:
            if share is not None:
                share.cancel()
            conn.close()
