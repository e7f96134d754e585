"""`ptor`: parse the scenario, run the drill, print the report, exit with its verdict.

The only module that reads argv. User-caused errors become one sentence on stderr and exit
code 2 (usage) or 3 (cluster); a bug in ptor says so and leaves the traceback in a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Sequence
from typing import Optional

import psycopg2

from . import db, lock
from .config import Scenario, check_output_paths, package_version, parse_history, parse_scenario
from .config.parse import parse_reconcile, parse_report
from .errors import (
    EXIT_CLUSTER,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    ClusterError,
    ConfigError,
    PtorError,
)
from .outputs import render, report
from .redact import MASK, dsn_secrets, redact
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
    # a record meant for the run's log file only (the terminal gets its own sentence)
    handler.addFilter(lambda record: not getattr(record, "file_only", False))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)  # the run's log file keeps everything, even when quiet
    log.propagate = False


def log_to_file(path: str, secrets: tuple) -> logging.Handler:
    """Also keep every log line of the run, with timestamps, in its folder."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # owner only
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    log.addHandler(handler)
    return handler


def finish(drill, result: dict) -> int:
    """One ending for a drill and for `ptor reconcile` (see ending)."""
    return ending(render.render(result), drill.output_failures, drill.scenario.redact, result,
                  report.exit_code(result))


def ending(text: str, failures: list, redact, result: dict, code: int) -> int:
    """How every command that ran drills ends: its report on the terminal, a sentence for
    each output that could not be written (every other one was), and its exit code (128 +
    N when signal N ended it)."""
    emit(text)
    for failure in failures:
        sys.stderr.write(f"ptor: error: {redact(failure)}\n")
    if result["interrupted"]:
        return EXIT_INTERRUPTED + signal.Signals[result["interrupted"]].value
    return code


def reconcile_run_later(argv: list) -> int:
    """`ptor reconcile --run RUN_ID [scenario options]`: reconcile a run whose coordinator
    died, from its ledger and the primary, and write its report."""
    run_id, scenario, given = parse_reconcile(argv)
    check_output_paths(scenario)
    hide_passwords_from_ps(scenario.secrets)
    setup_logging(scenario.outputs.quiet, scenario.secrets)
    from .drill.later import LateReconciliation

    drill = LateReconciliation(scenario, run_id=run_id, given=given)
    if os.path.isdir(drill.run_dir):  # the run's own log goes on
        log_to_file(os.path.join(drill.run_dir, "ptor.log"), scenario.secrets)
    return finish(drill, drill.run())


def show_history(argv: list) -> int:
    """`ptor history`: recent runs from the repo (or the run folders), newest first."""
    from .outputs import history

    skipped: list[str] = []
    try:
        query = parse_history(argv)
        secrets = dsn_secrets(query.repo_pgdsn)
        if query.repo_pgdsn:
            runs = history.from_repo(query.repo_pgdsn, query.schema, query.limit,
                                     query.rto_conn_timeout, skipped)
            source = f"the repo ({query.schema}.ledger_run)"
        else:
            runs = history.from_report_dir(query.report_dir, query.limit, skipped)
            source = query.report_dir
    except PtorError as exc:
        sys.stderr.write(f"ptor: error: {redact(str(exc), ())}\n")
        return exc.exit_code
    campaigns = [] if query.repo_pgdsn else \
        history.campaigns_from_report_dir(query.report_dir, query.limit, skipped)
    for line in skipped:
        sys.stderr.write(f"ptor: {redact(line, secrets)}\n")
    # masked field by field before it is serialised: masking JSON text could break it
    runs = [dataclasses.replace(run, reason=redact(run.reason, secrets),
                                faults=redact(run.faults, secrets)) for run in runs]
    emit(history.as_json(runs, campaigns) if query.as_json else
         history.render(runs, source) + history.render_campaigns(campaigns))
    return 0


