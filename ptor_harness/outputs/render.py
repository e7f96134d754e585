"""The terminal report: the report dict (report.py) as tables, for a person to read.

It reads only the serialised report, the same one report.json holds, so what the terminal
shows and what a machine reads can never differ.
"""

from __future__ import annotations

import math
import signal
import textwrap
from typing import Callable, Optional

from tabulate import tabulate

from .account import no_standby, server_name
from .charts import terminal_chart
from .event_time import after_fault, event_when


def _s(value: Optional[float], digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f} s" if round(value, digits) else f"{0:.{digits}f} s"  # no -0.000


def _n(value) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, (int, float)) \
        and not isinstance(value, bool) else str(value)


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value * 1000:.3f} ms"


def from_warmup(r: dict) -> Callable[[Optional[float]], str]:
    """How the report shows a time: seconds from the warmup's start ("-": none). A table
    of them gives tabulate disable_numparse for their columns: it would read "+9.290" as
    a number and print 9.29."""
    t0 = r["phases"].get("warmup") or 0.0

    def rel(t: Optional[float]) -> str:
        return "-" if t is None else f"+{t - t0:.3f}"
    return rel


def render(report: dict) -> str:
    """The terminal report: summary, servers, outage windows, per worker, validation."""
    r = report
    rel = from_warmup(r)
    summary = summary_rows(r)
    parts = [f"Verdict: {r['verdict'].upper()}"]
    if r.get("account"):  # reports before format 9 have none
        parts += ["", "What happened"] + textwrap.wrap(
            " ".join(r["account"]), width=92, initial_indent="  ", subsequent_indent="  ")
    parts += ["", "Summary", tabulate(summary, tablefmt="simple")]
    for title, items in (("Why", r["verdict_reasons"]), ("Warnings", r["warnings"]),
                         ("Errors", r["errors"])):
        if items:
            parts += ["", title] + [f"  - {item}" for item in items]
    chart = terminal_chart(r)
    if chart:
        parts += [""] + chart
    servers = r["servers"]
    parts += ["", "Servers", tabulate(server_rows(r), tablefmt="simple")]
    moves = servers["primary_moves"] or []
    if moves:
        parts += ["", "Primary changes seen by the workers",
                  tabulate(moves_rows(moves, rel), headers=MOVES_HEADERS,
                           disable_numparse=[0, 1])]
    if r["faults"]:
        parts += ["", "Faults", tabulate(faults_rows(r, rel), headers=FAULTS_HEADERS,
                                         disable_numparse=[1])]
    parts += anatomy_tables(r, rel)
    parts += brownout_line(r, rel)
    parts += background_table(r.get("background"))
    parts += cdc_table(r.get("cdc"))
    if r["latency"]["check"]:
        check = r["latency"]["check"]
        # loopback round trips are tens of microseconds: in milliseconds, not "0.0000 s"
        rows = [[name, *(_ms(v.get(k)) for k in ("min", "median", "p99")), v.get("samples")]
                for name, v in (("connect", check["connect"]), ("SELECT 1", check["select1"]))]
        parts += ["", "Primary latency", tabulate(rows, headers=["", "min", "median", "p99",
                                                                 "samples"])]
    if r["windows"]:
        parts += ["", WINDOWS_TITLE, tabulate(windows_rows(r, rel), headers=WINDOWS_HEADERS,
                                              disable_numparse=[1, 2, 3])]
    parts += ["", "Workers", tabulate(workers_rows(r), headers=WORKERS_HEADERS)]
    parts += ["", "Validation", tabulate(validation_rows(r), tablefmt="simple")]
    if r["rpo"]["examples"]:
        parts += ["", "Lost acknowledged ops (examples)",
                  tabulate(examples_rows(r, rel), headers=EXAMPLES_HEADERS,
                           disable_numparse=[4])]
    return "\n".join(parts) + "\n"


EXAMPLES_HEADERS = ["worker", "key", "seq", "kind", "acknowledged at", "found by", "cause"]


