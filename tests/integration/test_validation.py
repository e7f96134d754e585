"""A check that cannot finish is never a pass: the primary vanishes mid-validation."""

import signal
import time

import pytest

from ptor_harness import db, schema
from ptor_harness.ops import INSERT
from ptor_harness.validation import ValidationIncomplete, confirm_primary, reconcile_run

from ..unit.synthetic import op


class LedgerThatOutlivesThePrimary:
    """A ledger of two workers, one insert each; reading worker 1's ops kills the primary,
    so the check dies half way through (between the two workers' row streams)."""

    def __init__(self, primary_node) -> None:
        self.node = primary_node

    def ops_by_key(self, worker):
        if worker == 1:
            self.node.kill(signal.SIGKILL)
        return [op(1, INSERT, 1, 1.0, worker=worker)]


def test_primary_vanishing_mid_check_makes_validation_incomplete(make_lab):
    lab = make_lab("sync")
    conn = db.connect(lab.primary_dsn(), "ptor-test", 2.0, autocommit=False)
    schema.init_primary(conn, "ptor", 2)
    with conn.cursor() as cur:
        for worker in range(2):
            cur.execute(f"INSERT INTO {schema.worker_table('ptor', worker)} "
                        "(id, last_seq, payload, written_at) VALUES (1, 1, 'x', now())")
    conn.commit()
    conn.close()
    conn, _ = confirm_primary(lab.primary_dsn(), "ptor", 2.0, time.monotonic() + 10, 5.0)
    ledger = LedgerThatOutlivesThePrimary(lab.nodes["node1"])
    with pytest.raises(ValidationIncomplete, match="reading the primary failed mid-check"):
        reconcile_run(conn, ledger, "ptor", 2, "run", 64, False, [])
