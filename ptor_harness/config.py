"""Scenario: every option ptor takes, from flags, env vars and INI files, validated once.

Precedence is flag > env var > scenario file > default (configargparse's order). The result
is one frozen `Scenario`; nothing else in ptor reads argv or the environment. Workers get
an even smaller `WorkerSpec`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import configargparse

from .errors import ConfigError
from .lab.actions import FAULT_ACTIONS
from .redact import dsn_secrets, redact

ENV_PREFIX = "PTOR_"


def package_version() -> str:
    """The installed package's version (setup.cfg), or "unknown" from a bare checkout."""
    from importlib import metadata

    try:
        return metadata.version("ptor")
    except metadata.PackageNotFoundError:
        return "unknown"

# The original tool's env var names, kept working.
LEGACY_ENV = {"primary-pgdsn": "PRIMARY_PGDSN", "repo-pgdsn": "REPO_PGDSN"}
CONFIG_ENV = "PTOR_CONFIG"


def parse_bool(text: Any) -> bool:
    """Booleans as people write them in INI files, env vars and `--flag=value`."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on", "y", "t"):
        return True
    if value in ("0", "false", "no", "off", "n", "f", ""):
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


parse_bool.__name__ = "boolean"


WEEK = 7 * 24 * 3600.0  # the longest any seconds option may be


def _seconds(text: str) -> float:
    value = float(text)
    if math.isnan(value) or math.isinf(value):
        raise ValueError("not a finite number")
    if abs(value) > WEEK:
        raise ValueError(f"more than a week ({WEEK:g} s)")
    return value


_seconds.__name__ = "number of seconds"


@dataclass(frozen=True)
class OptionSpec:
    """One option: its flag name, type, default and help; the env var follows from the name."""

    name: str
    type: Any
    default: Any
    help: str
    flag: bool = False  # boolean: `--name`, `--name=false`, `name = true` in INI
    multiple: bool = False  # may be given several times (and as a comma-separated list)

    @property
    def env(self) -> str:
        return LEGACY_ENV.get(self.name, ENV_PREFIX + self.name.upper().replace("-", "_"))

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("primary-pgdsn", str, None,
               "libpq DSN or URI of the primary endpoint (multi-host with "
               "target_session_attrs=read-write, a proxy, or a cloud endpoint)"),
    OptionSpec("repo-pgdsn", str, None,
               "DSN of the PostgreSQL repo that keeps the ledger; when empty, an embedded "
               "SQLite ledger is kept in the run's output folder"),
    OptionSpec("parallel-workers", int, 10, "worker processes; each owns one table"),
    OptionSpec("init", parse_bool, False,
               "create ptor's schema and worker tables (idempotent), then run the drill",
               flag=True),
    OptionSpec("reset", parse_bool, False,
               "drop ptor's own objects from the primary and the repo, then exit", flag=True),
    OptionSpec("warmup-duration", _seconds, 10.0, "seconds of load before the drill proper"),
    OptionSpec("duration", _seconds, 60.0,
               "seconds of load after warmup; the load also ends once the outage has been "
               "over for --observe-after seconds"),
    OptionSpec("ops-per-worker", int, 0,
               "stop each worker after this many ops (like pgbench -t); 0: no limit"),
    OptionSpec("observe-after", _seconds, 5.0,
               "seconds of healthy writes to observe after an outage before ending the load"),
    OptionSpec("insert-percent", int, 50, "share of INSERT ops"),
    OptionSpec("update-percent", int, 30, "share of UPDATE ops"),
    OptionSpec("delete-percent", int, 20, "share of DELETE ops"),
    OptionSpec("full-data-validation", parse_bool, False,
               "compare every row on the primary (payloads, phantoms), not only the keys "
               "the run touched", flag=True),
    OptionSpec("async-repo-mode", parse_bool, False,
               "queue ledger writes without waiting for durability (flushed before "
               "reconciliation)", flag=True),
    OptionSpec("rto-conn-timeout", _seconds, 2.0,
               "seconds (fractions allowed) one connect attempt may take; used on every "
               "reconnect"),
    OptionSpec("check-primary-latency", parse_bool, False,
               "measure connect time and SELECT 1 round trips before the load", flag=True),
    OptionSpec("latency-samples", int, 50, "SELECT 1 round trips for --check-primary-latency"),
    OptionSpec("failover-command", str, None,
               "shell command that causes the failover; run once, --failover-after seconds "
               "after warmup"),
    OptionSpec("failover-after", _seconds, 5.0, "seconds after warmup to run the command"),
    OptionSpec("failover-timeout", _seconds, 300.0,
               "seconds the failover command may run; then its whole process group is "
               "killed and the verdict is at best unknown"),
    OptionSpec("expect", str, "failover",
               "what the drill must show: failover (a change of primary or a write outage; "
               "none seen: unknown), no-failover (a change of primary, or an outage above "
               "--max-write-rto, fails), or any (a plain load test)"),
    OptionSpec("fault", str, None,
               "built-in fault ACTION[:SECONDS] on the lab given by --lab-dir: kill-primary, "
               "stop-primary, switchover, kill-manager; SECONDS after warmup (default: "
               "failover-after); repeat the flag, or separate with commas, for several",
               multiple=True),
    OptionSpec("lab-dir", str, None, "directory of the ptor-lab lab that --fault acts on"),
    OptionSpec("max-outage", _seconds, 120.0,
               "give up when no primary accepts writes for this many seconds"),
    OptionSpec("max-write-rto", _seconds, None,
               "fail the drill when the cluster's write RTO exceeds this many seconds"),
    OptionSpec("max-lost-acknowledged", int, 0,
               "fail the drill when more acknowledged ops than this are lost"),
    OptionSpec("max-detection-time", _seconds, None,
               "fail the drill when the first failed or in-doubt op came more than this many "
               "seconds after the fault was injected"),
    OptionSpec("max-run-seconds", _seconds, None,
               "hard deadline for the whole run: when it passes, the load stops, the ledger "
               "is drained and what can be reconciled is reported"),
    OptionSpec("statement-timeout", _seconds, 10.0,
               "seconds any one statement may run before the server cancels it (0: none)"),
    OptionSpec("report-json", str, None, "write the machine-readable report to this file"),
    OptionSpec("report-dir", str, "ptor-runs",
               "each run writes a time-stamped folder here: report.json, timeline.csv, "
               "ptor.log, scenario.ini (secrets masked), and the embedded ledger"),
    OptionSpec("prometheus-file", str, None,
               "also write the run's figures and verdict to this file in Prometheus text "
               "format (for node_exporter's textfile collector)"),
    OptionSpec("junit-xml", str, None,
               "also write the drill as JUnit XML test cases to this file (for CI systems)"),
    OptionSpec("progress", parse_bool, None,
               "print a live one-line progress every second (default: only when stderr is "
               "a terminal)", flag=True),
    OptionSpec("schema", str, "ptor", "schema that holds ptor's own tables"),
    OptionSpec("payload-bytes", int, 64, "bytes of payload each op writes"),
    OptionSpec("seed", int, None, "seed for a reproducible op mix"),
    OptionSpec("quiet", parse_bool, False, "print only the report", flag=True),
)
OPTION_NAMES = tuple(o.name for o in OPTIONS)
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,40}")  # fullmatch: no trailing newline
EXPECTATIONS = ("failover", "no-failover", "any")


def check_schema_name(name: str) -> None:
    """A plain lower-case identifier that is not a system schema (pg_catalog, pg_toast,
    pg_temp*, every pg_ name PostgreSQL reserves, information_schema)."""
    if not IDENTIFIER.fullmatch(name):
        raise ConfigError(f"schema must be a plain lower-case identifier "
                          f"(letters, digits, _), got {name!r}")
    if name.startswith("pg_") or name == "information_schema":
        raise ConfigError(f"schema {name} is a system schema: ptor keeps its tables in a "
                          "schema of their own (the default is ptor)")


@dataclass(frozen=True)
class Scenario:
    """The whole, validated description of one drill. Immutable; passed to every process."""

    primary_pgdsn: str
    repo_pgdsn: Optional[str]
    parallel_workers: int
    init: bool
    reset: bool
    warmup_duration: float
    duration: float
    ops_per_worker: int
    observe_after: float
    insert_percent: int
    update_percent: int
    delete_percent: int
    full_data_validation: bool
    async_repo_mode: bool
    rto_conn_timeout: float
    check_primary_latency: bool
    latency_samples: int
    failover_command: Optional[str]
    failover_after: float
    failover_timeout: float
    expect: str
    fault: tuple  # ((action, seconds after warmup), ...), in time order
    lab_dir: Optional[str]
    max_outage: float
    max_write_rto: Optional[float]
    max_lost_acknowledged: int
    max_detection_time: Optional[float]
    max_run_seconds: Optional[float]
    statement_timeout: float
    report_json: Optional[str]
    report_dir: str
    prometheus_file: Optional[str]
    junit_xml: Optional[str]
    progress: Optional[bool]
    schema: str
    payload_bytes: int
    seed: Optional[int]
    quiet: bool
    config_file: Optional[str] = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Passwords carried by the DSNs, masked wherever text leaves ptor."""
        return dsn_secrets(self.primary_pgdsn) + dsn_secrets(self.repo_pgdsn)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def as_public_dict(self) -> dict:
        """The scenario as reports store it: every value, passwords masked."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = self.redact(value) if isinstance(value, str) else value
        return out


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process needs to know, and nothing more."""

    worker: int
    run_tag: str
    primary_pgdsn: str
    table: str  # fully quoted "schema"."worker_N"
    insert_percent: int
    update_percent: int
    delete_percent: int
    seed: int
    payload_bytes: int
    rto_conn_timeout: float
    statement_timeout: float
    sync_ledger: bool
    ops_limit: int = 0  # 0: until told to stop


