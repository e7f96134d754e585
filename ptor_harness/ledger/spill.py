"""The spill file: where async repo mode keeps ledger batches while the repo is away.

Async repo mode promises the workers nothing per op, so a repo outage must not stall the
load; but every outcome must still reach the ledger, or reconciliation would see the rows
of unrecorded ops as phantoms. The recorder therefore appends each batch it cannot write
to this local file, replays the file (idempotently) once the repo is back, and deletes it.
If the repo never returns, the file stays in the run's folder and `ptor reconcile --run`
replays it later.

One JSON document per line (never pickle: `ptor reconcile` reads the file back, and a run
folder is not a place to trust code from). A line cut short by a crash mid-write can only
be the last one, and is skipped: the recorder died writing it, and a run whose recorder
died says so and ends without a verdict.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator

from ..ops import (
    CDC_RECORD,
    IDENTITY_RECORD,
    INTENT_RECORD,
    KIND_NAMES,
    NODE_SAMPLE_RECORD,
    OP_RECORD,
    OUTCOMES,
    REPLICATION_RECORD,
)

SPILL_FILE = "ledger-spill.jsonl"
BATCH_PARTS = ("intents", "ops", "identities", "retracts", "node_samples", "replication",
               "cdc")
OPTIONAL_PARTS = ("node_samples", "replication", "cdc")  # absent from an older ptor's file


def spill_path(run_dir: str) -> str:
    return os.path.join(run_dir, SPILL_FILE)


class Spill:
    """An append-only file of ledger batches, in the order the recorder received them."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.total_rows = 0  # rows that ever went through the file
        self.total_batches = 0
        self._file = None
        self.made = False  # this Spill created the file (only then does it remove it)

    @property
    def holding(self) -> bool:
        """True while the file holds batches the ledger may not have."""
        return self._file is not None

    def append(self, batch: tuple[list, ...]) -> None:
        """Add one batch (intents, ops, identities, retracts) and push it to the OS, so a
        crash of the recorder after this call does not lose it."""
        if self._file is None:
            # created exclusively the first time: a file that was there already (nobody's
            # but this Spill's may be) is never appended to, nor removed by discard
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if self.made else os.O_EXCL)
            fd = os.open(self.path, flags, 0o600)
            self.made = True
            self._file = open(fd, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._file.write(json.dumps(dict(zip(BATCH_PARTS, batch)), separators=(",", ":")))
        self._file.write("\n")
        self._file.flush()
        self.total_rows += sum(len(part) for part in batch)
        self.total_batches += 1

    def sync(self) -> None:
        """Make the file durable (before the recorder gives up and leaves it behind)."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def discard(self) -> None:
        """The ledger holds everything: forget the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.made and os.path.exists(self.path):
            os.unlink(self.path)
            self.made = False

    def close(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None


BIGINT = 2 ** 63
# The shape of each part's rows, field by field: (kind, may be null), from the records'
# one layout (ops.py); a retract is (worker, first seq taken back).
ROW_SHAPES = {part: tuple((f.kind, f.nullable) for f in record) for part, record in (
    ("intents", INTENT_RECORD), ("ops", OP_RECORD), ("identities", IDENTITY_RECORD),
    ("node_samples", NODE_SAMPLE_RECORD), ("replication", REPLICATION_RECORD),
    ("cdc", CDC_RECORD))}
ROW_SHAPES["retracts"] = (("int", False), ("int", False))
TEXT_CHARS = 1000  # longer than any label ptor writes (errors: 200, addresses, ids)


def _valid(value, kind: str, nullable: bool) -> bool:
    if value is None:
        return nullable
    if kind == "int":
        return type(value) is int and -BIGINT <= value < BIGINT
    if kind == "float":
        return type(value) in (int, float) and math.isfinite(value) and abs(value) < 1e12
    if kind == "text":
        return type(value) is str and len(value) <= TEXT_CHARS
    if kind == "bool":
        return type(value) is bool
    if kind == "kind":
        return value in KIND_NAMES
    return value in OUTCOMES  # "outcome"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number")


def read_batches(path: str) -> Iterator[tuple[list, ...]]:
    """Stream a spill file's batches, rows as tuples again. Every complete line ends with
    a newline; a last line without one was cut short by a crash mid-write and is skipped.
    Anything but the recorder's own batches, to the type and range of every field, is one
    clear error: a spill file goes into the ledger that decides the verdict."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith("\n"):
                return
            try:
                record = json.loads(line, parse_constant=_reject_constant)
                if not isinstance(record, dict) or not (
                        set(BATCH_PARTS) - set(OPTIONAL_PARTS) <= set(record) <=
                        set(BATCH_PARTS)):
                    raise ValueError
                batch = []
                for part in BATCH_PARTS:
                    if part not in record:  # an optional part: the batch ends before it
                        break
                    rows, shape = record[part], ROW_SHAPES[part]
                    if not isinstance(rows, list):
                        raise ValueError
                    for row in rows:
                        if not isinstance(row, list) or len(row) != len(shape) or not all(
                                _valid(v, kind, nullable)
                                for v, (kind, nullable) in zip(row, shape)):
                            raise ValueError
                    batch.append([tuple(row) for row in rows])
            except (ValueError, TypeError, RecursionError):
                raise ValueError(f"{path}: line {number} is not a spilled batch") from None
            yield tuple(batch)


REPLAY_COMMIT_BATCHES = 100  # batches per transaction while replaying


def replay(ledger, path: str) -> int:
    """Write a spill file's batches into the ledger (skipping rows already there), in order,
    committing every REPLAY_COMMIT_BATCHES batches; returns the number of rows replayed.
    Streams the file and keeps no more than one transaction's worth in the repo's hands:
    time and memory are linear in the file. A replay cut short is simply run again (rows
    already there are skipped). The caller removes the file afterwards."""
    rows = 0
    for number, batch in enumerate(read_batches(path), 1):
        ledger.write(*batch, again=True)
        rows += sum(len(part) for part in batch)
        if number % REPLAY_COMMIT_BATCHES == 0:
            ledger.commit()
    ledger.commit()
    return rows
