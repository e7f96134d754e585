"""The terminal report: the report dict (report.py) as tables, for a person to read.

It reads only the serialised report, the same one report.json holds, so what the terminal
shows and what a machine reads can never differ.
"""

from __future__ import annotations

import signal
import textwrap
from typing import Callable, Optional

from tabulate import tabulate

from .account import server_name
from .anatomy_text import anatomy_tables
from .cells import millis, num, secs
from .charts import terminal_chart


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
        rows = [[name, *(millis(v.get(k)) for k in ("min", "median", "p99")), v.get("samples")]
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
             secs((f["ended_at"] or f["started_at"]) - f["started_at"]),
             f["error"] or f"exit {f['exit_code']}", secs(f["detection_seconds"]),
             secs(f["injection_to_first_ok_seconds"])] for f in r["faults"]]


WINDOWS_TITLE = "Outage windows (seconds from the start of the warmup)"
WINDOWS_HEADERS = ["#", "last ok", "first failure", "all back", "write RTO", "workers", "min",
                   "median", "failed", "in doubt"]


def windows_rows(r: dict, rel) -> list[list]:
    """Each write outage: its edges, its RTO and the workers it touched."""
    return [[i + 1, rel(w["start"]), rel(w["first_failure"]), rel(w["end"]),
             secs(w["write_rto_seconds"]), w["workers_affected"],
             secs(w["worker_rto_min"]), secs(w["worker_rto_median"]), w["failed_ops"],
             w["indeterminate_ops"]] for i, w in enumerate(r["windows"])]


WORKERS_HEADERS = ["worker", "ok", "failed", "in doubt", "outages", "longest outage"]


def workers_rows(r: dict) -> list[list]:
    """Each worker's op outcomes and its longest outage (its write RTO: from its last
    acknowledged write before a failure to its first after; a stall without a failure is
    no outage, and reads 0 here: the latency's max says it)."""
    return [[w["worker"], num(w["ok"]), num(w["failed"]), num(w["indeterminate"]), w["outages"],
             secs(w["longest_gap_seconds"])] for w in r["workers"]]


def validation_rows(r: dict) -> list[list]:
    """What the reconciliation checked and every anomaly it counted, zeros included: a
    zero here is a claim (the terminal's table and report.html's). A figure an earlier
    report format did not hold reads "-"."""
    v, a, rpo = r["validation"], r.get("anomalies") or {}, r["rpo"]
    rows = [["mode", v.get("mode") or "-"], ["completed", "yes" if v["completed"] else
                                             f"no: {v['error']}"],
            ["rows checked", num(v.get("rows_checked"))],
            ["keys checked", num(v.get("keys_checked"))],
            ["reconciled on", v.get("reconciled_on") or "-" if v.get("reconciled_on") in (
                None, "endpoint") else f"{v['reconciled_on']} (the endpoint led to no "
                "primary)"],
            ["mismatched rows", num(v.get("mismatched_rows"))]]
    rows += [[f"attempt {n} broken off", why]
             for n, why in enumerate(v.get("interrupted") or [], 1)]
    rows += [[f"lost acknowledged {k}s", num(n)]
             for k, n in (rpo.get("lost_by_kind") or {}).items()]
    if rpo.get("lost_by_evidence"):
        rows += [[f"lost, found by {k.replace('_', ' ')}", num(n)]
                 for k, n in rpo["lost_by_evidence"].items()]
        rows += [["acked ops no evidence can place (assumed kept)",
                  num(rpo.get("unverifiable_ops"))]]
    causes = rpo.get("lost_by_cause") or {}
    rows += [[f"lost, cause: {k.replace('_', ' ')}", num(n)] for k, n in causes.items() if n]
    rows += [["phantom rows", num(a.get("phantom_rows"))], ["holes", num(a.get("holes"))],
             ["resurrected rows (lost deletes)", num(a.get("resurrected_rows"))],
             ["acked updates/deletes that found no row", num(v.get("noop_writes"))],
             ["split-brain writes", num(a.get("split_brain_writes"))],
             ["failed ops found applied", num(a.get("failed_but_applied"))],
             ["rows with a payload no op wrote", num(v.get("checksum_mismatches"))]]
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


