"""A worker process: one table, one connection at a time, one op per transaction (or
--ops-per-transaction of them between BEGIN and COMMIT).

Each op is journaled, intent then outcome (op_journal.py): in sync repo mode a harness
crash can leave an op in doubt but never missing from the ledger. The worker shares a few
live counters with the coordinator through `WorkerBoard` (board.py).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from typing import Optional

import psycopg2

from .. import bounds, db
from ..acknowledgement import acknowledgement_notice, classify, judge
from ..config import WorkerSpec
from ..ops import DELETE, FAILED, INDETERMINATE, OK
from ..retry import Backoff
from ..schema import payload
from . import messages
from .board import WorkerBoard
from .op_journal import OpJournal, Stopped
from .probe import ProbeBoard
from .schedule import Schedule
from .statements import OpStatements, prepared_on, send_op
from .workload import Workload

BLOCK = 64  # ops planned (and, in sync mode, made durable) at a time, at least
NOT_SENT = "not sent: an earlier op of its transaction failed"
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
        self.conn = None
        self.cur = None
        self.fd = -1  # the session's socket, for the op bound
        self.session = 0
        self.server_started: Optional[float] = None  # of the server the session is on
        self.counts = {OK: 0, FAILED: 0, INDETERMINATE: 0}
        self.planned = 0
        w = spec.worker
        t = spec.table
        self.statements = OpStatements(t)
        self.sql = self.statements.of(pooled=False)  # both chosen again at each connect
        self.begin_sql = self.statements.of(pooled=False, begin=True)
        # a block holds whole transactions (only --ops-per-worker cuts the last one short)
        n = spec.ops_per_transaction
        self.block_size = -(-BLOCK // n) * n
        self.pooled = False  # the session goes through a pooler: each op names its server
        self.app_name = f"ptor-worker-{w}"
        self.op_bound = bounds.OpBound(spec.statement_timeout + spec.rto_conn_timeout,
                                       spec.statement_timeout > 0)
        # --rate: when each op is due (None: as fast as the worker can)
        self.schedule = Schedule(spec.rate, spec.seed, spec.ops_per_transaction) \
            if spec.rate > 0 else None

    # --- connections -----------------------------------------------------------------

    def drop_connection(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = self.cur = None
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
        """One attempt to open a session on a writable primary; False if none was had (no
        server, or a standby answered)."""
        self.board_array[self.connects_slot] += 1
        try:
            conn = db.connect(self.spec.primary_pgdsn, self.app_name,
                              self.spec.rto_conn_timeout, self.spec.statement_timeout)
            try:
                self.session += 1
                with bounds.bounded(conn, self.spec.rto_conn_timeout):
                    identity = db.server_identity(conn, self.spec.worker, self.session)
                    pooled = db.behind_pooler(conn)
                    prepared = not (pooled or identity.in_recovery) and \
                        prepared_on(conn, self.statements.prepare)
            except Exception:
                conn.close()
                raise
        except psycopg2.Error:
            return False
        self.journal.send((messages.IDENTITY, tuple(identity)))
        if identity.in_recovery:
            conn.close()  # a standby: keep looking for the primary
            return False
        self.server_started = identity.started_at
        self.pooled = pooled
        self.sql = self.statements.of(pooled, prepared=prepared)
        self.begin_sql = self.statements.of(pooled, True, prepared)
        self.conn, self.cur, self.fd = conn, conn.cursor(), conn.fileno()
        self.board.set(self.spec.worker, "connected", 1)
        return True

    # --- ops -------------------------------------------------------------------------

    def execute(self, seq: int, kind: str, key: int) -> None:
        """Run one op in its own transaction and journal its outcome."""
        spec = self.spec
        data = payload(spec.run_tag, spec.worker, seq, spec.payload_bytes) if kind != DELETE \
            else None
        t_start = time.time()
        error = None
        rows = prev_seq = started = None
        self.op_bound.begin(self.fd, t_start)
        try:
            rows, prev_seq, started = send_op(self.cur, self.sql, self.pooled, kind, key, seq,
                                              data, t_start)
            outcome, error = OK, acknowledgement_notice(self.conn)
        except psycopg2.Error as exc:
            outcome = classify(exc, sent=True)
            error = db.error_label(exc)
        self.op_bound.end()
        t_end = time.time()
        if error is not None:
            outcome, error = self.judge_acknowledgement(outcome, error, t_end - t_start)
            if outcome != OK:
                rows = prev_seq = None  # as for any op without an acknowledgement
        if self.schedule is not None:
            self.schedule.done(t_start, t_end, outcome == OK)
        session = self.session
        if self.pooled and outcome == OK and started != self.server_started:
            session = self.follow_server(started, t_end)
        self.record(seq, kind, key, t_start, t_end, outcome, error, session, rows, prev_seq)
        self.count(outcome, t_end)

    def execute_transaction(self, ops: list) -> None:
        """Run ops (seq, kind, key) between BEGIN and COMMIT, the COMMIT their one
        acknowledgement: all ok, failed or in doubt together. An error before the COMMIT
        was sent fails them all for certain (a server commits nothing without it); ops
        after the failing one are never sent, and journaled failed with no effect."""
        spec, cur, pooled = self.spec, self.cur, self.pooled
        sent: list[tuple] = []  # (seq, kind, key, t_start, rows, prev_seq)
        error = started = None
        sql = self.begin_sql
        try:
            for seq, kind, key in ops:
                data = payload(spec.run_tag, spec.worker, seq, spec.payload_bytes) \
                    if kind != DELETE else None
                t_start = time.time()
                self.op_bound.begin(self.fd, t_start)
                sent.append((seq, kind, key, t_start, None, None))
                rows, prev_seq, server = send_op(cur, sql, pooled, kind, key, seq, data,
                                                 t_start)
                sent[-1] = (seq, kind, key, t_start, rows, prev_seq)
                started = server if server is not None else started
                sql = self.sql
            t_commit = time.time()
            self.op_bound.begin(self.fd, t_commit)
            try:
                cur.execute("COMMIT")
                outcome, error = OK, acknowledgement_notice(self.conn)
            except psycopg2.Error as exc:
                outcome, error = classify(exc, sent=True), db.error_label(exc)
        except psycopg2.Error as exc:  # before the COMMIT: rolled back, nothing applied
            outcome, error = FAILED, db.error_label(exc)
            t_commit = time.time()
        self.op_bound.end()
        t_end = time.time()
        outcome, error = self.judge_acknowledgement(outcome, error, t_end - t_commit)
        if self.schedule is not None:
            self.schedule.done(sent[0][3], t_end, outcome == OK, len(ops))
        session = self.session
        if pooled and outcome == OK and started != self.server_started:
            session = self.follow_server(started, t_end)
        for seq, kind, key, t_start, rows, prev_seq in sent:
            if outcome != OK:
                rows = prev_seq = None
            self.record(seq, kind, key, t_start, t_end, outcome, error, session, rows,
                        prev_seq)
        for seq, kind, key in ops[len(sent):]:
            self.record(seq, kind, key, t_end, t_end, FAILED, NOT_SENT, session, None, None)
        self.count(outcome, t_end)

    def judge_acknowledgement(self, outcome: str, error: Optional[str],
                              took: float) -> tuple[str, Optional[str]]:
        """acknowledgement.judge, with this session's own statement timeout (none behind a
        pooler: db.connect sets it only on a connection of ptor's own)."""
        return judge(outcome, error, took, 0.0 if self.pooled else self.spec.statement_timeout)

    def record(self, seq: int, kind: str, key: int, t_start: float, t_end: float,
               outcome: str, error: Optional[str], session: int, rows: Optional[int],
               prev_seq: Optional[int]) -> None:
        """One op's outcome, to the outbox (and its key back to the workload)."""
        self.workload.settle(kind, key, outcome)
        self.counts[outcome] += 1
        self.journal.add((self.spec.worker, seq, kind, key, t_start, t_end, outcome, error,
                          session, rows, prev_seq))

    def count(self, outcome: str, t_end: float) -> None:
        """The board's counters after an acknowledgement (or its absence, which also ends
        the session: the next op connects anew)."""
        if outcome == OK:
            self.board_array[self.ok_slot] = self.counts[OK]
            self.board_array[self.last_ok_slot] = t_end
        else:
            w = self.spec.worker
            self.board.set(w, outcome, self.counts[outcome])
            self.board.set(w, "last_bad", t_end)
            self.drop_connection()

    def follow_server(self, started: Optional[float], acked_at: float) -> int:
        """The session number of an op just acknowledged whose server may not be the one
        the session's identity names (`started`: its postmaster's start, as the op returned
        it; None for an update or delete that matched no row, which returned nothing).

        A different server (a transaction pooler moved the connection) begins a new
        session, whose identity is read at once and counts from the op's acknowledgement.
        Should it come from yet another server (the pooler moved again in between), the
        op gets a session with no identity: its server unknown, never a wrong one. A
        failed read drops the connection; the op stays acknowledged."""
        try:
            with bounds.bounded(self.conn, self.spec.rto_conn_timeout):
                if started is None:  # rare: the op changed no row
                    self.cur.execute(f"SELECT {db.SERVER_STARTED_SQL}")
                    started = self.cur.fetchone()[0]
                    if started == self.server_started:
                        return self.session
                self.session += 1
                op_session = self.session
                identity = db.server_identity(self.conn, self.spec.worker, self.session)
        except psycopg2.Error:
            self.drop_connection()
            self.session += 1  # the op's server is unknown; the next connect starts anew
            return self.session
        if identity.started_at == started:
            identity = identity._replace(at=acked_at)
        else:
            self.session += 1
            identity = identity._replace(session=self.session)
        self.journal.send((messages.IDENTITY, tuple(identity)))
        # a server that cannot say when it started must not make every op ask again
        self.server_started = identity.started_at if identity.started_at is not None \
            else started
        return op_session

    def run_block(self, block: list) -> Optional[int]:
        """Execute a planned block (whole transactions); on stop, return the seq of the
        first op not sent."""
        step = self.spec.ops_per_transaction
        for start in range(0, len(block), step):
            seq = block[start][0]
            if self.stopping():
                return seq
            if self.conn is None:
                try:
                    self.reconnect()
                except Stopped:
                    return seq
                if self.schedule is not None:  # no burst of what fell due meanwhile
                    self.schedule.skip_missed(time.time())
            if self.schedule is not None and not self.schedule.wait_turn(self.stopping):
                return seq
            if step == 1:
                self.execute(*block[start])
            else:
                self.execute_transaction(block[start:start + step])
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
        self.op_bound.start()
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
    messages.ignore_stop_signals()
    board = WorkerBoard(board_array, workers)
    probe = ProbeBoard(probe_array) if probe_array is not None else None
    worker = Worker(spec, queue, ack_conn, board, stop, abort, alive, probe)
    try:
        with contextlib.suppress(Stopped):
            worker.run(go)
        if worker.schedule is not None:
            plan = worker.schedule
            events.put(messages.WorkerSchedule(spec.worker, plan.sent, plan.skipped,
                                               plan.lag.packed(), plan.from_due.packed()))
    except BaseException as exc:  # report, with traceback, then end the stream if we can
        events.put(messages.WorkerCrashed(spec.worker, db.error_label(exc),
                                          messages.tail(traceback.format_exc())))
        board.set(spec.worker, "ended", 1)  # reported above; not a silent death
        with contextlib.suppress(Exception):
            worker.journal.end()
