"""Runs a campaign: its rounds as drills, one after another, each after the health gate.

Every round is a whole drill with its own run folder under the campaign's folder, its own
lock, ledger and report; the campaign keeps each round's figures from that report. A
signal ends the round under way as a drill ends (drain, reconcile, report), then the
campaign reports the rounds done. --max-run-seconds bounds the whole campaign: each round
gets what is left, and no round starts with too little left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from contextlib import AbstractContextManager
from typing import Callable, Optional

from ..config import Scenario
from ..errors import PtorError
from ..verify.checks import UNKNOWN
from . import settle, stats
from .plan import Cell, schedule

log = logging.getLogger("ptor")
MIN_ROUND_SECONDS = 10.0  # a round is not started with less time than this left


def new_campaign_id() -> str:
    from ..drill.coordinator import new_run_id

    return "campaign-" + new_run_id()


class Campaign:
    """One campaign: the cells, the rounds, and what came of them."""

    def __init__(self, base: Scenario, cells: list[Cell],
                 round_context: Callable[[object], AbstractContextManager] = contextlib.nullcontext
                 ) -> None:
        self.base = base
        self.cells = cells
        self.plan = schedule(cells, base.campaign.rounds)
        self.id = new_campaign_id()
        self.dir = os.path.join(base.outputs.report_dir, self.id)
        self.round_context = round_context
        self.rounds: list[stats.Round] = []
        self.started_at = time.time()
        self.started = time.monotonic()
        self.stop_signal: Optional[str] = None
        self.stop_reason: Optional[str] = None
        self.current = None  # the drill under way

    def request_stop(self, signal_name: str) -> None:
        """From a signal handler: the round under way ends as a drill does, and no other
        starts."""
        self.stop_signal = signal_name
        if self.current is not None:
            self.current.request_stop(signal_name)

    def kill_faults(self) -> None:
        """From a signal handler, on a second signal: the drill under way kills its
        failover command."""
        if self.current is not None:
            self.current.kill_faults()

    def seconds_left(self) -> Optional[float]:
        limit = self.base.thresholds.max_run_seconds
        return None if limit is None else limit - (time.monotonic() - self.started)

    def run(self) -> None:
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        shape = settle.starting_shape(self.base)
        for index, (number, cell) in enumerate(self.plan):
            if self.stop_signal:
                self.stop_reason = f"{self.stop_signal} received"
                break
            left = self.seconds_left()
            if left is not None and left < MIN_ROUND_SECONDS:
                self.stop_reason = "max-run-seconds reached"
                break
            settled_in = None
            if index > 0:
                settled, settled_in, why = settle.wait_settled(
                    cell.scenario, shape, self.base.campaign.settle_timeout)
                if not settled:
                    self.rounds.append(stats.unsettled_round(
                        number, cell.label, time.time(), settled_in, why))
                    self.stop_reason = f"the cluster did not settle before round {number}"
                    log.warning("campaign: %s (%s): stopping", self.stop_reason, why)
                    break
            self.run_round(number, cell, settled_in, index)
            if self.rounds[-1].verdict == UNKNOWN and self.rounds[-1].run_dir is None:
                self.stop_reason = f"round {number} could not start"
                break

    def run_round(self, number: int, cell: Cell, settled_in: Optional[float],
                  index: int) -> None:
        from ..drill.coordinator import Drill

        left = self.seconds_left()
        changes = {"report_dir": self.dir, "report_json": None, "prometheus_file": None,
                   "junit_xml": None, "progress": False}
        if left is not None:
            changes["max_run_seconds"] = left
        scenario = cell.scenario.replace(**changes)
        started = time.time()
        drill = Drill(scenario)
        self.current = drill
        try:
            with self.round_context(drill):
                result = drill.run()
        except PtorError as exc:  # the round could not start: say why, stop the campaign
            self.rounds.append(stats.round_not_run(
                number, cell.label, started, time.time(), settled_in,
                f"could not start: {scenario.redact(str(exc))}"))
            log.warning("campaign: round %d (%s) could not start: %s", number, cell.label,
                        scenario.redact(str(exc)))
            return
        finally:
            self.current = None
        done = stats.round_from_report(number, cell.label, result, started, settled_in)
        self.rounds.append(done)
        self.say(done, index)

    def say(self, done: stats.Round, index: int) -> None:
        """Progress: the round and cell, its verdict and RTO, the RTOs so far, an ETA."""
        elapsed = time.monotonic() - self.started
        remaining = len(self.plan) - index - 1
        eta = elapsed / (index + 1) * remaining
        rtos = [r.write_rto for r in self.rounds if r.cell == done.cell and r.write_rto]
        rto = f"{done.write_rto:.3f} s" if done.write_rto is not None else "-"
        log.info("campaign: round %d/%d of cell %s: %s, write RTO %s, lost %s; this cell so "
                 "far: %s; about %.0f s to go", done.round, self.base.campaign.rounds,
                 done.cell, done.verdict, rto, "-" if done.lost_acknowledged is None
                 else done.lost_acknowledged, ", ".join(f"{x:.2f}" for x in rtos) or "-", eta)

    def summary(self) -> dict:
        """The campaign's report (campaign.json), its verdict judged on the rounds done."""
        c = self.base.campaign
        cells = [stats.cell_summary(cell.label, dict(cell.changes), self.rounds)
                 for cell in self.cells]
        limits = stats.Limits(c.max_write_rto_p95, c.max_lost_acknowledged_total,
                              c.max_failed_rounds)
        verdict, reasons, checks = stats.judge(cells, self.rounds, len(self.plan), limits,
                                               self.stop_reason)
        return {
            "format": 1, "kind": "campaign", "campaign_id": self.id,
            "campaign_dir": os.path.abspath(self.dir), "started_at": self.started_at,
            "ended_at": time.time(), "verdict": verdict, "verdict_reasons": reasons,
            "checks": [{"name": k.name, "status": k.status, "detail": k.detail}
                       for k in checks],
            "interrupted": self.stop_signal, "stop_reason": self.stop_reason,
            "rounds_planned": len(self.plan), "rounds_per_cell": c.rounds,
            "vary": list(c.vary), "scenario": self.base.as_public_dict(),
            "cells": cells, "rounds": [r.as_dict() for r in self.rounds],
        }
