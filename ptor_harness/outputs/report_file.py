"""report.json: its one writer and its one reader, which knows every format ptor wrote
(pyperf's `_as_json` and `_json_load` with their format history).

`to_text` is what report.json holds (exports.write_json puts it on disk, whole or not at
all); `load` reads one back from a file, `parse` from text or a dict (a repo's
`ledger_run.report`). Both check that it is a report ptor wrote and bring an older format up
to the current one by adding, as null, every key a later format added, so render,
exports, history and campaigns read any report the same way, and a report from an older
ptor is never mistaken for one whose figures are missing.

Report format history:
  1 — first version: verdict, rto, rpo, ops, indeterminate, validation, anomalies, servers,
      latency, faults, workers, windows, timeline, phases, errors.
  2 — `interrupted` (signal name or null), `deadline_reached` (max-run-seconds), `lock`
      (the drill lock: times retaken after a failover, who took it), `checks`
      (each of the verdict's checks: name, status, detail); anomalies gain
      split_brain_writes, resurrected_rows and examples for every class; `harness` (CPU
      of ptor's own processes and of the machine during the load, harness_limited).
  3 — the version chain: `rpo.lost_by_evidence` (final_state, version_chain,
      worker_order), `rpo.unverifiable_ops` and examples, `rpo.first_lost_ack_at`,
      `rpo.last_lost_ack_at`; `rpo.window_seconds` is now the first to the last lost
      acknowledgement, with `rpo.first_lost_before_fault_seconds` and
      `rpo.last_lost_before_fault_seconds`; lost examples say how each loss was found;
      `expectation` (expected, observed: primary_changed, write_outage,
      longest_outage_seconds, not_recovered); checks `faults ran` and `expect ...`;
      faults carry `stderr_first_line`; `indeterminate.unrecorded_applied`; the probe:
      `rto.probe_seconds`, `rto.probe_first_write_at`, and per window `probe` (last_ok,
      first_failure, first_write, seconds) and `connect_attempts_per_second`.
  4 — the node observer: `nodes` (observer on/off and why, where the nodes came from,
      samples sent / dropped, per node samples and pg_monitor, `unknown_fields`, `lanes`:
      each node's states over time) and `anatomy` (old / new primary, `events` with
      time, source and resolution, `detection_seconds`, `promotion_seconds`,
      `routing_seconds`, `replication_at_fault`, `two_primaries`,
      `service_available_seconds`); `brownout` (threshold, warmup rate, periods);
      `rto.service_available_seconds`, `rto.sla_percent`, `rto.read_seconds`,
      `rpo.lost_bytes`, `rpo.lost_by_cause`, `anatomy.read_outage_seconds`,
      `anatomy.stale_routing`; lost examples carry their `cause`.
  5 — the load's shape: `load` (target and achieved rate, schedule lag, skipped ops,
      latency from due, the primary's WAL rate and timeline),
      `anatomy.wal_bytes_per_second_before_fault`; transactions (--ops-per-transaction):
      `transactions` (ops_per_transaction, ok, failed, indeterminate),
      `rpo.lost_acknowledged_transactions`, `anomalies.partial_transactions` and its
      examples.
  6 — `background` (--background-load: each command masked, its starts, exits and exit
      codes, pgbench's tps per second and before / after the fault, given up or left
      running, the end of its output; `wal`: ptor's estimated share of the primary's WAL);
      the brownout's baseline starts once the background load runs.
  7 — `servers.primary_moves`: the identity changes grouped into moves of the primary
      (from, to, first, last, workers), as the terminal shows them; read from an older
      report, they are worked out from its `servers.identity_changes`.
  8 — `cdc` (--cdc-slot, else null): the slot on the new primary (present, missing, lost
      WAL) and its confirmed position, the position confirmed before the fault, the
      consumer's connections and outage, changes received (before and after the fault),
      expected, missed, phantom and duplicate changes, changes of failed ops, changes that
      name no op, the lag from acknowledgement to receipt (p50, p99), examples; the check
      `change data capture`.
  9 — `account`: the drill in a few plain sentences (what happened, why the verdict),
      every number in them a figure of the report; the anatomy before the fault: events
      of the primary losing or regaining a standby, `anatomy.no_standby_since`; `host`
      (where the report was made: host name, ptor's and Python's versions).
  10 — `servers.postgres_version`: the primary's PostgreSQL version as it said before
      the load (`SHOW server_version`); `cdc.slot_on_new_primary` may be `invalidated`
      (PostgreSQL 16 and later), with `cdc.slot_invalidation_reason`;
      `validation.interrupted`: why each attempt of the check that the server broke off
      failed (the check started again on the primary confirmed then).
  11 — `servers.primary_before.node` and `servers.primary_after.node`: the node
      observer's name for that server, where its sessions reached the same address
      (verify/node_names.py); the standbys in `anatomy.replication_at_fault` are named by
      node where their own samples tell which node they are. The anatomy's events of the
      primary losing a standby, and `anatomy.no_standby_since`, run on from the fault's
      start to the first client error (a fault that is a command: stop the standby, then
      fail over).
  12 — `load.achieved_rate_while_writable`: acknowledged ops per second outside the
      workers' own write outages, on which `load.target_reached` is now judged (it was
      judged on the rate over the whole load, outages included);
      `load.schedule_lag_while_writable_seconds`: the schedule lag of the ops due while
      the worker's writes went through. `cdc.outage.seconds` runs from the last change
      the consumer received before the fault cut its session to the first after
      (`session_lost_at`, `last_before`, `first_after`; it was the gap around the fault's
      instant, which changes already sent filled). The node observer's samples gain
      `read_only` (a write would be refused); the anatomy gains the event `new primary
      writable` and `anatomy.read_only_seconds` (the promoted node out of recovery but held
      read-only by its manager), and `anatomy.routing_seconds` then runs from when it
      took writes, no longer from its promotion. `anatomy.refused_by_primary`: writes
      refused as read-only by the primary the drill ended with, on its timeline (held
      read-only); `anatomy.stale_routing` now counts only the refusals of other servers.
  13 — `servers.primary_moves[].from_node` and `to_node`: the node observer's name for
      each server a move went from and to (as `primary_before.node`), so a drill whose
      primary moved twice names the server in between. The account names the server the
      causing fault promoted (it named the one the drill ended on) and says where the
      primary moved after it.
  14 — `servers.synchronous_commit`: the setting the primary's sessions got before the
      load; `rpo.lost_by_cause.synchronous_commit_off`: lost ops acknowledged without
      waiting for a synchronous standby that was streaming, since synchronous_commit was
      off or local (they were counted `unexplained`). The anatomy may list the drill's
      other faults (`fault injected` at their own times) and `old primary back` (the old
      primary answering as the primary again when no standby was promoted).
  15 — `anatomy.first_commit_seconds`: from the first worker session on the new primary
      to the first acknowledged write (its commits held back, as a new primary whose
      commits wait for a synchronous standby to attach does); `anatomy.held_seconds`: the
      workers' ops in flight outlasting the new primary's readiness (a hung old primary,
      until their own timeout); `anatomy.routing_seconds` now runs between the two.
  16 — `rpo.lost_by_evidence.commit_order`: ops placed lost by the other workers' ops on
      the same server, by time (verify/commit_order.py), which were unverifiable before;
      0 in an older report, whose ptor had no such evidence.
  17 — `happened_by` in each of `anatomy.events`: the first acknowledged write's time where
      it bounds an event the observer's sample showed after it (the sample's time stays
      `at`); null otherwise, and in an older report. `anatomy.later_outages`: the anatomy
      of each outage a later fault caused (its fault, fault_at, events and parts).

A run that could not start, or could not finish (its ledger could not be written), leaves
a report of the current format with `verdict` null and `error` saying why (and no
figures).
"""

