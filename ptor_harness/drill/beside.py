"""Work beside the coordinator after the load: a spawned process that computes one answer.

After the load the coordinator reads the ledger and the new primary; on a large ledger it
hands parts of that reading to processes of their own (the metrics pass, a share of the
reconciliation) so that they use the machine's other core instead of adding up. Each such
child ignores the stop signals (the coordinator decides, and kills it if need be), runs
one function, and sends back its value or, should it fail, a one-line reason: the
coordinator then does that part itself, so no answer ever depends on whether the child
worked. Spawned, not forked: the fork server has gone with the crew by then, and a fork
of the coordinator would carry its threads' locks.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from typing import Callable

from .. import db
from . import messages

RESULT_TIMEOUT = 3600.0  # a child's answer, at most: a ledger of 10^9 ops


def _child(name: str, work: Callable, args: tuple, out) -> None:
    """Process entry point: the work's value, or why not, on the pipe."""
    messages.start_child(name)
    try:
        result: tuple = ("ok", work(*args))
    except Exception as exc:  # the parent reports it; a traceback here helps no one
        result = ("error", db.error_label(exc))
    with contextlib.suppress(OSError):  # a coordinator gone meanwhile: nobody to tell
        out.send(result)
        out.close()


class Beside:
    """`work(*args)` (a module-level function: it is pickled to the child) in a spawned
    process named `name`; `result` waits for its answer, `cancel` ends it unasked."""

    def __init__(self, name: str, work: Callable, args: tuple) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.answer, out = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_child, name=name, args=(name, work, args, out),
                                   daemon=True)
        self.process.start()
        out.close()

    def result(self) -> tuple[bool, object]:
        """(True, the value), or (False, why there is none: the child's error, no answer,
        or its exit without one); the child has ended either way."""
        status, value = "error", "it gave no answer"
        try:
            if self.answer.poll(RESULT_TIMEOUT):
                status, value = self.answer.recv()
        except EOFError:
            value = "it exited without an answer"
        finally:
            self.answer.close()
            self._end(grace=5.0)
        return status == "ok", value

    def cancel(self) -> None:
        """The drill ends another way: no answer is wanted."""
        self._end(grace=0.0)

    def _end(self, grace: float) -> None:
        self.process.join(grace)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
