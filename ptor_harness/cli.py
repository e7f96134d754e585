"""`ptor`: parse the scenario, run the drill, print the report, exit with its verdict.

The only module that reads argv. User-caused errors become one sentence on stderr and exit
code 2 (usage) or 3 (cluster); a bug in ptor says so and leaves the traceback in a file.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from typing import Optional

import psycopg2

from . import db, report
from .config import Scenario, parse_scenario
from .errors import EXIT_CLUSTER, EXIT_FAIL, PtorError
from .redact import redact
from .schema import drop_marked

log = logging.getLogger("ptor")


class RedactingFilter(logging.Filter):
    """Masks DSN passwords in every log record, whatever the code that logged it."""

    def __init__(self, secrets: tuple = ()) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = ()
        return True


def setup_logging(quiet: bool, secrets: tuple = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ptor: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def reset(scenario: Scenario) -> int:
    """Drop ptor's own objects (and only those) from the primary and the repo."""
    targets = [("primary", scenario.primary_pgdsn)]
    if scenario.repo_pgdsn:
        targets.append(("repo", scenario.repo_pgdsn))
    for name, dsn in targets:
        try:
            conn = db.connect(dsn, "ptor-reset", scenario.rto_conn_timeout, autocommit=False)
        except psycopg2.Error as exc:
            raise_cluster(f"cannot connect to the {name}: {db.error_label(exc)}")
        try:
            dropped = drop_marked(conn, scenario.schema)
        finally:
            conn.close()
        log.info("%s: dropped %s", name, ", ".join(dropped) if dropped else "nothing")
    return 0


def raise_cluster(message: str) -> None:
    from .errors import ClusterError

    raise ClusterError(message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `ptor` command; returns the exit code."""
    scenario = None
    try:
        scenario = parse_scenario(argv)
        setup_logging(scenario.quiet, scenario.secrets)
        if scenario.reset:
            return reset(scenario)
        from .coordinator import Drill

        progress = sys.stderr.isatty() and not scenario.quiet
        result = Drill(scenario, progress=progress).run()
        sys.stdout.write(report.render(result))
        sys.stdout.flush()
        if scenario.report_json:
            report.write_json(result, scenario.report_json)
        return report.exit_code(result)
    except PtorError as exc:
        secrets = scenario.secrets if scenario else ()
        sys.stderr.write(f"ptor: error: {redact(str(exc), secrets)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ptor: interrupted\n")
        return 130
    except Exception as exc:  # a bug in ptor: one line on screen, the traceback in a file
        secrets = scenario.secrets if scenario else ()
        fd, path = tempfile.mkstemp(prefix="ptor-crash-", suffix=".log")
        with os.fdopen(fd, "w") as out:
            out.write(redact(traceback.format_exc(), secrets))
        sys.stderr.write(f"ptor: internal error: {redact(str(exc), secrets)} "
                         f"(details in {path}; please report it)\n")
        return EXIT_CLUSTER if isinstance(exc, psycopg2.Error) else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
