"""Reading a scenario: flags, env vars and INI files into one validated Scenario.

Precedence is flag > env var > scenario file > default (configargparse's order). Nothing
else in ptor reads argv or the environment. `ptor`, `ptor reconcile` and `ptor history`
share the option table (options.py); every ConfigError leaving here is one safe line.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import configargparse

from ..errors import ConfigError
from .options import (
    CONFIG_ENV,
    OPTION_NAMES,
    OPTIONS,
    SECTIONS,
    package_version,
    parse_bool,
)
from .rules import check_dsn, check_schema_name, one_safe_line, validate
from .scenario import Scenario


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


# ptor's commands, by the first word; without one, `ptor [options]` runs a drill.
COMMANDS = {
    "drill": "run a drill: load, failover, reconciliation, report (the default)",
    "reconcile": "finish a run that did not (its coordinator died, or its repo stayed "
                 "away), or check a finished one again: reconcile its ledger against the "
                 "primary and write its report (--run RUN_ID), judged by the run's own "
                 "--expect and thresholds unless given again",
    "history": "recent drills, newest first, with trends",
    "report": "an earlier run's or campaign's report again, from its folder (--html: "
              "write report.html or campaign.html)",
    "campaign": "many drills back to back (--rounds) over a matrix of scenarios (--vary), "
                "judged as one distribution",
}
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


def run_id(text: str) -> str:
    """A run's id as ptor names its folders (and nothing a path could be built from)."""
    if not RUN_ID.fullmatch(text):
        raise ValueError(text)
    return text


run_id.__name__ = "run id (such as 20261125T210627Z-90a45e)"


def build_parser(command: str = "drill") -> configargparse.ArgumentParser:
    """The parser of `ptor` (a drill) or `ptor reconcile`: every option as a flag, an env
    var and a scenario-file key."""
    others = "; ".join(f"ptor {name}: {text}" for name, text in COMMANDS.items())
    parser = _Parser(
        prog="ptor" if command == "drill" else f"ptor {command}",
        description="Run a write load against a PostgreSQL HA cluster, let a failover "
        "happen, and prove its write RTO and its data loss (RPO)." if command == "drill"
        else COMMANDS[command],
        epilog=f"commands: {others}" if command == "drill" else None,
        formatter_class=configargparse.ArgumentDefaultsHelpFormatter,
        add_env_var_help=True,
        auto_env_var_prefix=None,
    )
    parser.add_argument("-c", "--config", is_config_file=True, env_var=CONFIG_ENV,
                        help="INI scenario file; any option can be a key in it")
    if command == "reconcile":
        parser.add_argument("--run", dest="run_id", type=run_id, required=True,
                            help="the run to finish: its folder name under --report-dir, "
                            "or its id in the repo's history")
    groups = {name: parser.add_argument_group(f"{name} options") for name in SECTIONS}
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"dest": opt.dest, "default": opt.default, "help": opt.help,
                                  "env_var": opt.env}
        if opt.flag:
            kwargs.update(nargs="?", const=True, type=parse_bool, metavar="BOOL")
        elif opt.multiple:
            kwargs.update(action="append", type=opt.type)
        else:
            kwargs["type"] = opt.type
        groups[opt.section].add_argument("--" + opt.name, **kwargs)
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


@one_safe_line
def parse_scenario(argv: Optional[Sequence[str]] = None,
                   env: Optional[dict] = None) -> Scenario:
    """argv + env + scenario file -> validated Scenario, or ConfigError with one sentence."""
    return _parse(argv, env, "drill")[0]


@one_safe_line
def parse_campaign(argv: Sequence[str], env: Optional[dict] = None) -> tuple[Scenario, dict]:
    """`ptor campaign [options]`: the base scenario, and the values as read, from which
    campaign/plan.py builds a scenario per cell of the --vary matrix."""
    scenario, _, raw = _parse(argv, env, "campaign")
    return scenario, raw


@one_safe_line
def parse_reconcile(argv: Sequence[str], env: Optional[dict] = None
                    ) -> tuple[str, Scenario, frozenset[str]]:
    """`ptor reconcile --run RUN_ID [options]`: the run's id, the scenario to reach the
    primary and the repo with, and the options this invocation gave (on the command line,
    in the environment or in a scenario file): a later check judges by the run's own
    settings where they were not given again."""
    scenario, ns, _ = _parse(argv, env, "reconcile")
    return ns.run_id, scenario, given_options(argv, env, "reconcile")


def given_options(argv: Optional[Sequence[str]], env: Optional[dict],
                  command: str) -> frozenset[str]:
    """The dest names of the options set by the user rather than left at their default:
    the same parser with every default suppressed keeps only what was given."""
    parser = build_parser(command)
    for action in parser._actions:  # argparse has no public way to suppress them all
        action.default = configargparse.SUPPRESS
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = parser.parse_args(argv, env_vars=dict(os.environ if env is None else env))
    return frozenset(vars(ns))


def _parse(argv: Optional[Sequence[str]], env: Optional[dict],
           command: str) -> tuple[Scenario, Any, dict]:
    """The validated scenario, the parsed namespace, and the options' values as read (before
    validation: a campaign varies them, then validates each cell)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    config_file = _config_path(argv, env)
    if config_file:
        check_scenario_file(config_file)
    ns = build_parser(command).parse_args(argv, env_vars=env)
    values = {opt.dest: getattr(ns, opt.dest) for opt in OPTIONS}
    for opt in OPTIONS:  # DefaultConfigFileParser hands us strings for flags: normalise
        if opt.flag and values[opt.dest] is not None:
            values[opt.dest] = parse_bool(values[opt.dest])
    raw = copy.deepcopy(values)
    return validate(values, config_file), ns, raw


@dataclass(frozen=True)
class ReportQuery:
    """What `ptor report` shows: one run folder's report, on the terminal or as HTML."""

    run_dir: str
    html: bool


@one_safe_line
def parse_report(argv: Sequence[str]) -> ReportQuery:
    """`ptor report RUN_DIR [--html]`."""
    parser = _Parser(prog="ptor report", description="An earlier run's (or campaign's) "
                     "report again, from its folder.")
    parser.add_argument("run_dir", help="the run's folder (it holds report.json), or a "
                                        "campaign's (campaign.json)")
    parser.add_argument("--html", action="store_true",
                        help="write report.html (campaign.html) in that folder, the "
                             "picture inside, and print its path")
    ns = parser.parse_args(list(argv), env_vars={})
    if not any(os.path.isfile(os.path.join(ns.run_dir, name))
               for name in ("report.json", "campaign.json")):
        raise ConfigError(f"{ns.run_dir} is not a run folder: it holds no report.json "
                          "(nor a campaign's campaign.json)")
    return ReportQuery(ns.run_dir, ns.html)


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
