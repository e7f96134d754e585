"""The user's own load beside ptor's (`--background-load`): supervised, never ledgered.

ptor's ledgered load is small rows on tables of its own; a user's peak is their own
transactions, with their WAL rate. A background command (typically pgbench with the user's
script and `-P 1`, against the same endpoint) reproduces it while ptor counts its own ops
exactly. This process (one of the crew, so it outlives no coordinator: a killed ptor's
background load is ended within a tick, like its workers) starts each command a few
seconds into the warmup, after a stretch where ptor's load runs alone (the report
estimates ptor's own share of the primary's WAL from it), each in a session and process
group of its own with its output merged, kept bounded, and read line by line for pgbench's
progress lines. A command that exits before the drain is started again: pgbench ends when
its server goes away, so every failover ends it. Restarts back off from RESTART_FIRST to
RESTART_MAX seconds while it keeps exiting within QUICK_EXIT, and a command that has never
once run longer than that is given up after GIVE_UP_AFTER starts: a typo or a missing
binary is reported, never a loop. At the drain each group gets SIGTERM, then SIGKILL after
TERM_GRACE, and the process reports only once no member of any group is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import psutil

from ..redact import redact
from . import messages
from .faults import BoundedOutput
from .flags import SharedFlag

RESTART_FIRST = 0.25  # seconds before starting a command again that just exited ...
RESTART_MAX = 5.0  # ... doubling while it keeps exiting at once, up to this
QUICK_EXIT = 2.0  # a run shorter than this counts as exiting at once
GIVE_UP_AFTER = 5  # starts that all exited at once, with no run ever longer: given up
TERM_GRACE = 3.0  # seconds between SIGTERM and SIGKILL of a command's group at the drain
GONE_TIMEOUT = 5.0  # seconds to wait for a killed group's last member to go
TICK = 0.05
MAX_EXITS_KEPT = 200  # exits recorded one by one (a campaign of hours stays bounded)
MAX_PROGRESS_KEPT = 7 * 24 * 3600  # progress lines kept (one a second: a week)
LINE_LIMIT = 65536  # bytes of one output line at most


@dataclass(frozen=True)
class BackgroundSpec:
    """What the background process needs: the commands, how long ptor's load runs alone
    before them, and the secrets to mask in what it keeps of their output."""

    commands: tuple[str, ...]
    ptor_alone: float
    secrets: tuple[str, ...] = ()


@dataclass
class CommandRecord:
    """One command's supervision, as it travels to the coordinator: what the report's
    `background` section is built from (verify/background.py)."""

    command: str  # masked
    starts: list[float] = field(default_factory=list)
    exits: list[tuple[float, Optional[int]]] = field(default_factory=list)  # (at, code)
    exit_count: int = 0
    progress: list[tuple[float, float, int]] = field(default_factory=list)  # at, tps, failed
    gave_up: Optional[str] = None
    left_running: int = 0  # members of its group still there after the kill
    output: str = ""  # masked, bounded


class Supervised:
    """One command: its current process, its restarts and what it printed."""

    def __init__(self, command: str, mask: Callable[[str], str]) -> None:
        self.command = command
        self.mask = mask
        self.record = CommandRecord(mask(command))
        self.output = BoundedOutput()
        self.lock = threading.Lock()  # the reader thread appends progress and output
        self.process: Optional[subprocess.Popen] = None
        self.reader: Optional[threading.Thread] = None
        self.started = 0.0
        self.delay = RESTART_FIRST
        self.next_start = 0.0
        self.quick_starts = 0
        self.ever_ran = False
        # every process group it ran in: [group, None while its leader runs, else the
        # members it had when the leader was reaped]
        self.groups: list[list] = []

    def start(self, now: float) -> None:
        self.record.starts.append(time.time())
        self.started = now
        try:
            self.process = subprocess.Popen(
                self.command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            self.process = None
            self.note(f"could not be started: {exc.strerror}\n".encode())
            self.exited(now, None)
            return
        self.groups.append([self.process.pid, None])
        self.reader = threading.Thread(target=self.read, args=(self.process.stdout,),
                                       daemon=True)
        self.reader.start()

    def read(self, stream) -> None:
        """Keep the output bounded; take pgbench's progress lines as they come."""
        from ..verify.background import progress_of

        for line in iter(lambda: stream.readline(LINE_LIMIT), b""):
            self.note(line)
            sample = progress_of(line.decode("utf-8", "replace"))
            if sample is not None:
                with self.lock:
                    if len(self.record.progress) < MAX_PROGRESS_KEPT:
                        self.record.progress.append((time.time(), *sample))

    def note(self, chunk: bytes) -> None:
        with self.lock:
            self.output.feed(chunk)

    def poll(self, now: float) -> None:
        """Notice an exit; start again when it is time (unless given up)."""
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return
            if self.reader is not None:
                self.reader.join(1.0)
            self.process = None
            self.groups[-1][1] = group_members(self.groups[-1][0])
            self.exited(now, code)
        if self.record.gave_up is None and now >= self.next_start:
            self.start(now)

    def exited(self, now: float, code: Optional[int]) -> None:
        record = self.record
        record.exit_count += 1
        if len(record.exits) < MAX_EXITS_KEPT:
            record.exits.append((time.time(), code))
        if now - self.started >= QUICK_EXIT:
            self.ever_ran, self.quick_starts, self.delay = True, 0, RESTART_FIRST
        else:
            self.quick_starts += 1
            self.delay = min(RESTART_MAX, self.delay * 2) if self.quick_starts > 1 \
                else RESTART_FIRST
        if not self.ever_ran and self.quick_starts >= GIVE_UP_AFTER:
            how = "could not be started" if code is None else f"exit code {code}"
            record.gave_up = (f"exited within {QUICK_EXIT:g} s on each of its "
                              f"{self.quick_starts} starts (last: {how}); not started again")
        self.next_start = now + self.delay

    def stop(self) -> None:
        """SIGTERM to its group, SIGKILL after TERM_GRACE; then every process any of its
        runs left behind (a child that ignores SIGTERM, a grandchild of a shell that
        exited) is killed by its handle, and waited for."""
        if self.process is not None:
            signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(TERM_GRACE)
            except subprocess.TimeoutExpired:  # its leader not reaped: the group is its own
                signal_group(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
            self.groups[-1][1] = group_members(self.groups[-1][0])
            self.exited(time.monotonic(), code)
            self.process = None
        if self.reader is not None:
            self.reader.join(1.0)
        deadline = time.monotonic() + GONE_TIMEOUT
        while True:
            left = [p for _, members in self.groups for p in members if running(p)]
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.kill()  # psutil checks that the pid is still that process
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(TICK)
        self.record.left_running = len(left)
        with self.lock:
            self.record.output = self.mask(self.output.text())


def signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def group_members(group: int) -> list[psutil.Process]:
    """The live (not zombie) processes of a process group, as psutil handles: a handle
    knows its process by pid and start time, so a pid reused later is never taken for it.
    Taken when a command's shell is reaped, they are what it left behind: the group's
    number is then free for reuse once they are gone, so ptor never signals it again,
    only these processes."""
    members = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == group and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
    return members


def running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def supervise(spec: BackgroundSpec, go: SharedFlag, stop: SharedFlag,
              gone: Callable[[], bool]) -> list[CommandRecord]:
    """Start the commands once ptor's load has run alone for `spec.ptor_alone` seconds,
    keep them running until `stop` (or the coordinator is `gone()`, or every command was
    given up), then end them."""
    def ending() -> bool:
        return stop.is_set() or gone()

    commands = [Supervised(c, lambda text: redact(text, spec.secrets))
                for c in spec.commands]
    while not go.wait(0.2):
        if ending():
            return [c.record for c in commands]
    begin = time.monotonic() + spec.ptor_alone
    while time.monotonic() < begin and not ending():
        time.sleep(TICK)
    try:
        while not ending() and any(c.record.gave_up is None for c in commands):
            now = time.monotonic()
            for command in commands:
                command.poll(now)
            time.sleep(TICK)
    finally:
        for command in commands:
            command.stop()
    return [c.record for c in commands]


def run_background(spec: BackgroundSpec, go: SharedFlag, stop: SharedFlag, events,
                   alive) -> None:
    """Process entry point. Its stop signals get a handler that does nothing, not SIG_IGN
    (messages.ignore_stop_signals): an ignored signal stays ignored across exec, and the
    commands must die of the SIGTERM they are sent at the drain."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    messages.name_process("background commands")
    records = supervise(spec, go, stop, lambda: messages.coordinator_gone(alive))
    messages.put_whole(events, messages.BackgroundFinished(records))
