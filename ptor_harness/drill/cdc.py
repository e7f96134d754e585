"""The CDC consumer (--cdc-slot): a process beside the load that reads a logical
replication slot the way Debezium or a logical subscription does, so the drill can say
whether the slot survived the failover and which changes a downstream missed.

It reads the slot through the primary endpoint (a multi-host DSN or a proxy leads it to the
new primary after a failover, as it leads the workers) with psycopg2's
LogicalReplicationConnection, decodes the changes to ptor's tables (cdc_decode.py) and
sends them, with their commit LSN, to the recorder like every other ledger record. Only
once the recorder has made them durable does it confirm their position to the server
(`send_feedback`): a change it confirmed is in the ledger, whatever dies next. After an
outage it connects again and resumes from the slot's confirmed position on whatever
server is primary; a server without the slot is noted and tried again.

At the drain it reads on until it has what the server had written when the load ended
(CATCH_UP seconds at most), then reports its connections and confirmations
(messages.CdcFinished).
"""

from __future__ import annotations

import contextlib
import select
import time
import traceback
from dataclasses import dataclass
from typing import Optional

import psycopg2
from psycopg2.extras import LogicalReplicationConnection

from .. import db
from ..retry import Backoff
from . import messages
from .cdc_decode import decoder

BATCH_CHANGES = 64  # changes per message to the recorder: one atomic pipe write
FLUSH_EVERY = 0.02  # seconds a received change may wait for its batch
CATCH_UP = 15.0  # seconds at the drain to read what the load wrote
ACK_WAIT = 0.05  # seconds between looks at the stop flags while the recorder commits
STATUS_INTERVAL = 1  # seconds between status messages to the server
KEEP_CONNECTIONS = 50  # connection attempts the report lists (the first, and the latest)


def parse_lsn(text: str) -> int:
    """'16/B374D848' -> its 64-bit position."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class CdcSpec:
    """What the consumer needs to know."""

    dsn: str
    schema: str
    slot: str
    plugin: str
    publication: str
    since_lsn: int  # changes committed before this are an earlier run's (preflight)
    timeout: float  # one connect attempt (rto-conn-timeout)

    def options(self) -> dict:
        if self.plugin == "pgoutput":
            return {"proto_version": "1", "publication_names": self.publication}
        return {"include-xids": "0"}


def spec_for(scenario, since: Optional[int]) -> Optional[CdcSpec]:
    """The consumer's spec for a drill with --cdc-slot (None without one)."""
    cdc, c = scenario.cdc, scenario.connection
    if cdc.cdc_slot is None or since is None:
        return None
    return CdcSpec(c.primary_pgdsn, c.schema, cdc.cdc_slot, cdc.cdc_plugin,
                   cdc.cdc_publication, since, c.rto_conn_timeout)


