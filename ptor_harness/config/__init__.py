"""Scenario: every option ptor takes, from flags, env vars and INI files, validated once.

options.py is the table of options; scenario.py the frozen Scenario and its sections;
rules.py what the values must satisfy; parse.py reads argv, env vars and scenario files.
The result is one frozen `Scenario`; nothing else in ptor reads argv or the environment.
"""

from .options import OPTIONS, WEEK, package_version
from .parse import HistoryQuery, parse_history, parse_scenario
from .rules import check_dsn, check_output_paths, check_schema_name, parse_faults, validate
from .scenario import Scenario, WorkerSpec, worker_specs

__all__ = ["OPTIONS", "WEEK", "HistoryQuery", "Scenario", "WorkerSpec", "check_dsn",
           "check_output_paths", "check_schema_name", "package_version", "parse_faults",
           "parse_history", "parse_scenario", "validate", "worker_specs"]