from __future__ import annotations

import json
import os
from typing import Optional, Union

from ..errors import ConfigError
from ..servers import primary_moves

FORMAT = 17
REPORT_BYTES = 64 * 1024 * 1024  # a report.json larger than this is not read

# The keys each format added, as (section or None for the top level, key): an older
# report gets them as null when it is read.
ADDED_IN: dict[int, tuple[tuple, ...]] = {
    2: ((None, "interrupted"), (None, "deadline_reached"), (None, "lock"), (None, "checks"),
        (None, "harness"), ("anomalies", "split_brain_writes"),
        ("anomalies", "resurrected_rows")),
    3: (("rpo", "lost_by_evidence"), ("rpo", "unverifiable_ops"),
        ("rpo", "first_lost_ack_at"), ("rpo", "last_lost_ack_at"),
        ("rpo", "first_lost_before_fault_seconds"), ("rpo", "last_lost_before_fault_seconds"),
        (None, "expectation"), ("indeterminate", "unrecorded_applied"),
        ("rto", "probe_seconds"), ("rto", "probe_first_write_at")),
    4: ((None, "nodes"), (None, "anatomy"), (None, "brownout"),
        ("rto", "service_available_seconds"), ("rto", "sla_percent"), ("rto", "read_seconds"),
        ("rpo", "lost_bytes"), ("rpo", "lost_by_cause")),
    5: ((None, "load"), (None, "transactions"), ("rpo", "lost_acknowledged_transactions"),
        ("anomalies", "partial_transactions")),
    6: ((None, "background"),),
    7: (("servers", "primary_moves"),),
    8: ((None, "cdc"),),
    9: ((None, "account"), ("anatomy", "no_standby_since"), (None, "host")),
    10: (("servers", "postgres_version"), ("cdc", "slot_invalidation_reason"),
         ("validation", "interrupted")),
    11: (),  # keys inside servers' primary_before / primary_after: set in parse
    12: (("load", "achieved_rate_while_writable"),
         ("load", "schedule_lag_while_writable_seconds"), ("anatomy", "read_only_seconds"),
         ("anatomy", "refused_by_primary")),
    13: (),  # keys inside servers.primary_moves: set in parse
    14: (("servers", "synchronous_commit"),),
    15: (("anatomy", "first_commit_seconds"), ("anatomy", "held_seconds")),
    16: (),  # a key inside rpo.lost_by_evidence: set in parse
    17: (("anatomy", "later_outages"),),  # and a key inside each of anatomy.events
}


