"""Outcome classification: definitely-not-committed versus in doubt."""

import psycopg2
import pytest

from ptor_harness.acknowledgement import acknowledged_outcome, classify, judge
from ptor_harness.db import error_label
from ptor_harness.ops import FAILED, INDETERMINATE, NOT_REPLICATED, OK, OWN_TIMEOUT_NOT_REPLICATED


def server_error(base, code):
    """An error as the server sends it: the class of psycopg2 with that SQLSTATE."""
    cls = type("ServerError", (base,), {"pgcode": code})
    return cls(f"server said {code}")


@pytest.mark.parametrize("exc, sent, outcome", [
    (psycopg2.OperationalError("server closed the connection unexpectedly"), True,
     INDETERMINATE),
    (psycopg2.OperationalError("SSL SYSCALL error: EOF detected"), True, INDETERMINATE),
    (psycopg2.OperationalError("could not connect"), False, FAILED),
    (psycopg2.InterfaceError("connection already closed"), True, FAILED),
    (server_error(psycopg2.OperationalError, "57P01"), True, INDETERMINATE),  # admin shutdown
    (server_error(psycopg2.OperationalError, "57P02"), True, INDETERMINATE),  # crash shutdown
    (server_error(psycopg2.OperationalError, "08006"), True, INDETERMINATE),
    (server_error(psycopg2.InternalError, "25006"), True, FAILED),  # read-only standby
    (server_error(psycopg2.IntegrityError, "23505"), True, FAILED),
    (server_error(psycopg2.ProgrammingError, "42P01"), True, FAILED),
    (server_error(psycopg2.extensions.TransactionRollbackError, "40001"), True, FAILED),
    (server_error(psycopg2.extensions.QueryCanceledError, "57014"), True, FAILED),
    (server_error(psycopg2.InternalError, "XX000"), True, INDETERMINATE),
])
def test_classify(exc, sent, outcome):
    assert classify(exc, sent) == outcome


def test_error_label_keeps_sqlstate_and_first_line():
    exc = server_error(psycopg2.InternalError, "25006")
    assert error_label(exc) == "25006: server said 25006"
    multi = psycopg2.OperationalError("server closed the connection\n\tThis probably means")
    assert error_label(multi) == "OperationalError: server closed the connection"


@pytest.mark.parametrize("notice, took, own_timeout, outcome, error", [
    (None, 12.0, 10.0, OK, None),  # a slow commit with nothing to say
    (NOT_REPLICATED, 0.3, 10.0, OK, NOT_REPLICATED),  # someone else cancelled the wait
    (NOT_REPLICATED, 10.0, 10.0, INDETERMINATE, OWN_TIMEOUT_NOT_REPLICATED),  # ptor's own
    (NOT_REPLICATED, 12.0, 10.0, INDETERMINATE, OWN_TIMEOUT_NOT_REPLICATED),  # after a freeze
    (NOT_REPLICATED, 12.0, 0.0, OK, NOT_REPLICATED),  # no timeout of ptor's on the session
])
def test_a_commit_whose_wait_ptors_own_timeout_cancelled_is_in_doubt(notice, took,
                                                                     own_timeout, outcome,
                                                                     error):
    assert acknowledged_outcome(notice, took, own_timeout) == (outcome, error)


def test_judge_takes_an_acknowledgement_with_a_warning_for_what_it_is():
    """The one rule a worker applies to every op and COMMIT that returned or raised."""
    assert judge(OK, None, 12.0, 10.0) == (OK, None)
    assert judge(FAILED, "25006: read-only", 0.1, 10.0) == (FAILED, "25006: read-only")
    assert judge(OK, NOT_REPLICATED, 0.5, 10.0) == (OK, NOT_REPLICATED)  # someone's cancel
    assert judge(OK, NOT_REPLICATED, 10.5, 10.0) == (INDETERMINATE,
                                                     OWN_TIMEOUT_NOT_REPLICATED)
    assert judge(OK, NOT_REPLICATED, 10.5, 0.0) == (OK, NOT_REPLICATED)  # no own timeout
