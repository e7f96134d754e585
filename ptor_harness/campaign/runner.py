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
from ..lab import settings as lab_settings
from ..lab.pg import LabError
from ..verify.checks import UNKNOWN
from . import settle, stats
from .envelope import envelope
from .hold import ClusterHold
from .outputs import FORMAT
from .plan import Cell, axes, schedule

log = logging.getLogger("ptor")
MIN_ROUND_SECONDS = 10.0  # a round is not started with less time than this left


def round_needs(scenario: Scenario) -> float:
    """The least time left under --max-run-seconds worth starting a round in: a round cut
    before its fault is due would only add an UNKNOWN that says nothing of the cluster."""
    last = scenario.last_fault_due()
    return (last[1] if last else 0.0) + MIN_ROUND_SECONDS


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
        self.hold = ClusterHold(base, self.id)
        self.lab_start: dict[str, str] = {}  # the lab's settings as the campaign began
        self.lab_now: dict[str, str] = {}  # the varied lab settings the campaign made
        self.lab_dsn: Optional[str] = None  # where the varied pooler setting leads

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
        """Every round of the plan, each after the health gate, the cluster held by the
        campaign (the drill lock) between rounds; ClusterError when another ptor holds
        the cluster as the campaign begins."""
        self.hold.take(self.base.connection.primary_pgdsn)
        try:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
            shape = settle.starting_shape(self.base)
            if any(cell.lab_settings for cell in self.cells):
                self.lab_start = lab_settings.current(self.base.faults.lab_dir)
            self.run_plan(shape)
        finally:
            self.hold.release()
            self.restore_lab()

    def run_plan(self, shape: settle.Shape) -> None:
        active = self.base  # the scenario whose DSN leads to the cluster as it is set now
        for index, (number, cell) in enumerate(self.plan):
            if self.stop_signal:
                self.stop_reason = f"{self.stop_signal} received"
                break
            left = self.seconds_left()
            if left is not None and left < round_needs(cell.scenario):
                self.stop_reason = "max-run-seconds reached"
                break
            settled_in = None
            if index > 0 or cell.lab_settings != self.lab_now:
                active, settled_in, why = self.gate(cell, active, shape, first=index == 0)
                if why:
                    self.rounds.append(stats.unsettled_round(
                        number, cell.label, time.time(), settled_in, why))
                    self.stop_reason = f"the cluster did not settle before round {number}"
                    log.warning("campaign: %s (%s): stopping", self.stop_reason, why)
                    break
                # on the primary it settled on, through the DSN that leads there now
                taken_by = self.hold.try_take(active.connection.primary_pgdsn)
                if taken_by is None and not self.hold.held:
                    taken_by = "the campaign could not take the drill lock again"
                if taken_by is not None:
                    self.stop_reason = f"before round {number}: {taken_by}"
                    log.warning("campaign: %s: stopping", self.stop_reason)
                    break
            active = self.with_lab_dsn(cell)
            self.hold.release()  # the round's drill takes the lock itself
            self.run_round(number, cell, active, settled_in, index)
            if self.rounds[-1].verdict == UNKNOWN and self.rounds[-1].run_dir is None:
                self.stop_reason = f"round {number} could not start"
                break
            taken_by = self.hold.try_take(active.connection.primary_pgdsn)  # at once
            if taken_by is not None:
                self.stop_reason = f"after round {number}: {taken_by}"
                log.warning("campaign: %s: stopping", self.stop_reason)
                break

    def gate(self, cell: Cell, active: Scenario, shape: settle.Shape, first: bool
             ) -> tuple[Scenario, float, str]:
        """The health gate before a round, through the DSN that leads to the cluster now;
        then, when the cell needs other lab settings, those, and the gate again through
        the DSN they lead to. Before the first round only the settings: the cluster was
        just found in its starting shape, and the gate's test write needs the table the
        first drill's --init creates. (the scenario to reach the cluster by, seconds
        waited, what was missing: "" when settled)."""
        timeout = self.base.campaign.settle_timeout
        settled, waited, why = (True, 0.0, "") if first else \
            settle.wait_settled(active, shape, timeout)
        if not settled or cell.lab_settings == self.lab_now:
            return active, waited, "" if settled else why
        try:
            active = self.set_lab(cell)
        except (LabError, PtorError) as exc:
            return active, waited, f"the lab could not be set for {cell.label}: {exc}"
        if first:
            return active, waited, ""
        settled, more, why = settle.wait_settled(active, shape, timeout)
        return active, waited + more, "" if settled else why

    def with_lab_dsn(self, cell: Cell) -> Scenario:
        """The cell's scenario, with the primary DSN the lab's settings lead to (pgbouncer's
        or the stack's own) when the campaign varies the pooler."""
        if self.lab_dsn is None:
            return cell.scenario
        c = cell.scenario.connection
        return cell.scenario.replace(
            primary_pgdsn=self.lab_dsn,
            repo_pgdsn=c.repo_pgdsn if c.repo_pgdsn != c.primary_pgdsn else self.lab_dsn)

    def set_lab(self, cell: Cell) -> Scenario:
        """Give the lab the cell's settings (pooler, synchronous_commit): LabError when it
        cannot take them."""
        wanted = cell.lab_settings
        log.info("campaign: setting the lab for %s", cell.label)
        dsn = lab_settings.apply(self.base.faults.lab_dir, wanted)
        if dsn is not None:
            self.lab_dsn = dsn
        self.lab_now = wanted
        return self.with_lab_dsn(cell)

    def restore_lab(self) -> None:
        """Put back the lab settings the campaign varied, as they were when it began."""
        if not self.lab_start or not self.lab_now:
            return
        back = {key: self.lab_start[key] for key in self.lab_now}
        try:
            lab_settings.apply(self.base.faults.lab_dir, back)
        except Exception as exc:  # the campaign's report still counts: say it, go on
            log.warning("campaign: could not put the lab's settings back (%s): %s",
                        ", ".join(f"{k}={v}" for k, v in back.items()), exc)

    def run_round(self, number: int, cell: Cell, scenario: Scenario,
                  settled_in: Optional[float], index: int) -> None:
        from ..drill.coordinator import Drill

        left = self.seconds_left()
        changes = {"report_dir": self.dir, "report_json": None, "prometheus_file": None,
                   "junit_xml": None, "progress": False}
        if left is not None:
            changes["max_run_seconds"] = left
        scenario = scenario.replace(**changes)
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
            # format 3: `read_only` per cell and per round (a drill report's format 12);
            # 4: `envelope.no_trend`, and no slopes over rates too close for a trend;
            # 5: `envelope.lost_bytes_r2` and `envelope.write_rto_r2`; `first_commit`
            # and `held` per cell and per round (a drill report's format 15)
            "format": FORMAT, "kind": "campaign", "campaign_id": self.id,
            "campaign_dir": os.path.abspath(self.dir), "started_at": self.started_at,
            "ended_at": time.time(), "verdict": verdict, "verdict_reasons": reasons,
            "checks": [{"name": k.name, "status": k.status, "detail": k.detail}
                       for k in checks],
            "interrupted": self.stop_signal, "stop_reason": self.stop_reason,
            "rounds_planned": len(self.plan), "rounds_per_cell": c.rounds,
            "vary": list(c.vary), "scenario": self.base.as_public_dict(),
            "cells": cells, "rounds": [r.as_dict() for r in self.rounds],
            "envelope": envelope([r.as_dict() for r in self.rounds],
                                 [key for key, _values in axes(c.vary)]),
        }
