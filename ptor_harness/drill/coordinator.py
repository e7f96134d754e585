"""The coordinator: owns the phases of a drill and the processes that run it.

check -> init -> warmup -> fault -> observe -> drain -> reconcile -> report. Each phase
transition is timestamped into the ledger. The coordinator starts the recorder and the
workers (spawn context: every child opens its own connections), fires the fault, watches
the live board to know when the outage is over, then stops the load, drains the recorder,
and hands the ledger and the primary to reconciliation and metrics. It computes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import queue as queue_module
import random
import secrets
import signal
import time
from dataclasses import dataclass, field
from typing import Optional

import psycopg2

from .. import db, lock, schema
from ..config import Scenario, worker_specs
from ..errors import ClusterError, PtorError, RecorderError
from ..ledger import LedgerSpec, spill
from ..ledger import postgres as pg_ledger
from ..ledger.journal import PhaseJournal
from ..ops import Identity
from ..outputs import exports, report
from ..verify.metrics import RunMetrics, latency_summary
from ..verify.validation import ValidationIncomplete, confirm_primary, reconcile_run
from . import messages
from .faults import FaultSchedule, LabAction, ShellCommand
from .probe import ProbeBoard, ProbeGap, ProbeSpec, run_probe
from .recorder import run_recorder
from .saturation import CpuSampler
from .watcher import LoadWatcher
from .worker import WorkerBoard, run_worker

log = logging.getLogger("ptor")
TICK = 0.05
QUEUE_MESSAGES = 20000


@dataclass
class DrillOutcome:
    """Everything the report needs, gathered by the coordinator (not computed by it)."""

    run_id: str
    run_dir: str
    scenario: Scenario
    ledger_kind: str
    phases: dict = field(default_factory=dict)
    primary_before: Optional[Identity] = None
    primary_after: Optional[Identity] = None
    latency: Optional[dict] = None
    faults: list = field(default_factory=list)
    stop_reason: str = ""
    errors: list = field(default_factory=list)
    worker_crashes: list = field(default_factory=list)
    recorder_totals: Optional[messages.RecorderFinished] = None
    metrics: Optional[RunMetrics] = None
    findings: object = None
    validation_error: Optional[str] = None
    identities: list = field(default_factory=list)
    max_outage_exceeded: bool = False
    interrupted: Optional[str] = None  # the signal's name when a signal ended the load
    deadline_reached: bool = False  # max-run-seconds ended the load
    faults_planned: int = 0
    lock_lost_to: Optional[str] = None  # another drill took the cluster's lock meanwhile
    lock_failed: Optional[str] = None  # the lock's keeper died: the lock was not kept
    probe_gaps: list = field(default_factory=list)  # ProbeGap: outages as the probe saw them
    connect_samples: list = field(default_factory=list)  # (at, connection attempts so far)
    lock_retaken: int = 0  # times the lock was taken again on a new primary
    reconciled_later: bool = False  # by `ptor reconcile`, after the coordinator died
    cpu_samples: list = field(default_factory=list)  # (t, harness cores, machine busy %)
    cpu_cores: int = 1
    queue_peak: int = 0  # most messages waiting for the recorder at once
    queue_capacity: int = 0


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def make_run_dir(path: str) -> None:
    """The run's folder, readable by its owner only (it describes a cluster)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