def examples_rows(r: dict, rel) -> list[list]:
    """Lost acknowledged ops, a few, each with the evidence that found it and its cause
    (the terminal's table and report.html's)."""
    return [[e.get("worker"), e.get("key"), e.get("seq"), e.get("kind"),
             rel(e.get("committed_at")), (e.get("found_by") or "-").replace("_", " "),
             (e.get("cause") or "-").replace("_", " ")] for e in r["rpo"].get("examples") or []]


FAULTS_HEADERS = ["fault", "at", "took", "result", "detection", "to first ok"]


def faults_rows(r: dict, rel) -> list[list]:
    """Each fault ptor injected: when, how long it ran, how it ended, and how soon the
    clients noticed and wrote again (the terminal's table and report.html's)."""
    return [[f["name"], rel(f["started_at"]),
             _s((f["ended_at"] or f["started_at"]) - f["started_at"]),
             f["error"] or f"exit {f['exit_code']}", _s(f["detection_seconds"]),
             _s(f["injection_to_first_ok_seconds"])] for f in r["faults"]]


WINDOWS_TITLE = "Outage windows (seconds from the start of the warmup)"
WINDOWS_HEADERS = ["#", "last ok", "first failure", "all back", "write RTO", "workers", "min",
                   "median", "failed", "in doubt"]


def windows_rows(r: dict, rel) -> list[list]:
    """Each write outage: its edges, its RTO and the workers it touched."""
    return [[i + 1, rel(w["start"]), rel(w["first_failure"]), rel(w["end"]),
             _s(w["write_rto_seconds"]), w["workers_affected"],
             _s(w["worker_rto_min"]), _s(w["worker_rto_median"]), w["failed_ops"],
             w["indeterminate_ops"]] for i, w in enumerate(r["windows"])]


WORKERS_HEADERS = ["worker", "ok", "failed", "in doubt", "outages", "longest outage"]


def workers_rows(r: dict) -> list[list]:
    """Each worker's op outcomes and its longest outage (its write RTO: from its last
    acknowledged write before a failure to its first after; a stall without a failure is
    no outage, and reads 0 here: the latency's max says it)."""
    return [[w["worker"], _n(w["ok"]), _n(w["failed"]), _n(w["indeterminate"]), w["outages"],
             _s(w["longest_gap_seconds"])] for w in r["workers"]]


def validation_rows(r: dict) -> list[list]:
    """What the reconciliation checked and every anomaly it counted, zeros included: a
    zero here is a claim (the terminal's table and report.html's). A figure an earlier
    report format did not hold reads "-"."""
    v, a, rpo = r["validation"], r.get("anomalies") or {}, r["rpo"]
    rows = [["mode", v.get("mode") or "-"], ["completed", "yes" if v["completed"] else
                                             f"no: {v['error']}"],
            ["rows checked", _n(v.get("rows_checked"))],
            ["keys checked", _n(v.get("keys_checked"))],
            ["reconciled on", v.get("reconciled_on") or "-" if v.get("reconciled_on") in (
                None, "endpoint") else f"{v['reconciled_on']} (the endpoint led to no "
                "primary)"],
            ["mismatched rows", _n(v.get("mismatched_rows"))]]
    rows += [[f"attempt {n} broken off", why]
             for n, why in enumerate(v.get("interrupted") or [], 1)]
    rows += [[f"lost acknowledged {k}s", _n(n)]
             for k, n in (rpo.get("lost_by_kind") or {}).items()]
    if rpo.get("lost_by_evidence"):
        rows += [[f"lost, found by {k.replace('_', ' ')}", _n(n)]
                 for k, n in rpo["lost_by_evidence"].items()]
        rows += [["acked ops no evidence can place (assumed kept)",
                  _n(rpo.get("unverifiable_ops"))]]
    causes = rpo.get("lost_by_cause") or {}
    rows += [[f"lost, cause: {k.replace('_', ' ')}", _n(n)] for k, n in causes.items() if n]
    rows += [["phantom rows", _n(a.get("phantom_rows"))], ["holes", _n(a.get("holes"))],
             ["resurrected rows (lost deletes)", _n(a.get("resurrected_rows"))],
             ["acked updates/deletes that found no row", _n(v.get("noop_writes"))],
             ["split-brain writes", _n(a.get("split_brain_writes"))],
             ["failed ops found applied", _n(a.get("failed_but_applied"))],
             ["rows with a payload no op wrote", _n(v.get("checksum_mismatches"))]]
    return rows


