"""Fault triggers: what causes the failover, run at its scheduled time, with a record of it.

Every trigger has one method, `fire()`, which runs to completion and returns a
`FaultRecord` (start, end, exit code, output). The coordinator runs it in a thread so the
drill keeps watching the load meanwhile.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

OUTPUT_TAIL = 4000


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