class ScenarioFileParser(configargparse.ConfigFileParser):
    """Scenario files: `key = value` lines; `[section]` headers are ignored; comments are
    whole lines starting with `#` or `;`. A `#` or `;` inside a value is part of it (a
    shell command may need both: an inline comment must never cut a failover command
    short). A key given twice, or a line that is not `key = value`, is an error. A UTF-8
    byte order mark is accepted."""

    def get_syntax_description(self) -> str:
        return ("key = value lines; [section] headers ignored; whole-line comments start "
                "with # or ;")

    def parse(self, stream) -> dict:
        items: dict = {}
        for number, line in enumerate(stream, 1):
            text = (line.lstrip("\ufeff") if number == 1 else line).strip()
            if not text or text[0] in "#;" or (text[0] == "[" and text[-1] == "]"):
                continue
            key, equals, value = text.partition("=")
            key = key.strip()
            if not equals or not key:
                raise configargparse.ConfigFileParserException(
                    f"line {number} is not a key = value line")
            if key in items:
                raise configargparse.ConfigFileParserException(
                    f"key '{key[:60]}' is given twice (again on line {number})")
            items[key] = value.strip()
        return items


class _Parser(configargparse.ArgumentParser):
    """argparse that raises ConfigError instead of printing usage and exiting, and takes no
    abbreviation of an option (`--rese` is not `--reset`)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("config_file_parser_class", ScenarioFileParser)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(_friendly_argparse_message(message))


def _friendly_argparse_message(message: str) -> str:
    match = re.search(r"unrecognized arguments: (\S+)", message)
    if match:
        word = match.group(1).split("=", 1)[0].lstrip("-")
        return _unknown_message(f"unknown option --{word}", word)
    return message[0].upper() + message[1:] if message else message


def _unknown_message(prefix: str, word: str) -> str:
    close = difflib.get_close_matches(word.replace("_", "-"), OPTION_NAMES, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else "; see ptor --help for the options"
    return prefix + hint


def build_parser() -> configargparse.ArgumentParser:
    """The parser: every option as a flag, an env var and a scenario-file key."""
    parser = _Parser(
        prog="ptor",
        description="Run a write load against a PostgreSQL HA cluster, let a failover "
        "happen, and prove its write RTO and its data loss (RPO).",
        formatter_class=configargparse.ArgumentDefaultsHelpFormatter,
        add_env_var_help=True,
        auto_env_var_prefix=None,
    )
    parser.add_argument("-c", "--config", is_config_file=True, env_var=CONFIG_ENV,
                        help="INI scenario file; any option can be a key in it")
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"dest": opt.dest, "default": opt.default, "help": opt.help,
                                  "env_var": opt.env}
        if opt.flag:
            kwargs.update(nargs="?", const=True, type=parse_bool, metavar="BOOL")
        elif opt.multiple:
            kwargs.update(action="append", type=opt.type)
        else:
            kwargs["type"] = opt.type
        parser.add_argument("--" + opt.name, **kwargs)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    return parser


def _config_path(argv: Sequence[str], env: dict) -> Optional[str]:
    for i, arg in enumerate(argv):
        if arg in ("-c", "--config") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg.startswith("-c") and len(arg) > 2:
            return arg[2:]
    return env.get(CONFIG_ENV)


def check_scenario_file(path: str) -> None:
    """Refuse an unreadable file or an unknown key, naming it and the closest valid key."""
    try:
        with open(path, encoding="utf-8") as stream:
            items = ScenarioFileParser().parse(stream)
    except OSError as exc:
        raise ConfigError(f"cannot read scenario file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"scenario file {path} is not UTF-8 text") from None
    except configargparse.ConfigFileParserException as exc:
        raise ConfigError(f"cannot parse scenario file {path}: {exc}") from None
    for key in items:
        name = key.strip().replace("_", "-")
        if name not in OPTION_NAMES:
            raise ConfigError(_unknown_message(f"unknown key '{key}' in {path}", name))


MESSAGE_CHARS = 500


def check_output_paths(scenario: Scenario) -> None:
    """Every place the run will write must be usable before anything connects: the report
    folder (created if missing), and the folder of each export file. Called as a drill or
    `ptor reconcile` starts (parsing a scenario never looks at the file system)."""
    _check_output_paths(dataclasses.asdict(scenario))


def _check_output_paths(values: dict) -> None:
    report_dir = values["report_dir"]
    if not report_dir:
        raise ConfigError("report-dir must name a folder")
    existing = os.path.abspath(report_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"report-dir {report_dir!r} cannot be used: {existing!r} is not a "
                          "folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"report-dir {report_dir!r} cannot be used: {existing!r} is not "
                          "writable")
    for key in ("report_json", "prometheus_file", "junit_xml"):
        path = values.get(key)
        if not path:
            continue
        name = key.replace("_", "-")
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise ConfigError(f"{name} {path!r} is a folder; give a file name")
        if not os.path.isdir(folder):
            raise ConfigError(f"{name} {path!r}: its folder {folder!r} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{name} {path!r}: its folder {folder!r} is not writable")


def one_safe_line(parse):
    """Error messages quote the value that was wrong: a DSN pasted into the wrong key
    carries its password, a file name may hold a line break. Every ConfigError leaving
    `parse` has passwords masked and line breaks escaped, so it stays one line."""
    @functools.wraps(parse)
    def wrapped(*args, **kwargs):
        try:
            return parse(*args, **kwargs)
        except ConfigError as exc:
            text = redact(str(exc)).replace("\r", "\\r").replace("\n", "\\n")
            if len(text) > MESSAGE_CHARS:  # a 5 MB key is named by its start
                text = text[:MESSAGE_CHARS] + "..."
            raise ConfigError(text) from None
    return wrapped


@one_safe_line
def parse_scenario(argv: Optional[Sequence[str]] = None,
                   env: Optional[dict] = None) -> Scenario:
    """argv + env + scenario file -> validated Scenario, or ConfigError with one sentence."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    config_file = _config_path(argv, env)
    if config_file:
        check_scenario_file(config_file)
    ns = build_parser().parse_args(argv, env_vars=env)
    values = {opt.dest: getattr(ns, opt.dest) for opt in OPTIONS}
    for opt in OPTIONS:  # DefaultConfigFileParser hands us strings for flags: normalise
        if opt.flag and values[opt.dest] is not None:
            values[opt.dest] = parse_bool(values[opt.dest])
    return validate(values, config_file)