def show_report(argv: list) -> int:
    """`ptor report RUN_DIR [--html]`: an earlier run's report, read through the one
    reader of report.json (any format ptor wrote), on the terminal or as report.html."""
    from .outputs import exports, render, report_file

    try:
        query = parse_report(argv)
        if not os.path.isfile(os.path.join(query.run_dir, "report.json")):  # a campaign's
            from .campaign import outputs as campaign_outputs

            emit(campaign_outputs.shown(query.run_dir, query.html))
            return 0
        result = report_file.load(os.path.join(query.run_dir, "report.json"))
        if result.get("verdict") is None:
            raise ConfigError(f"the run in {query.run_dir} "
                              f"{report_file.unfinished_as_said(result)}")
        if query.html:
            emit(exports.write_html(result, query.run_dir) + "\n")
        else:
            emit(render.render(result) + "\n")
    except OSError as exc:
        sys.stderr.write(f"ptor: error: cannot write report.html: {exc.strerror}\n")
        return EXIT_CLUSTER
    except PtorError as exc:
        sys.stderr.write(f"ptor: error: {redact(str(exc), ())}\n")
        return exc.exit_code
    return 0


def reset(scenario: Scenario) -> int:
    """Drop ptor's own objects (and only those) from the primary and the repo."""
    targets = [("primary", scenario.connection.primary_pgdsn)]
    if scenario.connection.repo_pgdsn:
        targets.append(("repo", scenario.connection.repo_pgdsn))
    c = scenario.connection
    for name, dsn in targets:
        held = lock.acquire(dsn, name, c.schema, "reset", c.rto_conn_timeout,
                            c.statement_timeout)  # never under a running drill
        try:
            conn = db.connect(dsn, "ptor-reset", c.rto_conn_timeout, autocommit=False)
        except psycopg2.Error as exc:
            held.close()
            raise ClusterError(f"cannot connect to the {name}: {db.error_label(exc)}") from None
        try:
            dropped = drop_marked(conn, c.schema)
        finally:
            conn.close()
            held.close()
        log.info("%s: dropped %s", name, ", ".join(dropped) if dropped else "nothing")
    return 0


@contextlib.contextmanager
def stop_on_signals(drill):
    """SIGINT / SIGTERM while a drill runs: the first ends the load and lets the drill
    drain the ledger, reconcile and report (exit 128 + signal); a second one exits at once,
    killing ptor's own child processes (sync repo mode has already made every intent
    durable, so the ledger still holds every op that may have been acknowledged)."""
    received: list[int] = []

    def handle(signum, frame) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            drill.request_stop(name)
            return
        sys.stderr.write(f"ptor: {name} again: exiting now without a report\n")
        drill.kill_faults()
        for child in multiprocessing.active_children():
            child.kill()
        os._exit(EXIT_INTERRUPTED + signum)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


DSN_FLAGS = ("--primary-pgdsn", "--repo-pgdsn", "--node-dsn")


def masked_argv(argv: list[str], secrets: tuple[str, ...] = ()) -> list[str]:
    """The command line with passwords masked; a DSN flag's value that libpq cannot parse
    is masked whole (where its password ends cannot be known)."""
    from psycopg2.extensions import parse_dsn

    def dsn_value(value: str) -> str:
        try:
            parse_dsn(value)
        except Exception:
            return MASK
        return redact(value, secrets)

    out = []
    for i, arg in enumerate(argv):
        flag, equals, value = arg.partition("=")
        if i and argv[i - 1] in DSN_FLAGS:
            out.append(dsn_value(arg))
        elif equals and flag in DSN_FLAGS:
            out.append(f"{flag}={dsn_value(value)}")
        else:
            out.append(redact(arg, secrets))
    return out


def hide_passwords_from_ps(secrets: tuple[str, ...] = ()) -> None:
    """A password given as a flag sits in the process's command line, which any local user
    can read (ps, /proc/PID/cmdline): rewrite the title masked. setproctitle overwrites the
    argv memory itself, which Python alone cannot do."""
    args = sys.argv[1:]
    masked = masked_argv(args, secrets)
    if masked != args:
        try:
            import setproctitle
        except ImportError:  # installed without its dependencies: the title stays as is
            return
        # it starts with ptor whatever the interpreter, so `pgrep ptor` still finds it
        setproctitle.setproctitle(" ".join(["ptor", *masked]))


class OutputClosed(BaseException):
    """Whoever read ptor's standard output went away (`ptor history | head`). Not an
    Exception, so no handler on the way mistakes it for an error of ptor's."""


def emit(text: str) -> None:
    """Write to standard output. A closed pipe ends ptor quietly; any other failure (a
    full disk behind a redirection) is one sentence, exit 3."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise OutputClosed() from None
    except OSError as exc:
        discard_stdout()  # what is still buffered must not fail again at exit
        raise ClusterError(f"cannot write to standard output: {exc.strerror or exc}") from None


def discard_stdout() -> None:
    """Point standard output at /dev/null: the interpreter flushes it at exit, and a flush
    that fails again (a closed pipe, a full disk) would turn the exit code into 120."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `ptor` command; returns the exit code."""
    try:
        return run_command(argv)
    except OutputClosed:
        discard_stdout()
        return 0
    except PtorError as exc:  # from emit, outside any command's own handling
        sys.stderr.write(f"ptor: error: {exc}\n")
        return exc.exit_code


