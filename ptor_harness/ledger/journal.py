"""Phase events written to the ledger from a thread of their own.

The coordinator's loop must keep ticking during the load (workers, signals, deadlines,
outage tracking), but a write to a partitioned repo takes seconds to fail
(tcp_user_timeout, then a connect timeout). The journal takes the events in order and
writes them through its own ledger session, so the coordinator never waits on the repo to
mark a phase; an event the repo refuses is logged, and the phase stays in the report
either way.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Optional

from ..db import TCP_USER_TIMEOUT, error_label
from . import LedgerSpec

log = logging.getLogger("ptor")


class PhaseJournal:
    def __init__(self, spec: LedgerSpec) -> None:
        self.spec = spec
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
                log.warning("%s not journaled, the repo is unreachable: %s", event[1],
                            error_label(exc))
                if ledger is not None:
                    with contextlib.suppress(Exception):
                        ledger.close()
                ledger = None
        if ledger is not None:
            ledger.close()

    def close(self) -> None:
        """Write what is queued and stop; bounded by what one failing write can take."""
        self.events.put(None)
        self.thread.join(TCP_USER_TIMEOUT + 10)
