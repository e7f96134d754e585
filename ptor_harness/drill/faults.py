"""Fault triggers: what causes the failover, run at its scheduled time, with a record of it.

Every trigger has one method, `fire()`, which runs to completion and returns a
`FaultRecord` (start, end, exit code, output). The coordinator runs it in a thread so the
drill keeps watching the load meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

OUTPUT_KEEP = 8192  # bytes kept from the start and from the end of a command's output


@dataclass
class FaultRecord:
    name: str
    command: Optional[str]
    started_at: float
    ended_at: Optional[float] = None
    exit_code: Optional[int] = None
    output: str = ""
    error: Optional[str] = None
    stderr_first_line: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def failed(self) -> bool:
        """It did not run to a clean end: could not start, exited non-zero, was killed or
        timed out. A drill whose fault failed proves nothing about a failover."""
        return self.error is not None or self.exit_code not in (0, None) or \
            self.ended_at is None

    def failure(self) -> str:
        """One sentence: why the fault failed, with the first line of its stderr."""
        why = self.error or (f"was killed by {signal.Signals(-self.exit_code).name}"
                             if self.exit_code is not None and self.exit_code < 0
                             else f"exited with status {self.exit_code}")
        said = f": {self.stderr_first_line}" if self.stderr_first_line else ""
        return f"the fault {self.name} {why}{said}"


class BoundedOutput:
    """A stream's first and last OUTPUT_KEEP bytes: a command that prints 64 MB does not
    grow ptor's memory."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = OUTPUT_KEEP - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > OUTPUT_KEEP:
                self.dropped += len(self.tail) - OUTPUT_KEEP
                del self.tail[:len(self.tail) - OUTPUT_KEEP]

    def drain(self, stream) -> None:
        for chunk in iter(lambda: stream.read(65536), b""):
            self.feed(chunk)

    def text(self) -> str:
        middle = f"\n[... {self.dropped} bytes left out ...]\n" if self.dropped else ""
        return (bytes(self.head).decode("utf-8", "replace") + middle
                + bytes(self.tail).decode("utf-8", "replace"))


class ShellCommand:
    """`--failover-command`: a shell command in a session (process group) of its own, so
    Ctrl-C in the terminal never reaches it half-way (ptor decides: a first signal lets it
    finish, a second one or its timeout kills the whole group, not only the shell), its
    output kept bounded and redacted."""

    name = "failover-command"

    def __init__(self, command: str, timeout: float, redact: Callable[[str], str]) -> None:
        self.command = command
        self.timeout = timeout
        self.redact = redact
        self.process: Optional[subprocess.Popen] = None
        self.killed_because: Optional[str] = None

    def kill(self, because: Optional[str] = None) -> None:
        """Kill the command's whole process group (its children included), if it runs;
        `because`: what the fault's record then says ended it."""
        process = self.process
        if process is not None and process.poll() is None:
            self.killed_because = self.killed_because or because
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    def fire(self) -> FaultRecord:
        record = FaultRecord(self.name, self.redact(self.command), time.time())
        stdout, stderr = BoundedOutput(), BoundedOutput()
        try:
            self.process = subprocess.Popen(self.command, shell=True, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            start_new_session=True)
        except OSError as exc:
            record.error = f"could not be started: {exc.strerror}"
            record.ended_at = time.time()
            return record
        readers = [threading.Thread(target=out.drain, args=(pipe,), daemon=True)
                   for out, pipe in ((stdout, self.process.stdout),
                                     (stderr, self.process.stderr))]
        for reader in readers:
            reader.start()
        try:
            record.exit_code = self.process.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            record.exit_code = self.process.wait()
            record.error = (f"did not finish within {self.timeout:g} s (failover-timeout); "
                            "its process group was killed")
        if self.killed_because and not record.error:
            record.error = f"was still running when {self.killed_because}; its process " \
                "group was killed"
        for reader in readers:
            reader.join(5)
        record.ended_at = time.time()
        errors = stderr.text()
        record.output = self.redact(stdout.text() + errors)
        first = next((line.strip() for line in errors.splitlines() if line.strip()), "")
        record.stderr_first_line = self.redact(first[:300])
        return record


class LabAction:
    """A built-in fault (`--fault`) on a ptor-lab lab: kill-primary, stop-primary,
    switchover, kill-manager, carried out by the lab's own stack (see lab/base.py)."""

    def __init__(self, action: str, lab_dir: str) -> None:
        self.name = action
        self.lab_dir = lab_dir

    def fire(self) -> FaultRecord:
        from ..lab import load_lab
        from ..lab.pg import LabError

        record = FaultRecord(self.name, f"{self.name} on {self.lab_dir}", time.time())
        try:
            record.output = load_lab(self.lab_dir).fault(self.name)
            record.exit_code = 0
        except LabError as exc:
            record.error = f"failed: {exc}"
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
        self.ended_reported = 0
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

    def newly_ended(self) -> list[tuple[int, FaultRecord]]:
        """(ordinal, record) of faults that ended since the last call, for the coordinator
        to journal: a run that never finishes still leaves how its faults went."""
        start = self.ended_reported
        fresh = self.records[start:]
        self.ended_reported += len(fresh)
        return [(start + i + 1, record) for i, record in enumerate(fresh)]

    def kill(self, because: Optional[str] = None) -> None:
        """Kill whatever trigger runs now (those that can be killed: shell commands)."""
        for _at, trigger in self.plan:
            kill = getattr(trigger, "kill", None)
            if kill is not None:
                kill(because)

    def cancel_and_join(self) -> None:
        """Fire nothing more; wait for a fault already under way to finish."""
        self.cancelled.set()
        if self.thread.ident is not None:
            self.thread.join()


FAULT_ENDED = "fault-ended"  # the journal's event for a fault's record, with its ordinal


def fault_phase(ordinal: int) -> str:
    """The phase a fault's start marks: "fault", then "fault-2", "fault-3"..."""
    return "fault" if ordinal == 1 else f"fault-{ordinal}"


def fault_ordinal(phase: str) -> Optional[int]:
    """Which fault a phase's start marks (`fault_phase`'s inverse), or None."""
    if phase == "fault":
        return 1
    number = phase[len("fault-"):] if phase.startswith("fault-") else ""
    return int(number) if number.isdigit() else None


def records_from_journal(events: list) -> list[FaultRecord]:
    """The faults of a run that did not finish, from its journal's events (at, name,
    detail): each fault with its record, or, where its end was never journaled, one that
    counts as failed (a run that stopped mid-fault proves nothing about it)."""
    records = {detail["ordinal"]: FaultRecord(**{key: detail[key] for key in
                                                 FaultRecord.__dataclass_fields__
                                                 if key in detail})
               for _at, name, detail in events if name == FAULT_ENDED}
    for at, name, detail in events:
        ordinal = fault_ordinal(name[len("phase:"):]) if name.startswith("phase:") else None
        if ordinal is not None and ordinal not in records:
            records[ordinal] = FaultRecord(detail.get("action", "?"), None, at, error=(
                "did not journal its end: the run stopped before the fault finished, or "
                "the repo was away when it did"))
    return [records[n] for n in sorted(records)]