def run_command(argv: Optional[Sequence[str]] = None) -> int:
    """`ptor [drill]`, `ptor history` or `ptor reconcile`, by the first word
    (config.parse.COMMANDS); whatever goes wrong in any of them is one sentence on stderr,
    never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    db.share_between_threads()  # the coordinator's threads use PostgreSQL side by side
    hide_passwords_from_ps()  # DSN passwords, by their pattern, before anything else
    if argv[:1] == ["--version"]:
        print(f"ptor {package_version()}")
        return 0
    commands = {"drill": run_drill, "reconcile": reconcile_run_later,
                "history": show_history, "campaign": run_campaign, "report": show_report}
    if argv[:1] and argv[0] in commands:
        return guarded(lambda: commands[argv[0]](argv[1:]), argv)
    return guarded(lambda: run_drill(argv), argv)  # bare `ptor [options]`: a drill


def guarded(command, argv: list) -> int:
    """Run one command. A user's error (PtorError) is one sentence with its exit code; a
    bug in ptor is one line on screen and its traceback in a file."""
    secrets = tuple(s for arg in argv for s in dsn_secrets(arg)) if argv else ()
    try:
        return command()
    except PtorError as exc:
        sys.stderr.write(f"ptor: error: {redact(str(exc), secrets)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ptor: interrupted\n")
        return 130
    except Exception as exc:
        fd, path = tempfile.mkstemp(prefix="ptor-crash-", suffix=".log")
        with os.fdopen(fd, "w") as out:
            out.write(redact(traceback.format_exc(), secrets))
        sys.stderr.write(f"ptor: internal error: {redact(str(exc), secrets)[:500]} "
                         f"(details in {path}; please report it)\n")
        return EXIT_CLUSTER if isinstance(exc, psycopg2.Error) else EXIT_FAIL


def run_drill(argv: list) -> int:
    """`ptor [options]`: a drill (or --reset)."""
    scenario = parse_scenario(argv)
    hide_passwords_from_ps(scenario.secrets)
    setup_logging(scenario.outputs.quiet, scenario.secrets)
    if scenario.preparation.reset:
        return reset(scenario)
    check_output_paths(scenario)
    from .drill.coordinator import Drill

    progress = scenario.outputs.progress
    if progress is None:
        progress = sys.stderr.isatty() and not scenario.outputs.quiet
    drill = Drill(scenario, progress=progress)
    log_to_file(os.path.join(drill.run_dir, "ptor.log"), scenario.secrets)
    with stop_on_signals(drill):
        result = drill.run()
    return finish(drill, result)



def run_campaign(argv: list) -> int:
    """`ptor campaign [options]`: --rounds drills per cell of the --vary matrix, each after
    the health gate; the campaign's report; its verdict's exit code (128 + N when a signal
    ended it after the round under way)."""
    from .campaign import outputs as campaign_outputs
    from .campaign.plan import matrix
    from .campaign.runner import Campaign
    from .config.parse import parse_campaign

    base, raw = parse_campaign(argv)
    hide_passwords_from_ps(base.secrets)
    setup_logging(base.outputs.quiet, base.secrets)
    check_output_paths(base)
    cells = matrix(base, raw)
    for cell in cells:
        check_output_paths(cell.scenario)

    @contextlib.contextmanager
    def round_logged(drill):
        handler = log_to_file(os.path.join(drill.run_dir, "ptor.log"), base.secrets)
        try:
            yield
        finally:
            log.removeHandler(handler)
            handler.close()

    campaign = Campaign(base, cells, round_logged)
    log.info("campaign %s: %d cell(s) x %d round(s) in %s", campaign.id, len(cells),
             base.campaign.rounds, campaign.dir)
    with stop_on_signals(campaign):
        campaign.run()
    result = campaign.summary()
    failures = campaign_outputs.write_all(result, base.outputs)
    return ending(campaign_outputs.render(result), failures, base.redact, result,
                  report.EXIT_CODES[result["verdict"]])


if __name__ == "__main__":
    sys.exit(main())