def brownout_line(r: dict, rel) -> list[str]:
    """The seconds the load ran below its threshold of the warmup's rate: the clients'
    own view, shown whether or not the node observer watched."""
    brown = r.get("brownout") or {}
    if not brown.get("periods"):
        return []
    spans = ", ".join(f"{rel(p['start'])}..{rel(p['end'])}" for p in brown["periods"])
    return ["", f"Brownout (below {brown['threshold']:.0%} of the warmup's "
            f"{brown['warmup_ok_per_second']:,.0f} ok/s): {secs(brown['seconds'], 0)} "
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
             f"{num(section['received'])} ({num(section['received_before_fault'])} / "
             f"{num(section['received_after_fault'])})"],
            ["missed (acknowledged, held by the new primary)", num(section["missed"])],
            ["phantom (received, lost by the new primary)", num(section["phantom"])],
            ["duplicates", num(section["duplicates"])],
            ["CDC outage", secs(outage.get("seconds"))],
            ["lag p50 / p99", f"{secs(section['lag_p50_seconds'])} / "
                              f"{secs(section['lag_p99_seconds'])}"],
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
                     num(c["tps_before_fault"]), num(c["tps_after_fault"]),
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
        ["write RTO (cluster)", secs(r["rto"]["write_seconds"]) if r["rto"]["recovered"]
         else "not recovered"],
        ["worker RTO min / median / max", " / ".join(secs(r["rto"][k]) for k in (
            "worker_min_seconds", "worker_median_seconds", "worker_max_seconds"))],
        ["detection time", secs(r["rto"]["detection_seconds"])],
        ["fault injection -> first ok write", secs(r["rto"]["injection_to_first_ok_seconds"])],
        ["probe: last answer -> first write", secs(r["rto"].get("probe_seconds"))],
        ["read RTO (endpoint, any role)", secs(r["rto"].get("read_seconds"))],
        ["lost acknowledged ops (RPO)", num(r["rpo"]["lost_acknowledged_ops"])],
        ["RPO window", secs(r["rpo"]["window_seconds"])],
        ["ops ok / failed / in doubt", " / ".join(num(r["ops"][k]) for k in (
            "ok", "failed", "indeterminate"))],
        ["in doubt: applied / not applied", " / ".join(num(r["indeterminate"][k]) for k in (
            "applied", "not_applied"))],
        ["op latency p50 / p99 / max", " / ".join(secs(r["latency"].get(k), 4) for k in (
            "op_ok_p50_seconds", "op_ok_p99_seconds", "op_ok_max_seconds"))],
        ["ledger", r["ledger"]],
        ["run", r["run_id"]],
    ]
    load = r.get("load") or {}  # reports before the load section have none
    if load.get("target_rate"):
        due = load.get("latency_from_due_seconds") or {}
        summary[-2:-2] = [
            ["rate: achieved / target (ops/s)",
             f"{num(load.get('achieved_rate'))} / {num(load['target_rate'])}"],
            ["rate while writes went through (ops/s)",
             num(load.get("achieved_rate_while_writable"))],
            ["latency from due p50 / p99", f"{secs(due.get('p50'), 4)} / "
                                           f"{secs(due.get('p99'), 4)}"],
            ["ops skipped (due in an outage)", num(load.get("skipped_ops"))]]
    txn = r.get("transactions") or {}
    if txn.get("ops_per_transaction", 1) > 1:
        at = next(i for i, row in enumerate(summary) if row[0].startswith("ops ok"))
        summary[at + 1:at + 1] = [
            [f"transactions ({txn['ops_per_transaction']} ops) ok / failed / in doubt",
             " / ".join(num(txn[k]) for k in ("ok", "failed", "indeterminate"))],
            ["lost acknowledged transactions", num(r["rpo"].get(
                "lost_acknowledged_transactions"))]]
    return summary
