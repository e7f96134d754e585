"""The op record: what one worker did in one transaction, and how it ended.

Workers build plain tuples in `Op` field order (cheap to pickle across the Queue); the ledger,
reconciliation and metrics read them back as `Op`. `LEDGER_FORMAT` versions that layout.

Format history:
  1 — first version: worker, seq, kind, key, t_start, t_end, outcome, error, session, rows.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

LEDGER_FORMAT = 1

INSERT = "I"
UPDATE = "U"
DELETE = "D"
KIND_NAMES = {INSERT: "insert", UPDATE: "update", DELETE: "delete"}

OK = "ok"
FAILED = "failed"
INDETERMINATE = "indeterminate"
OUTCOMES = (OK, FAILED, INDETERMINATE)


class Op(NamedTuple):
    """One op as the ledger holds it.

    `outcome` is None for an op whose intent is durable but whose outcome never reached the
    ledger (the harness died in between): it is in doubt exactly like an indeterminate op.
    Times are client wall-clock epoch seconds, so they compare across processes.
    """

    worker: int
    seq: int
    kind: str
    key: int
    t_start: Optional[float]
    t_end: Optional[float]
    outcome: Optional[str]
    error: Optional[str]
    session: Optional[int]
    rows: Optional[int]

    @property
    def in_doubt(self) -> bool:
        """True when nobody knows whether the server committed this op."""
        return self.outcome is None or self.outcome == INDETERMINATE


class Identity(NamedTuple):
    """What a worker's session was connected to; a change of identity is a failover seen
    from the client."""

    worker: int
    session: int
    at: float
    addr: Optional[str]
    port: Optional[int]
    in_recovery: Optional[bool]
    system_id: Optional[str]
    timeline: Optional[int]

    def server(self) -> tuple:
        """The fields that name a server: equal tuples mean the same primary."""
        return (self.addr, self.port, self.system_id, self.timeline)

    def label(self) -> str:
        """A short human name for the server, as the report prints it."""
        where = f"{self.addr or 'local'}:{self.port}"
        return f"{where} (system {self.system_id}, timeline {self.timeline})"