def server_rows(r: dict) -> list[list[str]]:
    """The primary before and after the drill, by node where the report could tell (the
    terminal's Servers table and report.html's)."""
    servers = r["servers"]
    return [["primary before", server_name(servers["primary_before"])],
            ["primary after", server_name(servers["primary_after"])]]


MOVES_HEADERS = ["first", "last", "workers", "from", "to"]


def moves_rows(moves: list[dict], rel) -> list[list]:
    """The primary's moves as the workers followed them, each server by node where the
    report could tell (the terminal's table and report.html's); `rel`: a time as shown."""
    return [[rel(m["first"]), rel(m["last"]), m["workers"],
             server_name({"label": m["from"], "node": m.get("from_node")}),
             server_name({"label": m["to"], "node": m.get("to_node")})] for m in moves]


def anatomy_tables(r: dict, rel) -> list[str]:
    """The failover as the nodes and the clients saw it, step by step; how far each
    standby was behind at the fault; two primaries at once; stale routing and a primary
    held read-only."""
    parts: list[str] = []
    nodes, a = r.get("nodes") or {}, r.get("anatomy") or {}
    stale = a.get("stale_routing") or {}
    if stale.get("refused_writes") or stale.get("standby_sessions"):
        parts += ["", f"Stale routing: {stale['refused_writes']:,} writes refused as read-only "
                  f"(SQLSTATE 25006) and {stale['standby_sessions']:,} sessions that landed "
                  f"on a standby, from {rel(stale['first_at'])} to {rel(stale['last_at'])} "
                  f"({_s(stale['seconds'])}): clients were sent to a server that was not the "
                  "primary"]
    held = a.get("refused_by_primary") or {}
    if held.get("refused_writes"):
        parts += ["", f"Read-only primary: {held['refused_writes']:,} writes refused as "
                  "read-only (SQLSTATE 25006) by the primary itself, from "
                  f"{rel(held['first_at'])} to {rel(held['last_at'])} "
                  f"({_s(held['seconds'])}): it was held read-only "
                  "(default_transaction_read_only), not left behind"]
    if nodes.get("observer") != "on":
        return parts + (["", f"Node observer: {nodes.get('found', 'off')}"] if nodes else [])
    if a.get("events"):
        rows = [[when, _s(after_fault(e)), e["name"], e["source"], detail]
                for e in a["events"] for when, detail in [event_when(e, rel)]]
        parts += ["", "Failover anatomy (observer samples every "
                  f"{r['scenario'].get('observe_interval', 0):g} s)",
                  tabulate(rows, headers=["at", "after fault", "event", "source", "detail"],
                           disable_numparse=[0])]
        parts.append(outage_split(a))
    if a.get("replication_at_fault"):
        rows = [[x["standby"], x["seen_by"], x["sync_state"] or "-",
                 _n(x["sent_bytes_behind"]), _n(x["flushed_bytes_behind"]),
                 _n(x["replayed_bytes_behind"]), _s(x["replay_lag_seconds"])]
                for x in a["replication_at_fault"]]
        parts += ["", "Replication at the fault (bytes behind the primary)",
                  tabulate(rows, headers=["standby", "seen by", "sync", "sent", "flushed",
                                          "replayed", "replay lag"])]
    alone = no_standby(r)
    if alone:
        parts += ["", alone]
    for both in a.get("two_primaries") or []:
        parts += ["", f"TWO PRIMARIES: {' and '.join(both['nodes'])} both primary from "
                  f"{rel(both['start'])} to {rel(both['end'])} ({_s(both['seconds'])})"]
    for name, info in (nodes.get("nodes") or {}).items():
        if info.get("never_reached"):
            parts += ["", f"Node observer: {name} never answered ({info['never_reached']})"]
    if nodes.get("unknown_fields"):
        parts += ["", f"Node observer: {nodes['unknown_fields']}"]
    return parts


