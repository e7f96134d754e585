"""The live view of a drill: is the cluster in an outage, since when, healthy for how long
(the coordinator's stop rules), and the one-line progress printed every second."""

from __future__ import annotations

import logging
import sys
import time
from typing import Optional

from .board import WorkerBoard

log = logging.getLogger("ptor")


class LoadWatcher:
    """Reads the live board: is the cluster in an outage, since when, healthy for how long;
    prints a one-line progress when asked."""

    def __init__(self, board: WorkerBoard, progress: bool, phase=lambda: "") -> None:
        self.board = board
        self.progress = progress
        self.phase = phase
        self.outage_since: Optional[float] = None
        self.healthy_since: Optional[float] = None
        self.last_outage_start: Optional[float] = None
        self.last_print = 0.0
        self.last_counts = (0.0, 0.0, 0.0)
        self.started = time.time()

    def tick(self, now: float) -> None:
        rows = self.board.snapshot()
        down = any(r["last_bad"] > r["last_ok"] and not r["ended"] for r in rows)
        if down:
            if self.outage_since is None:
                self.outage_since = now
                self.last_outage_start = now
                log.info("outage: writes are failing")
            self.healthy_since = None
        else:
            if self.outage_since is not None:
                log.info("writes are back after %.2f s", now - self.outage_since)
                self.outage_since = None
            if self.healthy_since is None:
                self.healthy_since = now
        if self.progress and now - self.last_print >= 1.0:
            self.print_progress(now, rows)

    def outage_seconds(self, now: float) -> float:
        return 0.0 if self.outage_since is None else now - self.outage_since

    def healthy_for(self, now: float) -> float:
        return 0.0 if self.healthy_since is None else now - self.healthy_since

    def print_progress(self, now: float, rows: list) -> None:
        counts = (sum(r["ok"] for r in rows), sum(r["failed"] for r in rows),
                  sum(r["indeterminate"] for r in rows))
        span = max(1e-6, now - self.last_print) if self.last_print else 1.0
        ok_rate = (counts[0] - self.last_counts[0]) / span
        err_rate = (counts[1] - self.last_counts[1]) / span
        outage = f"outage {self.outage_seconds(now):5.1f}s" if self.outage_since else "writing"
        sys.stderr.write(f"\r{now - self.started:6.1f}s {self.phase():8s} ok/s {ok_rate:8.0f}  "
                         f"failed/s {err_rate:6.0f}  in-doubt {counts[2]:5.0f}  {outage}   ")
        sys.stderr.flush()
        self.last_print = now
        self.last_counts = counts

    def clear_line(self) -> None:
        if self.progress and self.last_print:
            sys.stderr.write("\n")
            sys.stderr.flush()
