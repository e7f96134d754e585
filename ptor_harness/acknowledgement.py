"""What an op's ending means: acknowledged, failed for certain, or in doubt.

One rule, in one place, for every op and transaction a worker runs (Jepsen's ok / fail /
info): a statement that raised is classified by where the error came from (`classify`);
one that returned is acknowledged, unless the notices that came with it say otherwise
(`acknowledgement_notice`, `acknowledged_outcome`), which `judge` applies. The ledger keeps
the outcome and the label; reconciliation settles what is in doubt.
"""

from __future__ import annotations

from typing import Optional

import psycopg2

from .ops import (
    FAILED,
    INDETERMINATE,
    NOT_REPLICATED,
    OK,
    OWN_TIMEOUT_NOT_REPLICATED,
    SYNC_WAIT_CANCELLED,
)

# SQLSTATE classes where the server definitely rejected the statement, so nothing committed.
_REJECTED_CLASSES = ("22", "23", "25", "40", "42", "44", "53", "54", "55")
# Session-ending SQLSTATEs: the server went away; if the statement was sent, it is in doubt.
_SESSION_LOST = {"57P01", "57P02", "57P03", "57P04", "08000", "08003", "08006", "08001",
                 "08004", "08007"}


def classify(exc: BaseException, sent: bool) -> str:
    """Outcome of an op that raised `exc`: FAILED (definitely not committed) or INDETERMINATE.

    Jepsen's rule: whatever may have reached the server and has no definite rejection is in
    doubt. An error before the statement was sent is a failure; a server error in a
    rejecting SQLSTATE class (read-only standby, constraint, syntax, serialization, timeout
    before commit) is a failure; a lost session after sending is indeterminate, including
    `terminating connection` errors, which can arrive after a local commit that waited for
    a synchronous standby.
    """
    if not sent or isinstance(exc, psycopg2.InterfaceError):
        return FAILED
    code = getattr(exc, "pgcode", None)
    if code:
        if code in _SESSION_LOST:
            return INDETERMINATE
        if code == "57014":  # query_canceled: the statement was cancelled before its commit
            return FAILED
        if code[:2] in _REJECTED_CLASSES:
            return FAILED
        return INDETERMINATE
    return INDETERMINATE


def notice_label(notices: list) -> Optional[str]:
    """What an acknowledged op's notices say that matters for its fate (or None)."""
    for notice in notices:
        if SYNC_WAIT_CANCELLED in notice:
            return NOT_REPLICATED
    return None


def acknowledged_outcome(notice: Optional[str], took: float,
                         own_timeout: float) -> tuple[str, Optional[str]]:
    """(outcome, error) of a statement that returned: OK, with what its notices said
    (`notice_label`), unless the warning of a cancelled wait for synchronous replication
    came after `own_timeout` seconds (the session's own statement timeout, 0 for none):
    then ptor's timeout did the cancelling (ops.OWN_TIMEOUT_NOT_REPLICATED), and the op is
    in doubt. Someone else's cancel that late would need the statement held before it
    began (a freeze), then a wait outlasting the freeze: taken for ptor's own, its op is
    in doubt rather than acknowledged, so it can hide a loss but never make one up."""
    if notice == NOT_REPLICATED and own_timeout > 0 and took >= own_timeout:
        return INDETERMINATE, OWN_TIMEOUT_NOT_REPLICATED
    return OK, notice


def acknowledgement_notice(conn) -> Optional[str]:
    """What the notices of an acknowledged statement say that matters for its op's fate
    (`notice_label`), taken off the connection so the next op starts with none. Rare:
    for example a cancelled wait for a synchronous standby."""
    if not conn.notices:
        return None
    label = notice_label(conn.notices)
    del conn.notices[:]
    return label


def judge(outcome: str, error: Optional[str], took: float,
          own_timeout: float) -> tuple[str, Optional[str]]:
    """The outcome and label of an op (or a transaction's COMMIT) that took `took` seconds
    on a session whose own statement timeout is `own_timeout` (0: none, as behind a
    pooler): an acknowledgement that came with a warning may not be one
    (`acknowledged_outcome`); anything else stands as it is."""
    if error is None or outcome != OK:
        return outcome, error
    return acknowledged_outcome(error, took, own_timeout)