class Consumer:
    """The consumer's loop; `run_consumer` is its process entry point."""

    def __init__(self, spec: CdcSpec, queue, ack_conn, stop, abort, alive) -> None:
        self.spec = spec
        self.queue, self.ack_conn = queue, ack_conn
        self.stop, self.abort, self.alive = stop, abort, alive
        self.conn = self.cur = None
        self.decoder = decoder(spec.plugin, spec.schema)
        self.number = 0  # connections so far
        self.connections: list[dict] = []
        self.confirmed: list[tuple[float, int]] = []  # (at, LSN) of every confirmation
        self.received = 0
        self.transaction: list[tuple] = []  # changes of the transaction being read
        self.open = False  # between a transaction's BEGIN and its COMMIT
        self.batch: list[tuple] = []  # changes the recorder has not had yet
        self.batch_since = 0.0
        self.confirmable: Optional[int] = None  # what may be confirmed once `batch` is in
        self.blocks = 0
        self.target: Optional[int] = None  # at the drain: the LSN to read up to
        self.catch_up_until: Optional[float] = None  # set once told to stop
        self.caught_up = False
        self.asked = 0.0  # when the server was last asked for its WAL's end

    # --- connections ---------------------------------------------------------------------

    def connect(self) -> bool:
        """One attempt at a replication session on the slot; False (noted) if none."""
        self.number += 1
        record: dict = {"connection": self.number, "at": time.time(), "server": None,
                        "system_id": None, "timeline": None, "error": None}
        self.connections.append(record)
        if len(self.connections) > KEEP_CONNECTIONS:  # the first and the latest are told
            del self.connections[1]
        try:
            conn = db.connect(self.spec.dsn, "ptor-cdc", self.spec.timeout,
                              connection_factory=LogicalReplicationConnection)
        except psycopg2.Error as exc:
            record["error"] = db.error_label(exc)
            return False
        try:
            cur = conn.cursor()
            cur.execute("IDENTIFY_SYSTEM")
            system_id, timeline, _position, _db = cur.fetchone()
            record.update(server=f"{conn.info.host}:{conn.info.port}", system_id=str(system_id),
                          timeline=int(timeline))
            # from this run's start on: a slot made before ptor's publication cannot decode
            # its older changes (pgoutput looks the publication up as of each change), and
            # they are no run's of this drill; a slot that confirmed more starts there
            cur.start_replication(slot_name=self.spec.slot, decode=False,
                                  start_lsn=self.spec.since_lsn, options=self.spec.options(),
                                  status_interval=STATUS_INTERVAL)
        except psycopg2.Error as exc:
            record["error"] = db.error_label(exc)
            with contextlib.suppress(Exception):
                conn.close()
            return False
        self.conn, self.cur = conn, cur
        self.transaction, self.open = [], False
        return True

    def disconnect(self, error: Optional[str]) -> None:
        if error and self.connections:
            self.connections[-1]["lost"] = {"at": time.time(), "error": error}
        with contextlib.suppress(Exception):
            self.conn.close()
        self.conn = self.cur = None
        self.transaction, self.open = [], False  # one cut short is sent again, whole

    # --- reading -------------------------------------------------------------------------

    def take(self, msg) -> None:
        """One message: a transaction's changes are held until its commit, then batched
        with the commit's LSN; only a commit moves what may be confirmed (never a position
        inside a transaction, which the server would then not send again)."""
        decoded = self.decoder.decode(msg.payload, msg.data_start)
        if decoded.begin:
            self.transaction, self.open = [], True
        elif decoded.changes:
            self.transaction.extend(decoded.changes)
        elif decoded.commit_lsn is not None:
            now = time.time()
            if decoded.commit_lsn >= self.spec.since_lsn and self.transaction:
                if not self.batch:
                    self.batch_since = now
                self.batch += [(*change, decoded.commit_lsn, now, self.number)
                               for change in self.transaction]
                self.received += len(self.transaction)
            self.transaction, self.open = [], False
            self.confirmable = decoded.commit_lsn

    def flush(self) -> None:
        """Hand the batch to the recorder, wait until it is durable, then confirm it."""
        batch, self.batch = self.batch, []
        for start in range(0, len(batch), BATCH_CHANGES):
            self.blocks += 1
            self.queue.put((messages.CDC, messages.CONSUMER,
                            (self.blocks, batch[start:start + BATCH_CHANGES])))
        if batch:
            self.wait_durable(self.blocks)
        if self.confirmable is not None and self.cur is not None:
            self.cur.send_feedback(flush_lsn=self.confirmable, force=True)
            self.confirmed.append((time.time(), self.confirmable))
            self.confirmable = None

    def wait_durable(self, block: int) -> None:
        while True:
            if self.ack_conn.poll(ACK_WAIT):
                if self.ack_conn.recv() >= block:
                    return
            elif self.abort.is_set() or messages.coordinator_gone(self.alive):
                raise Stopped()

    def read(self) -> None:
        """Read what the server has now; flush when the batch is due."""
        msg = self.cur.read_message()
        while msg is not None:
            self.take(msg)
            if len(self.batch) >= BATCH_CHANGES * 8:
                self.flush()
            msg = self.cur.read_message()
        if self.batch and time.time() - self.batch_since >= FLUSH_EVERY or \
                self.confirmable is not None and not self.batch:
            self.flush()
        if self.target is not None and time.monotonic() - self.asked >= 0.2:
            self.asked = time.monotonic()
            self.cur.send_feedback(reply=True, force=True)  # a keepalive: the WAL decoded
        select.select([self.conn], [], [], FLUSH_EVERY)

    # --- the loop ------------------------------------------------------------------------

    def done(self) -> bool:
        """Told to stop, and either caught up with the load's last write or out of time."""
        if self.abort.is_set() or messages.coordinator_gone(self.alive):
            return True
        if not self.stop.is_set():
            return False
        now = time.monotonic()
        if self.catch_up_until is None:
            self.catch_up_until = now + CATCH_UP
            self.target = self.end_of_wal()
        if self.target is not None and self.cur is not None and not self.batch and \
                self.cur.wal_end >= self.target and not self.open:
            self.caught_up = True
            return True
        return now >= self.catch_up_until

    def end_of_wal(self) -> Optional[int]:
        """Where the primary's WAL ends now (the load has ended): what to read up to."""
        try:
            conn = db.connect(self.spec.dsn, "ptor-cdc", self.spec.timeout,
                              self.spec.timeout)
        except psycopg2.Error:
            return None
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_current_wal_lsn()::text")
                return parse_lsn(cur.fetchone()[0])
        except psycopg2.Error:
            return None
        finally:
            conn.close()

    def run(self) -> None:
        """Read until done; after a failed connect or a lost session, wait (backing off
        until a change arrives again) and connect anew."""
        delays = Backoff(0.05, 1.0)
        while not self.done():
            if self.cur is None and not self.connect():
                self.abort.wait(delays.next())  # not `stop`: catching up still waits
                continue
            received = self.received
            try:
                self.read()
            except psycopg2.Error as exc:
                self.disconnect(db.error_label(exc))
                self.abort.wait(delays.next())
            if self.received > received:
                delays = Backoff(0.05, 1.0)
        if self.cur is not None:
            with contextlib.suppress(psycopg2.Error):
                self.flush()
        self.disconnect(None)

    def finished(self) -> messages.CdcFinished:
        return messages.CdcFinished(self.connections, self.confirmed, self.received,
                                    self.caught_up, self.target)


class Stopped(Exception):
    """The drill was aborted, or the coordinator is gone."""


def run_consumer(spec: CdcSpec, queue, ack_conn, stop, abort, alive, events) -> None:
    """Process entry point."""
    messages.start_child("cdc consumer")
    consumer = Consumer(spec, queue, ack_conn, stop, abort, alive)
    try:
        with contextlib.suppress(Stopped):
            consumer.run()
        messages.put_whole(events, consumer.finished())
    except BaseException as exc:
        events.put(messages.CdcCrashed(db.error_label(exc),
                                       messages.tail(traceback.format_exc())))
