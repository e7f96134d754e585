"""Fault triggers: what causes the failover, run at its scheduled time, with a record of it.

Every trigger has one method, `fire()`, which runs to completion and returns a
`FaultRecord` (start, end, exit code, output). The coordinator runs it in a thread so the
drill keeps watching the load meanwhile.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

OUTPUT_TAIL = 4000


# The built-in fault actions (`--fault`, `ptor-lab fault`); each lab stack implements the
# ones it can (hang-primary and split-brain: the streaming lab only).
FAULT_ACTIONS = ("kill-primary", "stop-primary", "switchover", "kill-manager", "hang-primary",
                 "split-brain")


@dataclass
class FaultRecord:
    name: str
    command: Optional[str]
    started_at: float
    ended_at: Optional[float] = None
    exit_code: Optional[int] = None
    output: str = ""
    error: Optional[str] = None

    def as_dict(self) -> dict:
        return asdict(self)


class ShellCommand:
    """`--failover-command`: a shell command, bounded in time, its output kept (redacted)."""

    name = "failover-command"

    def __init__(self, command: str, timeout: float, redact: Callable[[str], str]) -> None:
        self.command = command
        self.timeout = timeout
        self.redact = redact

    def fire(self) -> FaultRecord:
        record = FaultRecord(self.name, self.redact(self.command), time.time())
        try:
            done = subprocess.run(self.command, shell=True, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=self.timeout, check=False)
            record.exit_code = done.returncode
            output = done.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired as exc:
            record.error = f"did not finish within {self.timeout:g} s and was killed"
            output = (exc.stdout or b"").decode("utf-8", "replace")
        except OSError as exc:
            record.error = f"could not be started: {exc.strerror}"
            output = ""
        record.ended_at = time.time()
        record.output = self.redact(output[-OUTPUT_TAIL:])
        return record


class LabAction:
    """A built-in fault (`--fault`) on a ptor-lab lab: kill-primary, stop-primary,
    switchover, kill-manager, carried out by the lab's own stack (see lab/base.py)."""

    def __init__(self, action: str, lab_dir: str) -> None:
        self.name = action
        self.lab_dir = lab_dir

    def fire(self) -> FaultRecord:
        from .lab import load_lab
        from .lab.pg import LabError

        record = FaultRecord(self.name, f"{self.name} on {self.lab_dir}", time.time())
        try:
            record.output = load_lab(self.lab_dir).fault(self.name)
            record.exit_code = 0
        except LabError as exc:
            record.error = str(exc)
            record.exit_code = 1
        except Exception as exc:  # a fault that breaks must not take the drill down
            record.error = f"{type(exc).__name__}: {exc}"
            record.exit_code = 1
        record.ended_at = time.time()
        return record


class FaultSchedule:
    """Fires triggers at their times (seconds after `origin`), one after another in a
    background thread; a trigger whose time comes while another runs waits its turn."""

    def __init__(self, plan: list, origin: float) -> None:
        self.plan = sorted(plan, key=lambda item: item[0])
        self.origin = origin
        self.fired: list[tuple[float, str]] = []  # (when, name), appended by the thread
        self.reported = 0
        self.records: list[FaultRecord] = []
        self.cancelled = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ptor-faults", daemon=True)

    @property
    def last_at(self) -> Optional[float]:
        return self.origin + self.plan[-1][0] if self.plan else None

    def start(self) -> None:
        if self.plan:
            self.thread.start()

    def done(self) -> bool:
        return not self.plan or (self.thread.ident is not None and not self.thread.is_alive())

    def running(self) -> bool:
        return self.thread.is_alive()

    def _run(self) -> None:
        for at, trigger in self.plan:
            wait = self.origin + at - time.time()
            if wait > 0 and self.cancelled.wait(wait):
                return
            self.fired.append((time.time(), trigger.name))
            self.records.append(trigger.fire())

    def newly_fired(self) -> list[tuple[int, float, str]]:
        """(ordinal, when, name) of faults fired since the last call, for the
        coordinator's own thread to log."""
        start = self.reported
        fresh = self.fired[start:]
        self.reported += len(fresh)
        return [(start + i + 1, at, name) for i, (at, name) in enumerate(fresh)]

    def cancel_and_join(self) -> None:
        """Fire nothing more; wait for a fault already under way to finish."""
        self.cancelled.set()
        if self.thread.ident is not None:
            self.thread.join()
