"""The drill's processes: the recorder, the probe and the workers, started and stopped as one.

Forkserver context: a server process, started once per ptor process, imports ptor's
process modules once (PRELOAD) and forks each child from there, so a child starts without
an interpreter start and ptor's imports of its own (measured: about 0.2 s of CPU each, a
second or more per drill) and still inherits none of the coordinator's threads, sockets or
locks; every child opens its own connections. A child's parent is the fork server, which
outlives a killed coordinator for as long as any child runs, so the children learn that
the coordinator is gone from a pipe whose write end only it holds (`alive`,
messages.coordinator_gone); after the drill the crew stops the server and waits for it.
The crew owns the queue to the recorder, the event queue back to the coordinator, the live
boards and the go / stop / abort flags (flags.py: no lock a killed child could keep); it
turns what the processes report (a crash, the recorder's totals, the probe's outage) into
the run's outcome. The coordinator decides when; the crew does.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import queue as queue_module
import signal
import time
from collections.abc import Callable
from typing import Optional

from ..config import Scenario, worker_specs
from ..errors import RecorderError
from ..ledger import LedgerSpec
from ..outcome import DrillOutcome
from . import messages
from .background import GONE_TIMEOUT, TERM_GRACE, BackgroundSpec, run_background
from .board import WorkerBoard
from .cdc import CATCH_UP, CdcSpec, run_consumer
from .flags import crew_flags
from .observer import ObserverSpec, nodes_to_observe, run_observer
from .probe import ProbeBoard, ProbeSpec, gap_journaled, run_probe
from .recorder import run_recorder
from .worker import run_worker

log = logging.getLogger("ptor")
# what the fork server imports before it forks any child (the main module's imports too,
# which a child re-runs on start)
PRELOAD = ["ptor_harness.cli", "ptor_harness.drill.worker", "ptor_harness.drill.recorder",
           "ptor_harness.drill.probe", "ptor_harness.drill.observer",
           "ptor_harness.drill.background", "ptor_harness.drill.cdc"]
# --background-load starts this far into the warmup (at most half of it): ptor's load
# alone before, from which the report estimates ptor's own share of the WAL
PTOR_ALONE_SECONDS = 3.0
QUEUE_MESSAGES = 20000  # ops waiting for the recorder before a worker waits for it


class DrainWait:
    """A drain step that waits as long as the recorder lives (it must not drop records)
    says, every PATIENCE seconds, what it still waits for: an operator (and a post-mortem)
    can tell a slow repo from a wedged process."""

    PATIENCE = 30.0

    def __init__(self, what: str, backlog: Callable[[], str]) -> None:
        self.what, self.backlog = what, backlog
        self.since = self.told = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.told >= self.PATIENCE:
            self.told = now
            log.warning("the drain has waited %.0f s for %s (%s)", now - self.since,
                        self.what, self.backlog())


class Crew:
    """The processes of one drill and the channels between them."""

    def __init__(self, scenario: Scenario, ledger_spec: LedgerSpec, outcome: DrillOutcome,
                 seed: int, cdc: Optional[CdcSpec] = None,
                 journal: Optional[Callable[[float, str, dict], None]] = None) -> None:
        self.outcome = outcome
        self.journal = journal  # the run's journal (PhaseJournal.record): the probe's gaps
        conn, workers = scenario.connection, scenario.load.parallel_workers
        self.grace = conn.statement_timeout + conn.rto_conn_timeout + 10.0
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        self.queue = messages.op_queue(ctx, QUEUE_MESSAGES)
        self.events = messages.op_queue(ctx)
        self.pieces = messages.Assembler()  # large messages, put together again
        # no lock a death can keep
        self.go, self.stop, self.abort, self.cdc_stop = crew_flags(ctx)
        self.board = WorkerBoard.create(ctx, workers)
        self.probe_board = ProbeBoard.create(ctx, workers)
        # Kept for the whole drill: while the coordinator holds every pipe's read end too,
        # the recorder's acknowledgement to a killed worker is never a broken pipe.
        self.pipes = pipes = [ctx.Pipe(duplex=False) for _ in range(workers)]
        acks = {w: p[1] for w, p in enumerate(pipes)}
        if cdc is not None:
            self.cdc_pipe = ctx.Pipe(duplex=False)
            acks[messages.CONSUMER] = self.cdc_pipe[1]
        # Only the coordinator holds the write end: closed when it exits, so every child
        # can tell (messages.coordinator_gone)
        alive, self.alive = ctx.Pipe(duplex=False)
        self.recorder = ctx.Process(
            target=run_recorder, name="ptor-recorder",
            args=(ledger_spec, self.queue, acks, self.events, alive))
        self.probe = ctx.Process(target=run_probe, name="ptor-probe", args=(
            ProbeSpec(conn.primary_pgdsn, conn.schema, conn.rto_conn_timeout,
                      conn.statement_timeout),
            self.probe_board.array, self.events, self.stop, self.abort, alive))
        nodes, self.nodes_from = nodes_to_observe(scenario)
        outcome.watching([n.name for n in nodes], self.nodes_from)
        self.observer = ctx.Process(
            target=run_observer, name="ptor-observer",
            args=(ObserverSpec(nodes, scenario.observer.observe_interval), self.queue,
                  self.stop, self.events, alive)) if nodes else None
        self.consumer = ctx.Process(
            target=run_consumer, name="ptor-cdc",
            args=(cdc, self.queue, self.cdc_pipe[0], self.cdc_stop, self.abort, alive,
                  self.events)) if cdc is not None else None
        load = scenario.load
        self.background = ctx.Process(
            target=run_background, name="ptor-background",
            args=(BackgroundSpec(load.background_load,
                                 min(PTOR_ALONE_SECONDS, load.warmup_duration / 2),
                                 scenario.secrets),
                  self.go, self.stop, self.events, alive)) if load.background_load else None
        self.workers = [
            ctx.Process(target=run_worker, name=f"ptor-worker-{spec.worker}",
                        args=(spec, self.queue, pipes[spec.worker][0], self.board.array,
                              workers, self.go, self.stop, self.abort, alive, self.events,
                              self.probe_board.array))
            for spec in worker_specs(scenario, outcome.run_id, seed)]

    def start(self) -> None:
        """Start every process; the workers wait for `go`."""
        self.recorder.start()
        self.probe.start()
        for proc in self.workers:
            proc.start()
        if self.observer is not None:
            self.observer.start()
        if self.consumer is not None:
            self.consumer.start()
        if self.background is not None:
            self.background.start()

    def wait_ready(self, timeout: float, interrupted) -> bool:
        """Until every worker is ready (started, its first connect attempt made) or gone,
        the recorder failed, `interrupted()` says so, or `timeout` seconds passed; True if
        every live worker was ready. The warmup, and with it the fault schedule, starts
        after this: spawning and importing takes a worker seconds on a busy machine."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            waiting = [w for w, proc in enumerate(self.workers)
                       if not self.board.get(w, "ready") and proc.exitcode is None]
            if not waiting:
                return True
            if self.abort.is_set() or interrupted() or time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    @property
    def pids(self) -> list[int]:
        """ptor's own processes that carry the load (for the CPU sampler)."""
        return [os.getpid(), self.recorder.pid] + [p.pid for p in self.workers]

    def connect_attempts(self) -> int:
        """Connection attempts so far, by the workers and the probe."""
        return self.board.total("connects") + self.probe_board.attempts

    def all_workers_ended(self) -> bool:
        return all(not p.is_alive() for p in self.workers)

    def poll(self) -> None:
        """Take in what the processes reported, and notice a worker or a recorder gone
        without a word."""
        self.collect_events()
        self.check_workers()
        if not self.abort.is_set() and not self.recorder.is_alive():
            self.abort.set()
            self.outcome.error("the recorder process died")

    def collect_events(self) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue_module.Empty:
                return
            self.handle_event(event)

    def handle_event(self, event) -> None:
        """An event from a process: control (pieces, crashes) is the crew's; the rest is
        news for the outcome."""
        if isinstance(event, messages.Piece):  # a part of a large message (put_whole)
            whole = self.pieces.add(event)
            if whole is not None:
                self.handle_event(whole)
        elif isinstance(event, messages.WorkerCrashed):
            self.worker_died(messages.WorkerCrashed(event.worker, f"crashed: {event.error}",
                                                    event.traceback))
        elif isinstance(event, messages.CdcCrashed):
            self.outcome.error(f"the CDC consumer crashed: {event.error}")
            log.error("the CDC consumer crashed: %s", event.error)
        elif isinstance(event, messages.RecorderCrashed):
            self.abort.set()
            error = f"the recorder failed: {event.error}"
            if self.outcome.error(error):  # a give-up is told, then the exit
                log.error("%s", error)
        elif not self.outcome.heard(event):
            log.warning("an event nobody handles: %s", type(event).__name__)
        elif isinstance(event, messages.ProbeGap) and self.journal is not None:
            self.journal(*gap_journaled(event))

    def worker_died(self, crash: messages.WorkerCrashed) -> None:
        """Record a worker's death once, whether its own report or its exit came first."""
        if self.outcome.worker_crashed(crash):
            log.error("worker %d %s; the others carry on", crash.worker, crash.error)

    def check_workers(self) -> None:
        """A worker process gone without ending its stream (SIGKILL, OOM killer) is noticed
        at the next tick: reported, and taken out of outage tracking. Its ops in flight are
        durable intents without an outcome: in doubt, resolved at reconciliation."""
        for w, proc in enumerate(self.workers):
            if proc.exitcode is None or self.board.get(w, "ended"):
                continue
            self.board.set(w, "ended", 1)
            code = proc.exitcode
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            self.worker_died(messages.WorkerCrashed(w, f"died ({how})", ""))

    def stop_all(self) -> None:
        """Workers end their stream and exit; then the recorder drains and exits; then the
        probe. Raises RecorderError when the ledger was not finished.

        A worker that is draining (it sends no more ops) but still alive is only waiting
        for the recorder to take what it queued (a full queue, a process that exits only
        once its queue is flushed): it is waited for as long as the recorder lives, never
        killed with records the ledger has not taken. Only a worker still in its load
        (stuck past every statement bound) is killed after the grace: its ops then end in
        doubt (intents in sync repo mode; in async repo mode, rows past what the ledger
        holds of it, see Reconciler.add_worker)."""
        self.stop.set()
        self.go.set()
        deadline = time.monotonic() + self.grace
        for proc in self.workers:
            proc.join(max(0.1, deadline - time.monotonic()))
        for w, proc in enumerate(self.workers):
            waiting = DrainWait(f"worker {w} to hand over its records", self.backlog)
            while proc.is_alive() and self.board.get(w, "draining") and \
                    self.recorder.is_alive():
                self.collect_events()
                proc.join(0.2)
                waiting.tick()
            if proc.is_alive():
                log.error("%s did not stop in %.0f s; killing it", proc.name, self.grace)
                proc.kill()
                proc.join(5)
        self.stop_background()
        self.stop_consumer()  # after the workers: it reads up to their last write
        self.stop_observer()  # its last samples reach the recorder before the stop does
        try:
            self.stop_recorder()
        finally:
            self.probe.join(5)
            if self.probe.is_alive():
                self.probe.kill()
            self.collect_events()  # the probe's last gap
            self.stop_fork_server()

    def backlog(self) -> str:
        """What the drain is up against, for DrainWait."""
        alive = [str(w) for w, p in enumerate(self.workers) if p.is_alive()]
        return (f"{self.queue.qsize()} of {QUEUE_MESSAGES} messages queued; workers still "
                f"running: {', '.join(alive) or 'none'}")

    def stop_fork_server(self) -> None:
        """The fork server exits once the coordinator and every child have closed its
        pipe; end it here and wait for it, so that no process of the drill outlives the
        coordinator (the next drill of a campaign starts another). Only when every child
        has exited: the server waits for them. `_stop` is multiprocessing's own way, kept
        since Python 3.4; without it the server still exits with the coordinator."""
        children = [self.recorder, self.probe, *self.workers, self.observer, self.background,
                    self.consumer]
        if any(p is not None and p.is_alive() for p in children):
            return
        server = getattr(multiprocessing.forkserver, "_forkserver", None)
        with contextlib.suppress(AttributeError, OSError):
            server._stop()

    def stop_background(self) -> None:
        """The background load ends on `stop` (its process ends every command's group,
        TERM then KILL, and waits for the last member); a process that does not report
        within its own bounds is killed, and the report says it did not."""
        if self.background is not None:
            self.end_process(self.background, TERM_GRACE + GONE_TIMEOUT + 10.0,
                             "the background load's process",
                             lambda: self.outcome.background is not None)

    def end_process(self, proc, seconds: float, what: str,
                    reported: Callable[[], bool]) -> None:
        """Wait up to `seconds` for a process that ends on its own (taking in events
        meanwhile); kill it if it does not, and say so; then give its last word, if it has
        not come (`reported`), a moment more."""
        deadline = time.monotonic() + seconds
        while proc.is_alive() and time.monotonic() < deadline:
            self.collect_events()
            proc.join(0.2)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
            self.outcome.error(f"{what} did not stop and was killed")
        self.collect_events()
        if not reported():
            with contextlib.suppress(queue_module.Empty):
                self.handle_event(self.events.get(timeout=2))

    def stop_observer(self) -> None:
        """The observer ends on `stop` within a few intervals; one that does not is killed
        (its samples are a view of the drill, never part of the verdict's proof)."""
        if self.observer is None:
            return
        self.observer.join(10)
        if self.observer.is_alive():
            self.observer.kill()
            self.observer.join(5)
            self.outcome.observer.failure = "the node observer did not stop and was killed"
        elif self.observer.exitcode:
            self.outcome.observer.failure = (f"the node observer exited with status "
                                             f"{self.observer.exitcode}")

    def stop_consumer(self) -> None:
        """The CDC consumer reads on until it has the load's last write (CATCH_UP seconds
        at most), has the recorder make its changes durable, reports and exits."""
        if self.consumer is not None:
            self.cdc_stop.set()
            self.end_process(self.consumer, CATCH_UP + self.grace, "the CDC consumer",
                             lambda: self.outcome.cdc is not None)

    def stop_recorder(self) -> None:
        recorder, outcome = self.recorder, self.outcome
        if recorder.is_alive():
            self.queue.put((messages.RECORDER_STOP, messages.COORDINATOR, None))
        waiting = DrainWait("the recorder to write the ledger's last records", self.backlog)
        while recorder.is_alive():
            self.collect_events()
            recorder.join(0.2)
            waiting.tick()
        self.collect_events()
        if outcome.recorder_totals is None:
            # the last event may still be in flight after the process exited
            with contextlib.suppress(queue_module.Empty):
                self.handle_event(self.events.get(timeout=2))
        if outcome.recorder_totals is None:
            raise RecorderError("the recorder did not finish writing the ledger; "
                                + "; ".join(outcome.errors or ["no reason given"]))