OUTAGE_PARTS = {"detection_seconds": "detection", "promotion_seconds": "promotion",
                "read_only_seconds": "read-only", "held_seconds": "clients held",
                "routing_seconds": "routing", "first_commit_seconds": "first commit"}
SAID_WHEN_THERE = ("read_only_seconds", "first_commit_seconds")  # else "-"


def outage_split(a: dict) -> str:
    """The write outage by part, as the terminal and report.html say it (the read-only
    part only where the promoted node was held read-only, the clients held only where
    their ops in flight outlasted the promotion, the first commit only where a worker's
    session on the new primary is known)."""
    split = [f"{label} {_s(a.get(key))}" for key, label in OUTAGE_PARTS.items()
             if (key not in SAID_WHEN_THERE or a.get(key) is not None)
             and (key != "held_seconds" or a.get(key))]
    return "write outage: " + ", ".join(split)


def brownout_line(r: dict, rel) -> list[str]:
    """The seconds the load ran below its threshold of the warmup's rate: the clients'
    own view, shown whether or not the node observer watched."""
    brown = r.get("brownout") or {}
    if not brown.get("periods"):
        return []
    spans = ", ".join(f"{rel(p['start'])}..{rel(p['end'])}" for p in brown["periods"])
    return ["", f"Brownout (below {brown['threshold']:.0%} of the warmup's "
            f"{brown['warmup_ok_per_second']:,.0f} ok/s): {_s(brown['seconds'], 0)} "
            f"({spans})"]


def cdc_table(section: Optional[dict]) -> list[str]:
    """--cdc-slot: the slot on the new primary and what the consumer missed."""
    if not section:
        return []
    return ["", f"Change data capture (slot {section['slot']}, {section['plugin']})",
            tabulate(cdc_rows(section), tablefmt="simple")]


def cdc_rows(section: dict) -> list[list]:
    """The CDC section's rows, as the terminal and report.html show them."""
    outage = section["outage"] or {}
    return [["slot on the new primary", section["slot_on_new_primary"] or "unknown"],
            ["changes received (before / after the fault)",
             f"{_n(section['received'])} ({_n(section['received_before_fault'])} / "
             f"{_n(section['received_after_fault'])})"],
            ["missed (acknowledged, held by the new primary)", _n(section["missed"])],
            ["phantom (received, lost by the new primary)", _n(section["phantom"])],
            ["duplicates", _n(section["duplicates"])],
            ["CDC outage", _s(outage.get("seconds"))],
            ["lag p50 / p99", f"{_s(section['lag_p50_seconds'])} / "
                              f"{_s(section['lag_p99_seconds'])}"],
            ["caught up at the drain", "yes" if section["caught_up"] else "no"]]


def exit_said(code: int) -> str:
    """A command's exit status as a person reads it: the code, or the signal that ended it
    (subprocess gives a signal as a negative code, which reads as nonsense)."""
    if code >= 0:
        return str(code)
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def background_table(section: Optional[dict]) -> list[str]:
    """The background load: each command's starts, exits and throughput, and ptor's share
    of the primary's WAL beside it."""
    if not section or not section["commands"]:
        return []
    out = ["", BACKGROUND_TITLE, tabulate(background_rows(section), headers=BACKGROUND_HEADERS)]
    share = wal_share_said(section)
    return out + ([f"  {share}"] if share else [])


BACKGROUND_TITLE = "Background load (not ledgered; never part of the verdict)"
BACKGROUND_HEADERS = ["command", "starts", "exit codes", "tps before fault", "tps after", "end"]


