"""Every option ptor takes: its name, section, type, default and help, in one table.

The flag (`--name`), the env var (`PTOR_NAME`, or the original tool's name) and the
scenario-file key (`name = value`) all follow from one `OptionSpec`, and its section says
which part of the `Scenario` (scenario.py) holds the value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

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
    section: str  # the Scenario section that holds it (SECTIONS)
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
    OptionSpec("primary-pgdsn", "connection", str, None,
               "libpq DSN or URI of the primary endpoint (multi-host with "
               "target_session_attrs=read-write, a proxy, or a cloud endpoint)"),
    OptionSpec("repo-pgdsn", "connection", str, None,
               "DSN of the PostgreSQL repo that keeps the ledger; when empty, an embedded "
               "SQLite ledger is kept in the run's output folder"),
    OptionSpec("parallel-workers", "load", int, 10, "worker processes; each owns one table"),
    OptionSpec("init", "preparation", parse_bool, False,
               "create ptor's schema and worker tables (idempotent), then run the drill",
               flag=True),
    OptionSpec("reset", "preparation", parse_bool, False,
               "drop ptor's own objects from the primary and the repo, then exit", flag=True),
    OptionSpec("warmup-duration", "load", _seconds, 10.0,
               "seconds of load before the drill proper"),
    OptionSpec("duration", "load", _seconds, 60.0,
               "seconds of load after warmup; the load also ends once the outage has been "
               "over for --observe-after seconds"),
    OptionSpec("rate", "load", float, 0.0,
               "target of ops per second over all workers, each due on a schedule like "
               "pgbench -R (Poisson arrivals); ops due while no server takes writes are "
               "skipped, not sent later as a burst; 0: as fast as the workers can"),
    OptionSpec("background-load", "load", str, None,
               "a command of your own run beside ptor's load (typically pgbench with your "
               "script and -P 1, against the same endpoint): started a few seconds into the "
               "warmup, restarted when it exits (a failover ends pgbench), stopped at the "
               "drain with its whole process group; never ledgered, never part of the "
               "verdict; repeat the flag for several; none: no background load",
               multiple=True),
    OptionSpec("ops-per-worker", "load", int, 0,
               "stop each worker after this many ops (like pgbench -t); 0: no limit"),
    OptionSpec("ops-per-transaction", "load", int, 1,
               "ops of one worker between BEGIN and COMMIT; the transaction is the unit of "
               "acknowledgement (its ops ok, failed or in doubt together)"),
    OptionSpec("observe-after", "load", _seconds, 5.0,
               "seconds of healthy writes to observe after an outage before ending the load"),
    OptionSpec("insert-percent", "load", int, 50, "share of INSERT ops"),
    OptionSpec("update-percent", "load", int, 30, "share of UPDATE ops"),
    OptionSpec("delete-percent", "load", int, 20, "share of DELETE ops"),
    OptionSpec("full-data-validation", "preparation", parse_bool, False,
               "compare every row on the primary (payloads, phantoms), not only the keys "
               "the run touched", flag=True),
    OptionSpec("async-repo-mode", "load", parse_bool, False,
               "queue ledger writes without waiting for durability (flushed before "
               "reconciliation)", flag=True),
    OptionSpec("rto-conn-timeout", "connection", _seconds, 2.0,
               "seconds (fractions allowed) one connect attempt may take; used on every "
               "reconnect"),
    OptionSpec("check-primary-latency", "preparation", parse_bool, False,
               "measure connect time and SELECT 1 round trips before the load", flag=True),
    OptionSpec("latency-samples", "preparation", int, 50,
               "SELECT 1 round trips for --check-primary-latency"),
    OptionSpec("failover-command", "faults", str, None,
               "shell command that causes the failover; run once, --failover-after seconds "
               "after warmup"),
    OptionSpec("failover-after", "faults", _seconds, 5.0,
               "seconds after warmup to run the command"),
    OptionSpec("failover-timeout", "faults", _seconds, 300.0,
               "seconds the failover command may run; then its whole process group is "
               "killed and the verdict is at best unknown"),
    OptionSpec("expect", "thresholds", str, "failover",
               "what the drill must show: failover (a change of primary or a write outage; "
               "none seen: unknown), no-failover (a change of primary, or an outage above "
               "--max-write-rto, fails), no-promotion (a change of primary fails; writes that "
               "do not come back within --max-outage are expected), or any (a plain load "
               "test)"),
    OptionSpec("fault", "faults", str, None,
               "built-in fault ACTION[:SECONDS] on the lab given by --lab-dir: kill-primary, "
               "stop-primary, switchover, kill-manager, blip=LENGTH, stop-sync-standby, "
               "cancel-sync-waits[=LENGTH] (and more on the streaming lab: see README); "
               "SECONDS after warmup (default: failover-after); repeat the flag, or separate "
               "with commas, for several",
               multiple=True),
    OptionSpec("lab-dir", "faults", str, None,
               "directory of the ptor-lab lab that --fault acts on (its nodes are also the "
               "ones the node observer watches)"),
    OptionSpec("node-dsn", "observer", str, None,
               "a node for the node observer to watch (repeat the flag for each); default: "
               "the hosts of a multi-host primary DSN, or the nodes of --lab-dir",
               multiple=True),
    OptionSpec("observe-interval", "observer", _seconds, 0.1,
               "seconds between the node observer's samples of each node (0: no observer)"),
    OptionSpec("cdc-slot", "cdc", str, None,
               "a logical replication slot for ptor's change-data-capture consumer: it reads "
               "the slot through the primary endpoint beside the load (following the "
               "failover like the workers) and the report says whether the slot survived "
               "and which acknowledged changes the consumer missed or received that the new "
               "primary does not hold; the slot must exist (see --cdc-create-slot) and be "
               "ptor's alone: the consumer confirms what it has read"),
    OptionSpec("cdc-plugin", "cdc", str, "pgoutput",
               "the slot's output plugin: pgoutput (needs --cdc-publication) or "
               "test_decoding"),
    OptionSpec("cdc-publication", "cdc", str, None,
               "pgoutput's publication of ptor's tables (default: SCHEMA_cdc); --init "
               "creates it, and --reset drops it"),
    OptionSpec("cdc-create-slot", "cdc", parse_bool, False,
               "with --init, create the --cdc-slot on the primary where it is missing (on "
               "the primary only: whether a copy reaches the standbys is the cluster's "
               "business, which the drill then tests)", flag=True),
    OptionSpec("max-cdc-missed", "cdc", int, 0,
               "fail the drill when the consumer missed more acknowledged changes than "
               "this that the new primary holds (a missing slot or a phantom change fails "
               "it whatever this says)"),
    OptionSpec("max-outage", "thresholds", _seconds, 120.0,
               "give up when no primary accepts writes for this many seconds"),
    OptionSpec("max-write-rto", "thresholds", _seconds, None,
               "fail the drill when the cluster's write RTO exceeds this many seconds"),
    OptionSpec("max-lost-acknowledged", "thresholds", int, 0,
               "fail the drill when more acknowledged ops than this are lost"),
    OptionSpec("max-detection-time", "thresholds", _seconds, None,
               "fail the drill when the first failed or in-doubt op came more than this many "
               "seconds after the fault was injected"),
    OptionSpec("brownout-threshold", "thresholds", float, 0.5,
               "a second after warmup with fewer ok ops than this share of the warmup's "
               "rate is a brownout second (reported, not judged)"),
    OptionSpec("standby-lag-threshold", "thresholds", int, 16 * 1024 * 1024,
               "a standby further behind its primary than this many bytes of WAL, and back "
               "under it, is an event in the anatomy (reported, not judged; 0: no such "
               "events)"),
    OptionSpec("max-run-seconds", "thresholds", _seconds, None,
               "hard deadline for the whole run: when it passes, the load stops, a failover "
               "command still running is killed, the ledger is drained and what can be "
               "reconciled is reported; a fault planned past it is refused"),
    OptionSpec("statement-timeout", "connection", _seconds, 10.0,
               "seconds any one statement may run before the server cancels it (0: none); "
               "behind a pooler, where a SET would outlive ptor's client, only ptor's own "
               "watchdog cuts an op, after this plus rto-conn-timeout"),
    OptionSpec("report-json", "outputs", str, None,
               "write the machine-readable report to this file"),
    OptionSpec("report-dir", "outputs", str, "ptor-runs",
               "each run writes a time-stamped folder here: report.json, timeline.csv, "
               "ptor.log, scenario.ini (secrets masked), and the embedded ledger"),
    OptionSpec("prometheus-file", "outputs", str, None,
               "also write the run's figures and verdict to this file in Prometheus text "
               "format (for node_exporter's textfile collector)"),
    OptionSpec("junit-xml", "outputs", str, None,
               "also write the drill as JUnit XML test cases to this file (for CI systems)"),
    OptionSpec("progress", "outputs", parse_bool, None,
               "print a live one-line progress every second (default: only when stderr is "
               "a terminal)", flag=True),
    OptionSpec("schema", "connection", str, "ptor", "schema that holds ptor's own tables"),
    OptionSpec("payload-bytes", "load", int, 64,
               "bytes of payload each INSERT and UPDATE writes (16 to 1 MiB): text that "
               "does not compress, so each such op writes at least this much WAL"),
    OptionSpec("seed", "load", int, None, "seed for a reproducible op mix"),
    OptionSpec("quiet", "outputs", parse_bool, False, "print only the report", flag=True),
    OptionSpec("rounds", "campaign", int, 1,
               "ptor campaign: drills per cell of the matrix, back to back"),
    OptionSpec("vary", "campaign", str, None,
               "ptor campaign: KEY=V1,V2[,...] runs a cell per value of that option (repeat "
               "for a matrix of every combination; ';' between several in a scenario file); "
               "with --lab-dir also the lab's pooler=none,pgbouncer and "
               "synchronous-commit=on,off,...",
               multiple=True),
    OptionSpec("settle-timeout", "campaign", _seconds, 120.0,
               "ptor campaign: between rounds, how long the cluster may take to be back in "
               "its starting shape (a writable primary, and the streaming synchronous "
               "standby if it had one); past it the round is unknown and the campaign stops"),
    OptionSpec("max-write-rto-p95", "campaign", _seconds, None,
               "ptor campaign: fail when a cell's 95th percentile write RTO exceeds this"),
    OptionSpec("max-lost-acknowledged-total", "campaign", int, None,
               "ptor campaign: fail when the rounds lost more acknowledged ops than this in "
               "all (default: each drill's own max-lost-acknowledged judges its round)"),
    OptionSpec("max-failed-rounds", "campaign", int, 0,
               "ptor campaign: fail when more rounds than this failed"),
)
OPTION_NAMES = tuple(o.name for o in OPTIONS)
SECTIONS = ("connection", "load", "preparation", "faults", "observer", "cdc", "thresholds",
            "outputs", "campaign")
CDC_PLUGINS = ("pgoutput", "test_decoding")
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,40}")  # fullmatch: no trailing newline
# --expect: what the drill must show (checks.expectation judges it)
EXPECT_FAILOVER, EXPECT_NO_FAILOVER, EXPECT_NO_PROMOTION, EXPECT_ANY = EXPECTATIONS = (
    "failover", "no-failover", "no-promotion", "any")