class NotAReport(ConfigError, ValueError):
    """A report.json that is not one ptor wrote (partial, malformed, from a newer ptor, or
    hostile): exit 2 where the user named it."""


def to_text(report: dict) -> str:
    """The report as report.json holds it: sorted, indented JSON."""
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


def parse(report: Union[str, bytes, dict]) -> dict:
    """A report read back (from report.json's text, or a dict from the repo), brought up
    to the current format. Raises NotAReport for anything ptor did not write."""
    if isinstance(report, (str, bytes)):
        try:
            report = json.loads(report)
        except (ValueError, RecursionError) as exc:
            raise NotAReport(f"not JSON ({str(exc)[:80]})") from None
    if not isinstance(report, dict):
        raise NotAReport("not a JSON object")
    version = report.get("format", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise NotAReport("no report format")
    if version > FORMAT:
        raise NotAReport(f"report format {version} is newer than this ptor reads "
                         f"({FORMAT}): upgrade ptor")
    if report.get("verdict") is None and "error" in report:
        return report  # a run that could not start: no figures to bring up
    upgraded = dict(report)
    for added in range(version + 1, FORMAT + 1):
        for section, key in ADDED_IN[added]:
            if section is None:
                upgraded.setdefault(key, None)
            elif isinstance(upgraded.get(section), dict):
                upgraded[section] = dict(upgraded[section])
                upgraded[section].setdefault(key, None)
    if version < 7 and isinstance(upgraded.get("servers"), dict):
        upgraded["servers"]["primary_moves"] = moves_of(upgraded["servers"])
    if version < 13 and isinstance((upgraded.get("servers") or {}).get("primary_moves"),
                                   list):
        upgraded["servers"] = dict(upgraded["servers"])
        upgraded["servers"]["primary_moves"] = [
            dict(m, from_node=None, to_node=None) if isinstance(m, dict) else m
            for m in upgraded["servers"]["primary_moves"]]
    if version < 11 and isinstance(upgraded.get("servers"), dict):
        upgraded["servers"] = dict(upgraded["servers"])
        for side in ("primary_before", "primary_after"):
            if isinstance(upgraded["servers"].get(side), dict):
                upgraded["servers"][side] = dict(upgraded["servers"][side], node=None)
    if version < 16 and isinstance((upgraded.get("rpo") or {}).get("lost_by_evidence"), dict):
        upgraded["rpo"] = dict(upgraded["rpo"])
        upgraded["rpo"]["lost_by_evidence"] = dict(upgraded["rpo"]["lost_by_evidence"],
                                                   commit_order=0)
    if version < 17 and isinstance((upgraded.get("anatomy") or {}).get("events"), list):
        upgraded["anatomy"] = dict(upgraded["anatomy"])
        upgraded["anatomy"]["events"] = [dict(e, happened_by=None) if isinstance(e, dict)
                                         else e for e in upgraded["anatomy"]["events"]]
    upgraded["format"] = FORMAT
    return upgraded


def moves_of(section: dict) -> Optional[list]:
    """The moves of the primary in an older report's `servers` section, from its identity
    changes (None where those are not a list of changes)."""
    try:
        return primary_moves(section.get("identity_changes"))
    except (KeyError, TypeError, AttributeError):
        return None


def read_bounded(path: str, what: str) -> str:
    """A report file's text (report.json, a campaign's campaign.json): NotAReport when it
    is larger than any ptor writes, ConfigError when it cannot be read."""
    try:
        if os.path.getsize(path) > REPORT_BYTES:
            raise NotAReport(f"larger than {REPORT_BYTES // (1024 * 1024)} MiB")
        with open(path, encoding="utf-8") as src:
            return src.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} {path!r}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None


def load(path: str) -> dict:
    """The report in the file at `path` (parse). A file that cannot be read raises
    ConfigError, one that is no report NotAReport."""
    return parse(read_bounded(path, "report"))


def unfinished_as_said(report: dict) -> str:
    """How a run that left no report is told (its report.json holds only why): it "did not
    start" when it ended at its check, else it "did not finish"."""
    phases = report.get("phases") if isinstance(report.get("phases"), dict) else {}
    began = "did not finish" if "warmup" in phases else "did not start"
    return f"{began}: {report.get('error') or 'no reason given'}"