def validate(values: dict, config_file: Optional[str] = None) -> Scenario:
    """Check every value and the rules between them; build the frozen Scenario."""
    primary = values.get("primary_pgdsn")
    if not primary:
        raise ConfigError("no primary given: set --primary-pgdsn, PRIMARY_PGDSN or "
                          "primary-pgdsn in the scenario file")
    check_dsn("primary-pgdsn", primary)
    if values.get("repo_pgdsn"):
        check_dsn("repo-pgdsn", values["repo_pgdsn"])
    else:
        values["repo_pgdsn"] = None
    percents = [values[k] for k in ("insert_percent", "update_percent", "delete_percent")]
    if any(p < 0 for p in percents):
        raise ConfigError("insert-, update- and delete-percent must not be negative "
                          f"(got {percents[0]}/{percents[1]}/{percents[2]})")
    if sum(percents) != 100:
        raise ConfigError("insert-, update- and delete-percent must add up to 100 "
                          f"(got {percents[0]}+{percents[1]}+{percents[2]}={sum(percents)})")
    if values["insert_percent"] == 0:
        raise ConfigError("insert-percent must be above 0: updates and deletes need rows "
                          "that the run inserted")
    if not 1 <= values["parallel_workers"] <= 512:
        raise ConfigError(f"parallel-workers must be between 1 and 512 "
                          f"(got {values['parallel_workers']})")
    for key in ("warmup_duration", "duration", "observe_after", "failover_after",
                "statement_timeout"):
        if values[key] < 0:
            raise ConfigError(f"{key.replace('_', '-')} must not be negative "
                              f"(got {values[key]})")
    for key in ("rto_conn_timeout", "max_outage"):
        if values[key] <= 0:
            raise ConfigError(f"{key.replace('_', '-')} must be above 0 seconds "
                              f"(got {values[key]})")
    for key in ("max_write_rto", "max_detection_time"):
        if values.get(key) is not None and values[key] < 0:
            raise ConfigError(f"{key.replace('_', '-')} must not be negative "
                              f"(got {values[key]})")
    if values.get("max_run_seconds") is not None and values["max_run_seconds"] <= 0:
        raise ConfigError(f"max-run-seconds must be above 0 (got {values['max_run_seconds']})")
    if values["max_lost_acknowledged"] < 0:
        raise ConfigError("max-lost-acknowledged must not be negative")
    if values["ops_per_worker"] < 0:
        raise ConfigError(f"ops-per-worker must not be negative (got {values['ops_per_worker']})")
    if not 1 <= values["latency_samples"] <= 100000:
        raise ConfigError("latency-samples must be between 1 and 100000")
    if not 16 <= values["payload_bytes"] <= 1_000_000:
        raise ConfigError("payload-bytes must be between 16 and 1000000")
    check_schema_name(values["schema"])
    if values["expect"] not in EXPECTATIONS:
        raise ConfigError(f"expect must be one of {', '.join(EXPECTATIONS)}, "
                          f"got {values['expect']!r}")
    if values["failover_timeout"] <= 0:
        raise ConfigError(f"failover-timeout must be above 0 seconds "
                          f"(got {values['failover_timeout']})")
    if 0 < values["statement_timeout"] < 0.001:
        raise ConfigError(f"statement-timeout must be 0 (none) or at least 0.001 s: "
                          f"PostgreSQL would read {values['statement_timeout']} s as no limit")
    for opt in OPTIONS:  # what scenario.ini cannot hold on one line is refused here
        value = values.get(opt.dest)
        if isinstance(value, str):
            if "\n" in value or "\r" in value:
                raise ConfigError(f"{opt.name} must be one line: a line break cannot be kept "
                                  "in a scenario file")
            values[opt.dest] = value.strip()
    if values.get("failover_command") is not None and not values["failover_command"].strip():
        values["failover_command"] = None
    values["fault"] = parse_faults(values.get("fault"), values["failover_after"])
    if values["fault"] and not values.get("lab_dir"):
        raise ConfigError("--fault acts on a ptor-lab lab: give its directory with --lab-dir "
                          "(or use --failover-command for any other cluster)")
    return Scenario(config_file=config_file, **values)


