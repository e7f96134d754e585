"""The rules a scenario's values must follow: each value alone, and the values together.

Every rule broken is one sentence naming the option (ConfigError, exit 2); a DSN's text is
never quoted, since it may hold a password.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from typing import Optional

from ..errors import ConfigError
from ..lab.actions import FAULT_ACTIONS, split_action
from ..lab.settings import LAB_SETTINGS
from ..redact import redact
from .options import CDC_PLUGINS, EXPECTATIONS, IDENTIFIER, OPTIONS, _seconds
from .scenario import Scenario

MAX_PAYLOAD_BYTES = 1024 * 1024  # an op's payload: at most 1 MiB of WAL
MAX_OPS_PER_TRANSACTION = 1000  # a block of intents holds whole transactions
MAX_RATE = 10_000_000.0  # ops per second: a bound on --rate, far past any one harness

MESSAGE_CHARS = 500


def check_schema_name(name: str) -> None:
    """A plain lower-case identifier that is not a system schema (pg_catalog, pg_toast,
    pg_temp*, every pg_ name PostgreSQL reserves, information_schema)."""
    if not IDENTIFIER.fullmatch(name):
        raise ConfigError(f"schema must be a plain lower-case identifier "
                          f"(letters, digits, _), got {name!r}")
    if name.startswith("pg_") or name == "information_schema":
        raise ConfigError(f"schema {name} is a system schema: ptor keeps its tables in a "
                          "schema of their own (the default is ptor)")


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
    if values["standby_lag_threshold"] < 0:
        raise ConfigError("standby-lag-threshold must not be negative (0: no lag events)")
    if not 0 <= values["rate"] <= MAX_RATE:
        raise ConfigError(f"rate must be between 0 (no target) and {MAX_RATE:g} ops per "
                          f"second, got {values['rate']:g}")
    if values["ops_per_worker"] < 0:
        raise ConfigError(f"ops-per-worker must not be negative (got {values['ops_per_worker']})")
    if not 1 <= values["ops_per_transaction"] <= MAX_OPS_PER_TRANSACTION:
        raise ConfigError(f"ops-per-transaction must be between 1 and "
                          f"{MAX_OPS_PER_TRANSACTION}, got {values['ops_per_transaction']}")
    if not 1 <= values["latency_samples"] <= 100000:
        raise ConfigError("latency-samples must be between 1 and 100000")
    if not 16 <= values["payload_bytes"] <= MAX_PAYLOAD_BYTES:
        raise ConfigError(f"payload-bytes must be between 16 and {MAX_PAYLOAD_BYTES} (1 MiB), "
                          f"got {values['payload_bytes']}")
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
    values["node_dsn"] = parse_node_dsns(values.get("node_dsn"))
    values["background_load"] = parse_background_loads(values.get("background_load"))
    if not 0 < values["brownout_threshold"] <= 1:
        raise ConfigError(f"brownout-threshold must be a share above 0 and at most 1 "
                          f"(got {values['brownout_threshold']})")
    if values["observe_interval"] != 0 and not 0.01 <= values["observe_interval"] <= 60:
        raise ConfigError(f"observe-interval must be 0 (no observer) or between 0.01 and 60 "
                          f"seconds (got {values['observe_interval']})")
    check_cdc(values)
    check_campaign(values)
    scenario = Scenario.from_values(values, config_file)
    check_faults_before_deadline(scenario)
    return scenario


def check_faults_before_deadline(scenario: Scenario) -> None:
    """A fault due after --max-run-seconds would never run: the drill would load for the
    whole deadline and end UNKNOWN. Refused now, where a scheduled run's owner reads it,
    not after the deadline."""
    deadline, last = scenario.thresholds.max_run_seconds, scenario.last_fault_due()
    if deadline is None or last is None:
        return
    what, due = last
    warmup = scenario.load.warmup_duration
    if due >= deadline:
        raise ConfigError(f"max-run-seconds {deadline:g} ends the run before {what} is due at "
                          f"{due:g} s (the {warmup:g} s warmup, then {due - warmup:g} s): "
                          "raise max-run-seconds or inject the fault sooner")


def check_cdc(values: dict) -> None:
    """--cdc-*: names PostgreSQL will take as they are, a known plugin, a threshold."""
    for key in ("cdc_slot", "cdc_publication"):
        name = values.get(key)
        if name is not None and not IDENTIFIER.fullmatch(name):
            raise ConfigError(f"{key.replace('_', '-')} must be a lower-case name of letters, "
                              f"digits and _ (at most 41 characters), got {name!r}")
    if values["cdc_plugin"] not in CDC_PLUGINS:
        raise ConfigError(f"cdc-plugin must be one of {', '.join(CDC_PLUGINS)}, "
                          f"got {values['cdc_plugin']!r}")
    if values["max_cdc_missed"] < 0:
        raise ConfigError("max-cdc-missed must not be negative")
    if values.get("cdc_publication") is None:
        values["cdc_publication"] = f"{values['schema']}_cdc"
    if values["cdc_create_slot"] and not values.get("cdc_slot"):
        raise ConfigError("cdc-create-slot needs the slot's name: give --cdc-slot")


def check_campaign(values: dict) -> None:
    """The campaign section: its numbers, and --vary items in the form KEY=V1,V2 over an
    option a drill has (their values are checked cell by cell, campaign/plan.py)."""
    if not 1 <= values["rounds"] <= 1000:
        raise ConfigError(f"rounds must be between 1 and 1000 (got {values['rounds']})")
    if values["settle_timeout"] <= 0:
        raise ConfigError("settle-timeout must be above 0 seconds")
    if values["max_failed_rounds"] < 0 or (values.get("max_lost_acknowledged_total") or 0) < 0:
        raise ConfigError("max-failed-rounds and max-lost-acknowledged-total must not be "
                          "negative")
    if values.get("max_write_rto_p95") is not None and values["max_write_rto_p95"] < 0:
        raise ConfigError("max-write-rto-p95 must not be negative")
    varied = []
    for spec in values.get("vary") or ():
        for item in str(spec).split(";"):
            if not item.strip():
                continue
            key, has_values, listed = item.strip().partition("=")
            key = key.strip()
            opt = next((o for o in OPTIONS if o.name == key), None)
            if not has_values or not [v for v in listed.split(",") if v.strip()]:
                raise ConfigError(f"vary '{item.strip()}': give KEY=VALUE1,VALUE2")
            if key in LAB_SETTINGS:
                check_lab_setting(key, listed, values)
            elif opt is None or opt.section in ("campaign", "outputs"):
                close = difflib.get_close_matches(key, [o.name for o in OPTIONS], n=1)
                raise ConfigError(f"vary '{key}': not an option a drill can vary" + (
                    f"; did you mean '{close[0]}'?" if close else ""))
            if key in (k for k, _ in varied):
                raise ConfigError(f"vary '{key}' is given twice")
            varied.append((key, tuple(v.strip() for v in listed.split(",") if v.strip())))
    values["vary"] = tuple(f"{k}={','.join(vs)}" for k, vs in varied)


def check_lab_setting(key: str, listed: str, values: dict) -> None:
    """A lab setting (lab/settings.py) varied by a campaign: only on a ptor lab, only the
    values the lab can set."""
    if not values.get("lab_dir"):
        raise ConfigError(f"vary '{key}': a setting of a ptor lab; give --lab-dir")
    allowed = LAB_SETTINGS[key]
    for value in (v.strip() for v in listed.split(",") if v.strip()):
        if value not in allowed:
            raise ConfigError(f"vary {key}: '{value}' is not one of {', '.join(allowed)}")


MAX_BACKGROUND_LOADS = 8


def _commands_in(spec) -> list[str]:
    """One --background-load value: a command, whole (a shell command may hold commas and
    semicolons, so it is never split), or a JSON list of commands (how a scenario file,
    which takes a key once, holds several; scenario.ini writes them so)."""
    text = str(spec).strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            listed = json.loads(text)
        except ValueError:
            listed = None
        if isinstance(listed, list) and all(isinstance(c, str) for c in listed):
            return [c.strip() for c in listed]
    return [text]


def parse_background_loads(specs) -> tuple:
    """--background-load commands (see _commands_in); `none` or an empty value is no
    command (a campaign's cell without a background load)."""
    commands = tuple(c for spec in specs or () for c in _commands_in(spec)
                     if c and c.lower() != "none")
    if len(commands) > MAX_BACKGROUND_LOADS:
        raise ConfigError(f"background-load is given {len(commands)} times; at most "
                          f"{MAX_BACKGROUND_LOADS} commands run beside the load")
    for command in commands:
        if "\n" in command or "\r" in command:
            raise ConfigError("background-load must be one line: a line break cannot be "
                              "kept in a scenario file")
    return commands


def parse_node_dsns(specs) -> tuple:
    """--node-dsn values (the flag repeated, or DSNs separated by ';' in one value) as a
    tuple of checked DSNs."""
    dsns = []
    for spec in specs or ():
        for part in str(spec).split(";"):
            if part.strip():
                check_dsn("node-dsn", part.strip())
                dsns.append(part.strip())
    return tuple(dsns)


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
            try:
                split_action(action)
            except ValueError as exc:
                name = action.partition("=")[0].strip()
                if name in FAULT_ACTIONS:
                    raise ConfigError(str(exc)) from None
                close = difflib.get_close_matches(name, FAULT_ACTIONS, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else \
                    f"; faults: {', '.join(FAULT_ACTIONS)}"
                raise ConfigError(f"unknown fault '{name}'{hint}") from None
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
def check_output_paths(scenario: Scenario) -> None:
    """Every place the run will write must be usable before anything connects: the report
    folder (created if missing), and the folder of each export file. Called as a drill or
    `ptor reconcile` starts (parsing a scenario never looks at the file system)."""
    _check_output_paths(scenario.values())


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
