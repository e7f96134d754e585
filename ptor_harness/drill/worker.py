"""A worker process: one table, one connection at a time, one op per transaction (or
--ops-per-transaction of them between BEGIN and COMMIT).

The worker's loop plans ops, makes their intents durable, paces them (--rate), hands each
to its client (client.py), which runs it and returns it completed, and stops when told.
Each op is journaled, intent then outcome (op_journal.py): in sync repo mode a harness
crash can leave an op in doubt but never missing from the ledger. The worker shares a few
live counters with the coordinator through `WorkerBoard` (board.py).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from typing import Optional

from .. import db
from ..config import WorkerSpec
from ..ops import FAILED, INDETERMINATE, OK, Identity
from ..retry import Backoff
from . import messages
from .board import WorkerBoard
from .client import Client
from .op_journal import OpJournal, Stopped
from .probe import ProbeBoard
from .schedule import Schedule
from .workload import Workload

BLOCK = 64  # ops planned (and, in sync mode, made durable) at a time, at least
BACKOFF_FIRST = 0.01  # retrying alone (the probe silent): from this ...
BACKOFF_MAX = 1.0  # ... to this, doubling
STOP_POLL = 0.01  # seconds between looks at the stop and abort flags


class Worker:
    """The loop of one worker; `run_worker` is its process entry point."""

    def aborted(self) -> bool:
        """Abort, or the coordinator is gone (SIGKILLed): a worker never loads a cluster
        that nobody watches."""
        return self.abort.is_set() or messages.coordinator_gone(self.alive)

    def stopping(self) -> bool:
        """Asked before every op, so it looks at the shared flags (flags.py) and polls the
        coordinator's pipe at most every STOP_POLL seconds: stopping stays prompt and
        the check costs the load nothing measurable. Once it has said yes it says yes
        for good: a caller that asks again right after must not be told no."""
        if self.told_to_stop:
            return True
        now = time.monotonic()
        if now - self.stop_polled < STOP_POLL:
            return False
        self.stop_polled = now
        self.told_to_stop = self.stop.is_set() or self.aborted()
        return self.told_to_stop

    def __init__(self, spec: WorkerSpec, queue, ack_conn, board: WorkerBoard, stop, abort,
                 alive, probe: Optional[ProbeBoard] = None):
        self.spec = spec
        self.probe = probe
        self.journal = OpJournal(spec.worker, queue, ack_conn, self.aborted)
        self.client = Client(spec, self.identity_read)
        self.board = board
        self.board_array = board.array
        self.ok_slot = board.slot(spec.worker, "ok")
        self.last_ok_slot = board.slot(spec.worker, "last_ok")
        self.connects_slot = board.slot(spec.worker, "connects")
        self.stop = stop
        self.abort = abort
        self.alive = alive  # messages.coordinator_gone
        self.stop_polled = 0.0
        self.told_to_stop = False
        self.workload = Workload(spec.seed, spec.insert_percent, spec.update_percent,
                                 spec.delete_percent)
        self.counts = {OK: 0, FAILED: 0, INDETERMINATE: 0}
        self.planned = 0
        # a block holds whole transactions (only --ops-per-worker cuts the last one short)
        n = spec.ops_per_transaction
        self.block_size = -(-BLOCK // n) * n
        # --rate: when each op is due (None: as fast as the worker can)
        self.schedule = Schedule(spec.rate, spec.seed, spec.ops_per_transaction) \
            if spec.rate > 0 else None

    def identity_read(self, identity: Identity) -> None:
        """The client read a server's identity: to the ledger, ahead of the ops it names."""
        self.journal.send((messages.IDENTITY, self.spec.worker, tuple(identity)))

    # --- connections -----------------------------------------------------------------

    def drop_connection(self) -> None:
        self.client.close()
        self.board.set(self.spec.worker, "connected", 0)

    def reconnect(self) -> None:
        """Connect to a writable primary. The first attempt is at once; after a failed one
        the worker waits for the probe's word that a primary took a write (probe.py), so
        it neither finds the new primary late nor storms a recovering cluster; if the
        probe has gone silent, it retries on its own with backoff."""
        delays = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
        while True:
            if self.stopping():
                raise Stopped()
            generation = self.probe.generation if self.probe is not None else 0.0
            if self.connect_once():
                return
            delay = delays.next()
            if self.probe is not None:
                self.probe.wait_for_primary(generation, delay, self.stopping)
            else:
                self.stop.wait(delay)

    def connect_once(self) -> bool:
        """One attempt at a session on a writable primary (Client.connect), counted."""
        self.board_array[self.connects_slot] += 1
        if not self.client.connect():
            return False
        self.board.set(self.spec.worker, "connected", 1)
        return True

    # --- ops -------------------------------------------------------------------------

    def settle(self, done: list) -> None:
        """Completed ops (one, or a transaction's, which share their ending) to the
        outbox, their keys back to the workload, and the board's counters after their
        acknowledgement or its absence (which ended the session)."""
        workload, counts, add = self.workload, self.counts, self.journal.add
        for op in done:
            outcome = op[6]
            workload.settle(op[2], op[3], outcome)
            counts[outcome] += 1
            add(op)
        first = done[0]
        t_end, outcome = first[5], first[6]
        if self.schedule is not None:
            self.schedule.done(first[4], t_end, outcome == OK, len(done))
        if outcome == OK:
            self.board_array[self.ok_slot] = counts[OK]
            self.board_array[self.last_ok_slot] = t_end
            if self.client.session is None:  # the pooler's new server could not be named
                self.board.set(self.spec.worker, "connected", 0)
        else:
            w = self.spec.worker
            self.board.set(w, outcome, counts[outcome])
            self.board.set(w, "last_bad", t_end)
            self.board.set(w, "connected", 0)

    def run_block(self, block: list) -> Optional[int]:
        """Execute a planned block (whole transactions); on stop, return the seq of the
        first op not sent."""
        step = self.spec.ops_per_transaction
        for start in range(0, len(block), step):
            seq = block[start][0]
            if self.stopping():
                return seq
            if self.client.session is None:
                try:
                    self.reconnect()
                except Stopped:
                    return seq
                if self.schedule is not None:  # no burst of what fell due meanwhile
                    self.schedule.skip_missed(time.time())
            if self.schedule is not None and not self.schedule.wait_turn(self.stopping):
                return seq
            if step == 1:
                self.settle([self.client.invoke(*block[start])])
            else:
                self.settle(self.client.invoke_transaction(block[start:start + step]))
        return None

    def plan_next(self) -> list:
        """The next block of ops, shorter or empty once --ops-per-worker is reached."""
        size = self.block_size
        if self.spec.ops_limit:
            size = min(size, self.spec.ops_limit - self.planned)
        self.planned += size
        return self.workload.plan(size) if size > 0 else []

    def run(self, go) -> None:
        """Connect, say so, wait for the start signal, then load until told to stop (or
        the op limit). The warmup begins once every worker is ready (Crew.wait_ready): a
        spawned worker takes seconds to start on a busy machine, and a fault fired at
        --failover-after must find the load running, not still importing."""
        if not self.stopping():
            self.connect_once()  # a failed attempt is retried once the load begins
        self.board.set(self.spec.worker, "ready", 1)
        while not go.wait(0.2):
            if self.stopping():
                return self.finish([])
        self.client.start()
        if self.schedule is not None:
            self.schedule.start(time.time())
        sync = self.spec.sync_ledger
        current = self.plan_next()
        current_no = self.journal.send_intents(current) if sync and current else -1
        while current:
            upcoming = self.plan_next()
            upcoming_no = self.journal.send_intents(upcoming) if sync and upcoming else -1
            if sync:
                self.journal.wait_durable(current_no)
            unsent_from = self.run_block(current)
            if unsent_from is not None:
                unsent = [op for op in current if op[0] >= unsent_from] + upcoming
                return self.finish(unsent)
            if sync:
                self.journal.flush()  # outcomes of this block travel before the next wait
            current, current_no = upcoming, upcoming_no
        return self.finish([])

    def finish(self, unsent: list) -> None:
        """Retract intents that were never sent, flush outcomes, and end the stream."""
        self.board.set(self.spec.worker, "draining", 1)
        self.workload.unplan(unsent)
        if unsent and self.spec.sync_ledger:
            self.journal.retract(unsent[0][0])
        self.drop_connection()
        self.journal.end()
        self.board.set(self.spec.worker, "ended", 1)


def run_worker(spec: WorkerSpec, queue, ack_conn, board_array, workers: int, go, stop, abort,
               alive, events, probe_array=None) -> None:
    """Process entry point (forked by the fork server): build the worker here, connections
    included."""
    messages.start_child(f"worker {spec.worker}")
    board = WorkerBoard(board_array, workers)
    probe = ProbeBoard(probe_array) if probe_array is not None else None
    worker = Worker(spec, queue, ack_conn, board, stop, abort, alive, probe)
    try:
        with contextlib.suppress(Stopped):
            worker.run(go)
        if worker.schedule is not None:
            plan = worker.schedule
            # three histograms of up to 369 buckets can outgrow one atomic pipe write
            messages.put_whole(events, messages.WorkerSchedule(
                spec.worker, plan.sent, plan.skipped, plan.lag.packed(),
                plan.from_due.packed(), plan.lag_writable.packed()))
    except BaseException as exc:  # report, with traceback, then end the stream if we can
        events.put(messages.WorkerCrashed(spec.worker, db.error_label(exc),
                                          messages.tail(traceback.format_exc())))
        board.set(spec.worker, "ended", 1)  # reported above; not a silent death
        with contextlib.suppress(Exception):
            worker.journal.end()