_check_output_paths = one_safe_line(_check_output_paths)


def parse_faults(specs, default_at: float) -> tuple:
    """`ACTION[:SECONDS]` items (flags repeated, or comma-separated, or an INI list) into
    ((action, seconds), ...) sorted by time."""
    items = []
    for spec in specs or ():
        for part in str(spec).strip().strip("[]").split(","):
            part = part.strip().strip("'\"")
            if not part:
                continue
            action, _, at = part.partition(":")
            action = action.strip()
            if action not in FAULT_ACTIONS:
                close = difflib.get_close_matches(action, FAULT_ACTIONS, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else \
                    f"; faults: {', '.join(FAULT_ACTIONS)}"
                raise ConfigError(f"unknown fault '{action}'{hint}")
            try:
                seconds = _seconds(at) if at.strip() else default_at
            except ValueError:
                raise ConfigError(f"fault '{part}': the time after ':' must be a number of "
                                  "seconds") from None
            if seconds < 0:
                raise ConfigError(f"fault '{part}': the time must not be negative")
            items.append((action, seconds))
    return tuple(sorted(items, key=lambda item: item[1]))


def check_dsn(name: str, dsn: str) -> None:
    """A DSN libpq cannot parse is a usage error; the message never shows the password."""
    from psycopg2 import ProgrammingError
    from psycopg2.extensions import parse_dsn

    try:
        parse_dsn(dsn)
    except ProgrammingError as exc:
        raise ConfigError(f"{name} is not a valid libpq connection string: "
                          f"{dsn_problem(str(exc))} (its text is not shown: it may hold a "
                          "password)") from None


# libpq's parse errors quote the text they stumbled on, which may be a password (with
# `password=Head Tail`, libpq names "Tail"): ptor names the kind of problem instead.
_DSN_PROBLEMS = (
    ("missing \"=\"", "a word without \"=\" (a value with spaces must be in single "
                      "quotes)"),
    ("unterminated quoted string", "an unterminated quoted value"),
    ("invalid connection option", "an unknown keyword"),
    ("percent-encoded", "an invalid percent-encoded character in the URI"),
    ("invalid URI", "an invalid URI"),
    ("invalid integer", "a keyword that takes a number given something else"),
    ("unexpected spaces", "unexpected spaces in the URI"),
    ("end of string", "a URI cut short"),
)


def dsn_problem(libpq_error: str) -> str:
    """The kind of problem a libpq parse error describes, without any of the DSN's text."""
    for marker, problem in _DSN_PROBLEMS:
        if marker in libpq_error:
            return problem
    return "libpq cannot parse it"


def worker_specs(scenario: Scenario, run_tag: str, seed: int) -> list[WorkerSpec]:
    """One WorkerSpec per worker, with its own table and a seed derived from the run's."""
    from .schema import worker_table

    return [
        WorkerSpec(
            worker=w,
            run_tag=run_tag,
            primary_pgdsn=scenario.primary_pgdsn,
            table=worker_table(scenario.schema, w),
            insert_percent=scenario.insert_percent,
            update_percent=scenario.update_percent,
            delete_percent=scenario.delete_percent,
            seed=seed * 1_000_003 + w,
            payload_bytes=scenario.payload_bytes,
            rto_conn_timeout=scenario.rto_conn_timeout,
            statement_timeout=scenario.statement_timeout,
            sync_ledger=not scenario.async_repo_mode,
            ops_limit=scenario.ops_per_worker,
        )
        for w in range(scenario.parallel_workers)
    ]


@dataclass(frozen=True)
class HistoryQuery:
    """What `ptor history` reads: a PostgreSQL repo, else the run folders."""

    repo_pgdsn: Optional[str]
    report_dir: str
    schema: str
    limit: int
    as_json: bool
    rto_conn_timeout: float


@one_safe_line
def parse_history(argv: Sequence[str], env: Optional[dict] = None) -> HistoryQuery:
    """`ptor history [-c FILE] [--repo-pgdsn DSN] [--report-dir DIR] [--limit N] [--json]`:
    the same keys, env vars and scenario files as a drill, other keys ignored. The runs
    come from the PostgreSQL repo when one is configured, unless --report-dir is given on
    the command line: then from the run folders there."""
    env = dict(os.environ if env is None else env)
    by_name = {o.name: o for o in OPTIONS}
    parser = _Parser(prog="ptor history", description="Recent drills, newest first, with "
                     "trends.", ignore_unknown_config_file_keys=True)
    parser.add_argument("-c", "--config", is_config_file=True, env_var=CONFIG_ENV,
                        help="a scenario file: its repo-pgdsn, report-dir and schema are used")
    for name in ("repo-pgdsn", "report-dir", "schema", "rto-conn-timeout"):
        opt = by_name[name]
        parser.add_argument("--" + name, dest=opt.dest, type=opt.type, default=opt.default,
                            env_var=opt.env, help=opt.help)
    parser.add_argument("--limit", type=int, default=20, help="how many runs to show")
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print the history as JSON")
    ns = parser.parse_args(list(argv), env_vars=env)
    if ns.repo_pgdsn:
        check_dsn("repo-pgdsn", ns.repo_pgdsn)
    if not 1 <= ns.limit <= 10000:
        raise ConfigError(f"limit must be between 1 and 10000 (got {ns.limit})")
    check_schema_name(ns.schema)
    folders_asked = any(a == "--report-dir" or a.startswith("--report-dir=") for a in argv)
    repo = None if folders_asked else (ns.repo_pgdsn or None)  # an explicit flag wins
    if repo is None and not os.path.isdir(ns.report_dir):
        raise ConfigError(f"no run folders to read: {ns.report_dir} is not a directory "
                          "(give --report-dir, or --repo-pgdsn for a PostgreSQL repo)")
    return HistoryQuery(repo, ns.report_dir, ns.schema, ns.limit, ns.as_json,
                        ns.rto_conn_timeout)
