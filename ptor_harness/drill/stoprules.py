"""When the load ends: the stop rules, checked once a tick, in order of precedence.

Each rule that holds returns a `StopReason` (a kind and its sentence); the coordinator
stops the load at the first one. The rules read the live view (watcher.py), the fault
schedule and the crew; they change nothing.
"""

from __future__ import annotations

from typing import Callable, Optional

from ..config import Scenario
from ..outcome import Stop, StopReason
from .crew import Crew
from .faults import FaultSchedule
from .watcher import LoadWatcher


class StopRules:
    """The rules of one drill; `check` says whether, and why, the load must end now."""

    def __init__(self, scenario: Scenario, crew: Crew, watcher: LoadWatcher,
                 schedule: FaultSchedule, load_end: float,
                 seconds_left: Callable[[], Optional[float]],
                 stop_signal: Callable[[], Optional[str]]) -> None:
        self.thresholds = scenario.thresholds
        self.observe_after = scenario.load.observe_after
        self.crew = crew
        self.watcher = watcher
        self.schedule = schedule
        self.load_end = load_end
        self.seconds_left = seconds_left
        self.stop_signal = stop_signal

    def check(self, now: float, in_load: bool) -> Optional[StopReason]:
        t = self.thresholds
        if self.crew.abort.is_set():
            return StopReason(Stop.RECORDER_FAILED, "recorder failed")
        signal_name = self.stop_signal()
        if signal_name:
            return StopReason(Stop.SIGNAL, f"interrupted by {signal_name}", signal_name)
        left = self.seconds_left()
        if left is not None and left <= 0:
            return StopReason(Stop.DEADLINE, f"max-run-seconds ({t.max_run_seconds:g} s) "
                              "reached")
        if self.crew.all_workers_ended():
            return StopReason(Stop.WORKERS_ENDED, "all workers ended")
        if self.watcher.outage_seconds(now) > t.max_outage:
            return StopReason(Stop.MAX_OUTAGE, f"no primary accepted writes for "
                              f"{t.max_outage:g} s (max-outage)")
        if in_load and self.outage_observed(now):
            return StopReason(Stop.OBSERVED, f"writes healthy for {self.observe_after:g} s "
                              "after the outage")
        if now >= self.load_end and not self.schedule.running():
            return StopReason(Stop.DURATION, "duration reached")
        return None

    def outage_observed(self, now: float) -> bool:
        """True once the outage that matters is over and writes were healthy for
        --observe-after seconds: the last fault's outage when ptor fires faults (after they
        all returned), else any outage (a person triggered the failover)."""
        if not self.schedule.done():
            return False
        began = self.watcher.last_outage_start
        last_fault = self.schedule.last_at
        if began is None or (last_fault is not None and began < last_fault):
            return False
        return self.watcher.healthy_for(now) >= self.observe_after