class Drill:
    """One drill from check to reconciliation."""

    def __init__(self, scenario: Scenario, progress: bool = False,
                 run_id: Optional[str] = None) -> None:
        self.scenario = scenario
        self.progress = progress
        self.run_id = run_id or new_run_id()
        self.run_dir = os.path.join(scenario.report_dir, self.run_id)
        self.ledger_spec = LedgerSpec(
            self.run_id, scenario.repo_pgdsn, scenario.schema,
            None if scenario.repo_pgdsn else os.path.join(self.run_dir, "ledger.sqlite"),
            durable=not scenario.async_repo_mode, outage_limit=scenario.max_outage,
            spill_path=spill.spill_path(self.run_dir) if scenario.repo_pgdsn else None)
        self.outcome = DrillOutcome(self.run_id, self.run_dir, scenario, self.ledger_spec.kind)
        self.ledger = None
        self.journal: Optional[PhaseJournal] = None
        self.started = time.monotonic()
        self.stop_signal: Optional[str] = None
        self.current_phase = ""
        self.primary_lock: Optional[lock.LockKeeper] = None
        self.repo_lock = None
        self.schedule: Optional[FaultSchedule] = None
        self.output_failures: list[str] = []

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
        if self.scenario.max_run_seconds is None:
            return None
        return self.scenario.max_run_seconds - (time.monotonic() - self.started)

    # --- phases ------------------------------------------------------------------------

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
        self.journal = PhaseJournal(self.ledger_spec)
        self.journal.start()
        try:
            yield self.ledger
        finally:
            self.journal.close()
            self.journal = None
            self.ledger.close()

    def take_locks(self) -> None:
        """One drill at a time: the lock on the primary (kept across failovers by a
        keeper thread) and on the PostgreSQL repo, before anything is touched."""
        s = self.scenario
        conn = lock.acquire(s.primary_pgdsn, "primary", s.schema, self.run_id,
                            s.rto_conn_timeout, s.statement_timeout)
        self.primary_lock = lock.LockKeeper(conn, s.primary_pgdsn, s.schema, self.run_id,
                                            s.rto_conn_timeout, s.statement_timeout)
        self.primary_lock.start()
        if s.repo_pgdsn:
            self.repo_lock = lock.acquire(s.repo_pgdsn, "repo", s.schema, self.run_id,
                                          s.rto_conn_timeout, s.statement_timeout)

    def release_locks(self) -> None:
        if self.primary_lock is not None:
            self.primary_lock.release()
        if self.repo_lock is not None:
            self.repo_lock.close()

    def check(self) -> None:
        """Reach the primary (and the repo), prepare tables, measure latency if asked."""
        s = self.scenario
        self.phase("check")
        if s.fault and not os.path.exists(os.path.join(s.lab_dir, "lab.json")):
            raise ClusterError(f"lab-dir {s.lab_dir} holds no ptor-lab lab (no lab.json); "
                               "start one with ptor-lab up")
        try:
            conn = db.connect(s.primary_pgdsn, "ptor-check", s.rto_conn_timeout,
                              s.statement_timeout, autocommit=False)
        except psycopg2.Error as exc:
            raise ClusterError(f"cannot connect to the primary: {db.error_label(exc)}") from None
        # A commit waiting for a synchronous standby that is gone never returns, and no
        # statement_timeout ends that wait: the whole preparation is bounded on the client.
        bound = 4 * (s.statement_timeout + s.rto_conn_timeout) if s.statement_timeout else None
        try:
            with db.bounded(conn, bound) if bound else contextlib.nullcontext():
                identity = db.server_identity(conn, -1, 0)
                if identity.in_recovery:
                    raise ClusterError("the primary DSN leads to a server in recovery (a "
                                       "standby); point it at the primary or add "
                                       "target_session_attrs=read-write")
                self.outcome.primary_before = identity
                if s.init:
                    schema.init_primary(conn, s.schema, s.parallel_workers)
                schema.check_tables(conn, s.schema, s.parallel_workers)
                schema.truncate_worker_tables(conn, s.schema, s.parallel_workers)
        except psycopg2.Error as exc:
            why = db.error_label(exc) if not (bound and conn.closed) else (
                f"no answer within {bound:g} s (a synchronous standby that is gone holds "
                "every commit)")
            raise ClusterError(f"cannot prepare the primary: {why}") from None
        finally:
            conn.close()
        if s.repo_pgdsn:
            self.check_repo()
        if s.check_primary_latency:
            self.outcome.latency = self.measure_latency()

    def check_repo(self) -> None:
        s = self.scenario
        try:
            conn = db.connect(s.repo_pgdsn, "ptor-check", s.rto_conn_timeout, autocommit=False)
        except psycopg2.Error as exc:
            raise ClusterError(f"cannot connect to the repo: {db.error_label(exc)}") from None
        try:
            if s.init:
                pg_ledger.init_repo(conn, s.schema)
            missing = pg_ledger.missing_repo_tables(conn, s.schema)
            if missing:
                raise ClusterError(f"ptor's ledger tables are missing in the repo, or are "
                                   f"from an older ptor ({missing[0]}); run with --init to "
                                   f"create or upgrade them")
        except psycopg2.Error as exc:
            raise ClusterError(f"cannot prepare the repo: {db.error_label(exc)}") from None
        finally:
            conn.close()

    def measure_latency(self) -> dict:
        """Connect time over a few connects, and SELECT 1 round trips on one session."""
        s = self.scenario
        connects, round_trips = [], []
        for _ in range(min(5, s.latency_samples)):
            t0 = time.perf_counter()
            conn = db.connect(s.primary_pgdsn, "ptor-latency", s.rto_conn_timeout)
            connects.append(time.perf_counter() - t0)
            conn.close()
        conn = db.connect(s.primary_pgdsn, "ptor-latency", s.rto_conn_timeout)
        with conn.cursor() as cur:
            for _ in range(s.latency_samples):
                t0 = time.perf_counter()
                cur.execute("SELECT 1")
                cur.fetchone()
                round_trips.append(time.perf_counter() - t0)
        conn.close()
        return {"connect": latency_summary(connects), "select1": latency_summary(round_trips)}

    # --- the load ------------------------------------------------------------------------

    def run(self) -> dict:
        """Run the drill and return its report (also recorded in the ledger)."""
        s = self.scenario
        try:
            try:
                self.take_locks()
                self.check()
            except PtorError as exc:
                self.record_early_failure(str(exc))
                raise
            make_run_dir(self.run_dir)
            with self.open_ledger() as ledger:
                ledger.create_run(time.time(), s.as_public_dict())
                seed = s.seed if s.seed is not None else random.SystemRandom().randrange(2**31)
                self.outcome.phases["seed"] = seed
                self.load(seed)
                result = self.conclude()
        finally:
            self.release_locks()
        self.write_outputs(result)
        return result

    def conclude(self) -> dict:
        """Reconcile, judge, and record the verdict in the ledger: where a drill and a
        later `ptor reconcile` both end."""
        self.reconcile()
        self.outcome.lock_lost_to = self.primary_lock.lost_to
        self.outcome.lock_failed = self.primary_lock.failed
        self.outcome.lock_retaken = self.primary_lock.retaken
        result = report.build(self.outcome)
        self.ledger.finish_run(time.time(), result["verdict"], result)
        return result

    def record_early_failure(self, error: str) -> None:
        """A run that could not start (the cluster unreachable, another drill's lock)
        leaves its reason in its folder, so `ptor history` can say why."""
        error = self.scenario.redact(error)
        log.error("%s", error, extra={"file_only": True})  # the CLI says it on stderr
        with contextlib.suppress(OSError):
            make_run_dir(self.run_dir)
            report.write_json({"format": report.REPORT_FORMAT, "run_id": self.run_id,
                               "run_dir": os.path.abspath(self.run_dir), "verdict": None,
                               "error": error, "phases": dict(self.outcome.phases),
                               "scenario": self.scenario.as_public_dict()},
                              os.path.join(self.run_dir, "report.json"))

    def write_outputs(self, result: dict) -> None:
        """Every output of the run, for a drill and for `ptor reconcile` alike: report.json
        and the other files of the run's folder, then each export the scenario asks for.
        One that fails never skips the others; each failure is one sentence in
        `output_failures`."""
        s = self.scenario
        jobs = [("report.json in the run folder",
                 lambda: report.write_json(result, os.path.join(self.run_dir, "report.json"))),
                ("the run folder's files", lambda: exports.write_run_files(result,
                                                                           self.run_dir))]
        if s.report_json:
            jobs.append((f"--report-json {s.report_json}",
                         lambda: report.write_json(result, s.report_json)))
        if s.prometheus_file:
            jobs.append((f"--prometheus-file {s.prometheus_file}", lambda: exports.write_atomic(
                s.prometheus_file, exports.prometheus_text(result))))
        if s.junit_xml:
            jobs.append((f"--junit-xml {s.junit_xml}", lambda: exports.write_atomic(
                s.junit_xml, exports.junit_xml(result))))
        for what, job in jobs:
            try:
                not_drawn = job()
            except OSError as exc:
                self.output_failures.append(f"cannot write {what}: {exc.strerror or exc}")
                continue
            if isinstance(not_drawn, str):
                log.info("no timeline.png: %s", not_drawn)

    def reconcile_later(self) -> dict:
        """`ptor reconcile --run`: finish a run whose coordinator died (SIGKILL, a lost
        host) from its ledger and the primary alone. The run's own shape (workers, schema,
        payload size) comes from the ledger; the DSNs from this invocation, since the
        ledger keeps them with passwords masked."""
        s = self.scenario
        path = self.ledger_spec.sqlite_path
        if path and not os.path.exists(path):
            raise ClusterError(f"no embedded ledger for run {self.run_id} at {path}; give "
                               "the --report-dir it ran with, or --repo-pgdsn if it used one")
        try:
            self.take_locks()
            with self.open_ledger():
                stored = self.ledger.stored_scenario()
                if stored is None:
                    raise ClusterError(f"the ledger has no run {self.run_id}")
                self.scenario = s = dataclasses.replace(
                    s, parallel_workers=stored["parallel_workers"], schema=stored["schema"],
                    payload_bytes=stored["payload_bytes"],
                    full_data_validation=s.full_data_validation
                    or stored["full_data_validation"])
                self.outcome.scenario = s
                for at, name, _ in self.ledger.events():
                    if name.startswith("phase:"):
                        self.outcome.phases[name[len("phase:"):]] = at
                self.outcome.reconciled_later = True
                self.outcome.stop_reason = ("reconciled later by ptor reconcile: the run's "
                                            "coordinator did not finish it")
                self.replay_spill_file()
                result = self.conclude()
        finally:
            self.release_locks()
        self.write_outputs(result)
        return result

    def replay_spill_file(self) -> None:
        """A spill file left by a recorder that gave up on the repo goes into the ledger
        first (rows already there are skipped), so reconciliation sees every op."""
        path = self.ledger_spec.spill_path
        if not path or not os.path.exists(path):
            return
        try:
            rows = spill.replay(self.ledger, path)
        except psycopg2.Error as exc:
            raise ClusterError(f"cannot replay the spill file {path} into the repo: "
                               f"{db.error_label(exc)}") from None
        except ValueError as exc:  # not a file the recorder wrote, or damaged
            raise ClusterError(f"cannot replay the spill file: {exc}") from None
        os.unlink(path)
        log.info("replayed %d ledger rows from the spill file %s", rows, path)
        self.outcome.stop_reason += f"; {rows} ledger rows replayed from its spill file"

    def load(self, seed: int) -> None:
        s = self.scenario
        ctx = multiprocessing.get_context("spawn")
        q = messages.op_queue(ctx, QUEUE_MESSAGES)
        events = messages.op_queue(ctx)
        go, stop, abort = ctx.Event(), ctx.Event(), ctx.Event()
        board = WorkerBoard.create(ctx, s.parallel_workers)
        pipes = [ctx.Pipe(duplex=False) for _ in range(s.parallel_workers)]
        recorder = ctx.Process(
            target=run_recorder, name="ptor-recorder",
            args=(self.ledger_spec, q, {w: p[1] for w, p in enumerate(pipes)}, events,
                  os.getpid()))
        recorder.start()
        probe_board = ProbeBoard.create(ctx, s.parallel_workers)
        probe = ctx.Process(target=run_probe, name="ptor-probe", args=(
            ProbeSpec(s.primary_pgdsn, s.schema, s.rto_conn_timeout, s.statement_timeout),
            probe_board.array, events, stop, abort))
        probe.start()
        workers = []
        for spec in worker_specs(s, self.run_id, seed):
            proc = ctx.Process(target=run_worker, name=f"ptor-worker-{spec.worker}",
                               args=(spec, q, pipes[spec.worker][0], board.array,
                                     s.parallel_workers, go, stop, abort, events,
                                     probe_board.array))
            proc.start()
            workers.append(proc)
        watcher = LoadWatcher(s, board, self.progress, lambda: self.current_phase)
        sampler = CpuSampler([os.getpid(), recorder.pid] + [p.pid for p in workers])
        schedule = None
        try:
            self.phase("warmup")
            go.set()
            started = time.time()
            warm_end = started + s.warmup_duration
            schedule = self.schedule = FaultSchedule(self.fault_plan(), warm_end)
            self.outcome.faults_planned = len(schedule.plan)
            schedule.start()
            load_end = warm_end + s.duration
            in_load = False
            while True:
                now = time.time()
                if not in_load and now >= warm_end:
                    in_load = True
                    self.phase("load")
                for ordinal, at, name in schedule.newly_fired():
                    self.phase("fault" if ordinal == 1 else f"fault-{ordinal}", at=at,
                               action=name)
                self.collect_events(events, abort)
                if abort.is_set():
                    self.outcome.stop_reason = "recorder failed"
                    break
                if self.stop_signal:
                    self.outcome.interrupted = self.stop_signal
                    self.outcome.stop_reason = f"interrupted by {self.stop_signal}"
                    log.warning("%s: stopping the load, then draining and reconciling",
                                self.stop_signal)
                    break
                left = self.seconds_left()
                if left is not None and left <= 0:
                    self.outcome.deadline_reached = True
                    self.outcome.stop_reason = (f"max-run-seconds "
                                                f"({s.max_run_seconds:g} s) reached")
                    log.warning("max-run-seconds reached: stopping the load")
                    break
                if not recorder.is_alive():
                    abort.set()
                    self.outcome.errors.append("the recorder process died")
                    self.outcome.stop_reason = "recorder failed"
                    break
                if all(not p.is_alive() for p in workers):
                    self.outcome.stop_reason = "all workers ended"
                    break
                self.check_workers(workers, board)
                watcher.tick(now)
                self.outcome.connect_samples.append(
                    (now, board.total("connects") + probe_board.attempts))
                sampler.sample(now, q.qsize())
                if watcher.outage_seconds(now) > s.max_outage:
                    self.outcome.max_outage_exceeded = True
                    self.outcome.stop_reason = (f"no primary accepted writes for "
                                                f"{s.max_outage:g} s (max-outage)")
                    self.outcome.errors.append(self.outcome.stop_reason)
                    break
                if in_load and self.outage_observed(watcher, schedule, now):
                    self.outcome.stop_reason = (f"writes healthy for {s.observe_after:g} s "
                                                "after the outage")
                    break
                if now >= load_end and not schedule.running():
                    self.outcome.stop_reason = "duration reached"
                    break
                time.sleep(TICK)
        finally:
            watcher.clear_line()
            self.phase("drain")
            self.outcome.cpu_samples, self.outcome.cpu_cores = sampler.samples, sampler.cores
            self.outcome.queue_peak = sampler.queue_peak
            self.outcome.queue_capacity = QUEUE_MESSAGES
            stop.set()
            go.set()
            if schedule is not None:
                schedule.cancel_and_join()
                self.outcome.faults = list(schedule.records)
            self.stop_processes(workers, recorder, q, events, abort, board)
            probe.join(5)
            if probe.is_alive():
                probe.kill()
            self.collect_events(events, abort)  # the probe's last gap

    def fault_plan(self) -> list:
        """(seconds after warmup, trigger) for the failover command and every --fault."""
        s = self.scenario
        plan = []
        if s.failover_command:
            plan.append((s.failover_after, ShellCommand(
                s.failover_command, timeout=s.failover_timeout, redact=s.redact)))
        plan += [(at, LabAction(action, s.lab_dir)) for action, at in s.fault]
        return plan

    def outage_observed(self, watcher: LoadWatcher, schedule: FaultSchedule,
                        now: float) -> bool:
        """True once the outage that matters is over and writes were healthy for
        --observe-after seconds: the last fault's outage when ptor fires faults (after they
        all returned), else any outage (a person triggered the failover)."""
        if not schedule.done():
            return False
        began = watcher.last_outage_start
        if began is None or (schedule.last_at is not None and began < schedule.last_at):
            return False
        return watcher.healthy_for(now) >= self.scenario.observe_after

    def collect_events(self, events, abort) -> None:
        while True:
            try:
                event = events.get_nowait()
            except queue_module.Empty:
                return
            self.handle_event(event, abort)

    def worker_died(self, crash: messages.WorkerCrashed) -> None:
        """Record a worker's death once, whether its own report or its exit came first."""
        if any(c.worker == crash.worker for c in self.outcome.worker_crashes):
            return
        self.outcome.worker_crashes.append(crash)
        self.outcome.errors.append(f"worker {crash.worker} {crash.error}")
        log.error("worker %d %s; the others carry on", crash.worker, crash.error)

    def check_workers(self, workers: list, board: WorkerBoard) -> None:
        """A worker process gone without ending its stream (SIGKILL, OOM killer) is noticed
        at the next tick: reported, and taken out of outage tracking. Its ops in flight are
        durable intents without an outcome: in doubt, resolved at reconciliation."""
        for w, proc in enumerate(workers):
            if proc.exitcode is None or board.get(w, "ended"):
                continue
            board.set(w, "ended", 1)
            code = proc.exitcode
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            self.worker_died(messages.WorkerCrashed(w, f"died ({how})", ""))

    def handle_event(self, event, abort) -> None:
        if isinstance(event, messages.WorkerCrashed):
            self.worker_died(messages.WorkerCrashed(event.worker, f"crashed: {event.error}",
                                                    event.traceback))
        elif isinstance(event, messages.RecorderCrashed):
            abort.set()
            error = f"the recorder failed: {event.error}"
            if error not in self.outcome.errors:  # a give-up is told, then the exit
                self.outcome.errors.append(error)
                log.error("%s", error)
        elif isinstance(event, messages.RecorderFinished):
            self.outcome.recorder_totals = event
        elif isinstance(event, ProbeGap):
            self.outcome.probe_gaps.append(event)

    def stop_processes(self, workers, recorder, q, events, abort, board) -> None:
        """Workers end their stream and exit; then the recorder drains and exits.

        A worker that is draining (it sends no more ops) but still alive is only waiting
        for the recorder to take what it queued (a full queue, a process that exits only
        once its queue is flushed): it is waited for as long as the recorder lives, never
        killed with records the ledger has not taken. Only a worker still in its load
        (stuck past every statement bound) is killed after the grace: its ops then end in
        doubt (intents in sync repo mode; in async repo mode, rows past what the ledger
        holds of it, see Reconciler.add_worker)."""
        s = self.scenario
        grace = s.statement_timeout + s.rto_conn_timeout + 10.0
        deadline = time.monotonic() + grace
        for proc in workers:
            proc.join(max(0.1, deadline - time.monotonic()))
        for w, proc in enumerate(workers):
            while proc.is_alive() and board.get(w, "draining") and recorder.is_alive():
                self.collect_events(events, abort)
                proc.join(0.2)
            if proc.is_alive():
                log.error("%s did not stop in %.0f s; killing it", proc.name, grace)
                proc.kill()
                proc.join(5)
        if recorder.is_alive():
            q.put((messages.RECORDER_STOP,))
        while recorder.is_alive():
            self.collect_events(events, abort)
            recorder.join(0.2)
        self.collect_events(events, abort)
        if self.outcome.recorder_totals is None:
            # the last event may still be in flight after the process exited
            with contextlib.suppress(queue_module.Empty):
                self.handle_event(events.get(timeout=2), abort)
        if self.outcome.recorder_totals is None:
            raise RecorderError("the recorder did not finish writing the ledger; "
                                + "; ".join(self.outcome.errors or ["no reason given"]))

    # --- after the load ------------------------------------------------------------------

    def reconcile(self) -> None:
        s = self.scenario
        self.phase("reconcile")
        ledger = self.ledger
        try:
            ledger.analyze()
        except psycopg2.Error:  # a session the repo dropped while it was away
            ledger.reconnect()
            ledger.analyze()
        self.outcome.identities = ledger.identities()
        metrics = RunMetrics()
        for worker in range(s.parallel_workers):
            metrics.add_timings(worker, ledger.op_timings(worker))
        self.outcome.metrics = metrics
        budget = min(s.max_outage, 60.0)
        left = self.seconds_left()
        if left is not None:  # past the run's deadline, allow a short bounded check only
            budget = min(budget, max(left, 5.0))
        deadline = time.monotonic() + budget
        try:
            conn, identity = confirm_primary(s.primary_pgdsn, s.schema, s.rto_conn_timeout,
                                             deadline, s.statement_timeout)
        except ValidationIncomplete as exc:
            self.outcome.validation_error = s.redact(str(exc))
            return
        self.outcome.primary_after = identity
        try:
            self.outcome.findings = reconcile_run(
                conn, ledger, s.schema, s.parallel_workers, self.run_id, s.payload_bytes,
                s.full_data_validation, self.outcome.identities, identity,
                outcomes_only=s.async_repo_mode)
        except ValidationIncomplete as exc:
            self.outcome.validation_error = s.redact(str(exc))
        finally:
            conn.close()
        self.phase("report")
