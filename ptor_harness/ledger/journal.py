"""Phase events written to the ledger from a thread of their own.

The coordinator's loop must keep ticking during the load (workers, signals, deadlines,
outage tracking), but a write to a partitioned repo takes seconds to fail
(tcp_user_timeout, then a connect timeout). The journal takes the events in order and
writes them through its own ledger session, so the coordinator never waits on the repo to
mark a phase. An event the repo refuses is logged and kept in the run folder's journal
spill file: the phase stays in the report either way, and a run that never finishes (its
repo gone for good) still tells `ptor reconcile` which faults it injected.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import threading
from typing import Optional

from ..db import TCP_USER_TIMEOUT, error_label
from . import LedgerSpec

log = logging.getLogger("ptor")


JOURNAL_SPILL = "journal-spill.jsonl"


def journal_spill_path(run_dir: str) -> str:
    return os.path.join(run_dir, JOURNAL_SPILL)


class PhaseJournal:
    def __init__(self, spec: LedgerSpec, spill_path: Optional[str] = None) -> None:
        self.spec = spec
        self.spill_path = spill_path
        self.events: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="ptor-journal", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def record(self, at: float, name: str, detail: Optional[dict] = None) -> None:
        self.events.put((at, name, detail))

    def _run(self) -> None:
        ledger = None
        while True:
            event = self.events.get()
            if event is None:
                break
            try:
                if ledger is None:
                    ledger = self.spec.open()
                ledger.record_event(*event)
            except Exception as exc:  # the repo is away: the phase stays in the report
                log.warning("%s not journaled, the repo is unreachable: %s%s", event[1],
                            error_label(exc), self.spill(event))
                if ledger is not None:
                    with contextlib.suppress(Exception):
                        ledger.close()
                ledger = None
        if ledger is not None:
            ledger.close()

    def spill(self, event: tuple) -> str:
        """Keep an event the repo refused in the spill file, pushed to the disk (a fault's
        record must outlive the harness's host); returns how the log line ends."""
        if self.spill_path is None:
            return ""
        at, name, detail = event
        try:
            fd = os.open(self.spill_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as out:
                out.write(json.dumps([at, name, detail or {}], sort_keys=True,
                                     allow_nan=False) + "\n")
                out.flush()
                os.fsync(out.fileno())
        except (OSError, ValueError) as exc:
            return f"; not kept in {self.spill_path} either: {exc}"
        return f"; kept in {self.spill_path}"

    def close(self) -> None:
        """Write what is queued and stop; bounded by what one failing write can take."""
        self.events.put(None)
        self.thread.join(TCP_USER_TIMEOUT + 10)


def spilled_events(path: str) -> list[tuple[float, str, dict]]:
    """The events a journal kept in its spill file (`PhaseJournal.spill`), for `ptor
    reconcile`: a line that is not one such event (cut short by a crash, or not written
    by ptor) is left out."""
    events = []
    try:
        with open(path, encoding="utf-8") as src:
            lines = src.read(16 * 1024 * 1024).splitlines()
    except (OSError, UnicodeDecodeError):
        return events
    for line in lines:
        try:
            at, name, detail = json.loads(line)
        except (ValueError, TypeError, RecursionError):
            continue
        if isinstance(at, (int, float)) and not isinstance(at, bool) and math.isfinite(at) \
                and isinstance(name, str) and isinstance(detail, dict):
            events.append((float(at), name, detail))
    return events