def background_rows(section: dict) -> list[list]:
    """Each background command: its starts, how its runs ended, its throughput."""
    rows = []
    for c in section["commands"]:
        codes = dict.fromkeys(code for code in c["exit_codes"] if code is not None)  # in order
        command = c["command"] if len(c["command"]) <= 60 else c["command"][:57] + "..."
        rows.append([command, c["starts"], ", ".join(map(exit_said, codes)) or "-",
                     _n(c["tps_before_fault"]), _n(c["tps_after_fault"]),
                     "gave up" if c["gave_up"] else "stopped at the drain"])
    return rows


def wal_share_said(section: dict) -> Optional[str]:
    """ptor's share of the primary's WAL beside the background load, as a sentence."""
    wal = section.get("wal") or {}
    if wal.get("ptor_share") is not None:
        return (f"ptor's own share of the primary's WAL: about {wal['ptor_share']:.0%} "
                f"({wal['ptor_wal_bytes_per_second'] / 1e6:.2f} of "
                f"{wal['wal_bytes_per_second'] / 1e6:.2f} MB/s, estimated from "
                f"{wal['ptor_alone_seconds']} s of ptor's load alone)")
    if wal.get("why"):
        return f"ptor's own share of the primary's WAL: unknown: {wal['why']}"
    return None


def summary_rows(r: dict) -> list[list[str]]:
    """The summary table's rows (label, value), as the terminal and report.html show them."""
    summary = [
        ["verdict", r["verdict"].upper()],
        ["write RTO (cluster)", _s(r["rto"]["write_seconds"]) if r["rto"]["recovered"]
         else "not recovered"],
        ["worker RTO min / median / max", " / ".join(_s(r["rto"][k]) for k in (
            "worker_min_seconds", "worker_median_seconds", "worker_max_seconds"))],
        ["detection time", _s(r["rto"]["detection_seconds"])],
        ["fault injection -> first ok write", _s(r["rto"]["injection_to_first_ok_seconds"])],
        ["probe: last answer -> first write", _s(r["rto"].get("probe_seconds"))],
        ["read RTO (endpoint, any role)", _s(r["rto"].get("read_seconds"))],
        ["lost acknowledged ops (RPO)", _n(r["rpo"]["lost_acknowledged_ops"])],
        ["RPO window", _s(r["rpo"]["window_seconds"])],
        ["ops ok / failed / in doubt", " / ".join(_n(r["ops"][k]) for k in (
            "ok", "failed", "indeterminate"))],
        ["in doubt: applied / not applied", " / ".join(_n(r["indeterminate"][k]) for k in (
            "applied", "not_applied"))],
        ["op latency p50 / p99 / max", " / ".join(_s(r["latency"].get(k), 4) for k in (
            "op_ok_p50_seconds", "op_ok_p99_seconds", "op_ok_max_seconds"))],
        ["ledger", r["ledger"]],
        ["run", r["run_id"]],
    ]
    load = r.get("load") or {}  # reports before the load section have none
    if load.get("target_rate"):
        due = load.get("latency_from_due_seconds") or {}
        summary[-2:-2] = [
            ["rate: achieved / target (ops/s)",
             f"{_n(load.get('achieved_rate'))} / {_n(load['target_rate'])}"],
            ["rate while writes went through (ops/s)",
             _n(load.get("achieved_rate_while_writable"))],
            ["latency from due p50 / p99", f"{_s(due.get('p50'), 4)} / "
                                           f"{_s(due.get('p99'), 4)}"],
            ["ops skipped (due in an outage)", _n(load.get("skipped_ops"))]]
    txn = r.get("transactions") or {}
    if txn.get("ops_per_transaction", 1) > 1:
        at = next(i for i, row in enumerate(summary) if row[0].startswith("ops ok"))
        summary[at + 1:at + 1] = [
            [f"transactions ({txn['ops_per_transaction']} ops) ok / failed / in doubt",
             " / ".join(_n(txn[k]) for k in ("ok", "failed", "indeterminate"))],
            ["lost acknowledged transactions", _n(r["rpo"].get(
                "lost_acknowledged_transactions"))]]
    return summary
