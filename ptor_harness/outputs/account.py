"""The drill in plain words: a few sentences on what happened and why the verdict is what
it is, for a reader who is not a replication expert (the terminal's first lines after the
verdict, and report.json's `account`).

Built only from the report: every number in a sentence is one of its figures, rounded as
the sentence says (seconds to 2 decimals), so the account can never say more than the
figures do (tests/unit/test_account.py checks each number against the report).
"""

from __future__ import annotations

from typing import Optional

from ..outcome import RECHECKED_SAYS, RECONCILED_LATER_SAYS
from ..verify.findings import SPLIT_BRAIN, SYNC_WAIT_CANCELLED
from ..verify.metrics import first_outage_fault
from ..verify.redundancy import DROPPED, LAGGING, STALLED, STOPPED
from .after_outage import recovery, redundancy
from .words import count, seconds, server_name

LOSING = (STOPPED, DROPPED)  # anatomy events of the primary losing a standby

CAUSE_WORDS = {SYNC_WAIT_CANCELLED: "after a cancelled wait for synchronous replication",
               SPLIT_BRAIN: "taken by the old primary after a newer one had served",
               "asynchronous_lag": "to asynchronous replication lag",
               "synchronous_commit_off": "acknowledged without waiting for the synchronous "
                                         "standby, since synchronous_commit was "
                                         "{synchronous_commit}",
               "unexplained": "not explained, since a synchronous standby was streaming",
               "not_attributed": "not attributed to a cause, since the node observer saw "
                                 "no replication"}


def account(r: dict) -> list[str]:
    """The sentences, in the order a reader needs them."""
    out = [s for s in (rechecked(r), replication(r), warning_signs(r), fault(r),
                       during_fault(r),
                       promotion(r), loss(r),
                       doubt(r), stale(r), recovery(r), redundancy(r), cdc(r),
                       verdict(r)) if s]
    return out


def origin(r: dict) -> Optional[float]:
    return r["phases"].get("warmup")


def causing_fault(r: dict) -> Optional[dict]:
    """The fault whose outage the drill measures (metrics.first_outage_fault: the first
    one an outage followed, else the first), as the report lists it."""
    at = first_outage_fault(r["faults"])
    return None if at is None else r["faults"][at]


def losses(r: dict) -> tuple[list[dict], list[dict]]:
    """The anatomy's events of the primary losing a standby: before the fault's start, and
    from it to the first client error (a fault that is a command: stop the standby, then
    fail over; redundancy.before_fault)."""
    losing = [e for e in (r.get("anatomy") or {}).get("events") or []
              if e["name"] in LOSING and e.get("seconds_after_fault") is not None]
    return ([e for e in losing if e["seconds_after_fault"] < 0],
            [e for e in losing if e["seconds_after_fault"] >= 0])


def replication(r: dict) -> Optional[str]:
    """How the standbys stood at the fault, as the primary saw them, and the last time
    before it that the primary lost one."""
    a = r.get("anatomy") or {}
    lost, during = losses(r)
    earlier = "" if not lost else (
        f"{seconds(-lost[-1]['seconds_after_fault'])} before the fault the primary lost a "
        f"standby ({lost[-1]['detail']}); ")
    rows = [x for x in a.get("replication_at_fault") or []
            if x["seen_by"].startswith("primary")]
    if a.get("no_standby_since") is not None and not during:
        return f"{earlier}{'at' if earlier else 'At'} the fault no standby was streaming " \
            "from the primary."
    if not rows:
        return None
    parts = []
    for x in rows:
        behind = x["flushed_bytes_behind"]
        lag = "" if behind is None else f", {behind:,} bytes behind"
        parts.append(f"{x['standby'] or 'a standby'} ({x['sync_state'] or 'unknown'}{lag})")
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{earlier}{'at' if earlier else 'At'} the fault, the primary was streaming to " \
        f"{listed}."


def during_fault(r: dict) -> Optional[str]:
    """The primary losing a standby after the fault began and before writes failed."""
    _, during = losses(r)
    if not during:
        return None
    alone = (r.get("anatomy") or {}).get("no_standby_since") is not None
    return (f"{seconds(during[-1]['seconds_after_fault'])} after it began, the primary lost "
            f"a standby ({during[-1]['detail']})"
            + ("; when writes began to fail, no standby was streaming from it." if alone
               else "."))


def no_standby(r: dict) -> Optional[str]:
    """Since when no standby streamed from the primary when writes failed, said under the
    anatomy's replication table (terminal and report.html)."""
    a = r.get("anatomy") or {}
    since = a.get("no_standby_since")
    if since is None:
        return None
    event = next((e for e in a.get("events") or [] if e["at"] == since
                  and e.get("seconds_after_fault") is not None), None)
    when = "" if event is None else (
        f" from {seconds(-event['seconds_after_fault'])} before the fault"
        if event["seconds_after_fault"] < 0 else
        f" from {seconds(event['seconds_after_fault'])} after the fault began")
    return f"No standby was streaming from the primary{when} until writes failed."


def warning_signs(r: dict) -> Optional[str]:
    """The first time before the fault that commits stalled and that a standby fell
    further behind than the threshold (the anatomy's events), each with its detail."""
    events = [e for e in (r.get("anatomy") or {}).get("events") or []
              if (e.get("seconds_after_fault") or 0) < 0]
    signs = []
    for name in (STALLED, LAGGING):
        first = next((e for e in events if e["name"] == name), None)
        if first is not None:
            signs.append(f"{name} {seconds(-first['seconds_after_fault'])} before it "
                         f"({first['detail']})")
    return None if not signs else "Before the fault: " + "; ".join(signs) + "."


def fault(r: dict) -> Optional[str]:
    f, start = causing_fault(r), origin(r)
    if f is None:
        moved = bool(r["servers"].get("primary_moves")) or primary_changed(r)
        changed = "the primary changed during the drill." if moved else \
            "the primary did not change." if r["servers"]["primary_before"] else \
            "which server was the primary before is not known."
        if reconciled_later(r):  # what it did went with its coordinator
            return ("The run did not finish and its journal records no fault, so whether "
                    "one was injected is not known; " + changed)
        return "ptor injected no fault; " + changed
    def at(x: dict) -> str:
        return "" if start is None else f" at +{seconds(x['started_at'] - start)}"

    def unclean(x: dict) -> str:
        return "" if x.get("error") is None and x.get("exit_code") in (0, None) else \
            f"it did not run cleanly: {x.get('error') or 'exit ' + str(x['exit_code'])}"

    how = f" ({unclean(f)})" if unclean(f) else ""
    # the drill's other faults, in their places around the one the outage followed
    others = [("after " if x["started_at"] < f["started_at"] else "then ") + x["name"] + at(x)
              + (f", where {unclean(x)}" if unclean(x) else "")
              for x in r["faults"] if x is not f]
    besides = f" ({'; '.join(others)})" if others else ""
    return f"ptor ran the fault {f['name']}{at(f)}{how}{besides}."


def promoted(r: dict) -> tuple[Optional[dict], list[dict]]:
    """The server the causing fault made primary, as `servers` names one, and the moves
    of the primary after that one: where it moved more than once from the fault's start
    on, the first move's; else the primary the drill ended with."""
    moves = r["servers"].get("primary_moves") or []
    f = causing_fault(r)
    since = [m for m in moves if f is None or m["last"] >= f["started_at"]]
    if len(since) < 2:
        return r["servers"]["primary_after"], []
    return {"label": since[0]["to"], "node": since[0].get("to_node")}, since[1:]


def promoted_early(a: dict) -> Optional[float]:
    """Seconds from the fault to a promotion that came before the first client error (a
    frozen primary: its sessions hang until their timeout), or None."""
    event = next((e for e in a.get("events") or [] if e["name"] == "standby promoted"),
                 None)
    detection = a.get("detection_seconds")
    if event is None or detection is None or event.get("seconds_after_fault") is None:
        return None
    return event["seconds_after_fault"] if event["seconds_after_fault"] < detection else None


def rechecked(r: dict) -> Optional[str]:
    """A second check of a run that had finished says so first: this report is not the
    drill's own."""
    reason = r.get("stop_reason") or ""
    return reason + "." if reason.startswith(RECHECKED_SAYS) else None


def reconciled_later(r: dict) -> bool:
    """The run did not finish: `ptor reconcile` made its report from the ledger."""
    return (r.get("stop_reason") or "").startswith(RECONCILED_LATER_SAYS)


def primary_changed(r: dict) -> bool:
    """The drill ended on another server (or timeline) than it began with."""
    before, after = r["servers"]["primary_before"], r["servers"]["primary_after"]
    return bool(before and after) and \
        (before["port"], before["timeline"]) != (after["port"], after["timeline"])


def final_primary(r: dict) -> str:
    """What the account calls the server the ledger was checked against: "the new
    primary" only where there is one (a primary restarted in place is the same one)."""
    before, after = r["servers"]["primary_before"], r["servers"]["primary_after"]
    return "the primary" if before and after and not primary_changed(r) else "the new primary"


def later_promotions(a: dict) -> str:
    """The promotions later faults caused (their anatomy), in parentheses; "" if none."""
    said = [f"{o['fault']}: {o['new_primary']} promoted {seconds(o['promotion_seconds'])} "
            "after the first client error" for o in a.get("later_outages") or []
            if o.get("new_primary") and o.get("promotion_seconds") is not None]
    return f" ({'; '.join(said)})" if said else ""


def promotion(r: dict) -> Optional[str]:
    a = r.get("anatomy") or {}
    before, after = r["servers"]["primary_before"], r["servers"]["primary_after"]
    if primary_changed(r):
        server, later = promoted(r)
        early, read_only = promoted_early(a), a.get("read_only_seconds")
        if early is not None:  # the outage's phases run from the first client error
            when = (f" {seconds(early)} after the fault, before any client saw an error "
                    f"(the first came {seconds(a['detection_seconds'])} after the fault: "
                    "until then clients waited on the old primary)")
            held = "" if read_only is None else \
                f"; its manager held it read-only for {seconds(read_only)} of the outage " \
                "before it took writes"
        else:
            when = "" if a.get("promotion_seconds") is None else \
                f", {seconds(a['promotion_seconds'])} after the first client error"
            held = "" if read_only is None else \
                f"; it stayed read-only for {seconds(read_only)} more (held so by its " \
                "manager) before it took writes"
        then = "" if not later else (
            f" The primary then moved again{'' if len(later) == 1 else ' and again'}"
            f"{later_promotions(a)}; the drill ended on {server_name(after)}.")
        return f"{server_name(server)} became the primary{when}{held}.{then}"
    if before and after:
        back = next((e for e in a.get("events") or [] if e["name"] == "old primary back"
                     and e.get("seconds_after_fault") is not None), None)
        return "The primary stayed the same server: no standby was promoted" + (
            "." if back is None else f"; {a.get('old_primary') or 'it'} answered as the "
            f"primary again {seconds(back['seconds_after_fault'])} after the fault.")
    return None


def loss(r: dict) -> Optional[str]:
    rpo, validation = r["rpo"], r["validation"]
    if not validation["completed"]:
        return ("What the new primary kept could not be checked: "
                f"{validation['error'] or 'reconciliation did not finish'}.")
    lost = rpo["lost_acknowledged_ops"]
    again = (" The server broke the check off (" + validation["interrupted"][-1] + "); it "
             "ran again to the end on the primary then confirmed."
             if validation.get("interrupted") else "")
    if not lost:
        return "No acknowledged write was lost." + again
    setting = r["servers"].get("synchronous_commit") or "off or local"
    causes = [f"{n:,} " + CAUSE_WORDS.get(cause, cause).format(synchronous_commit=setting)
              for cause, n in (rpo.get("lost_by_cause") or {}).items() if n]
    why = f" ({'; '.join(causes)})" if causes else ""
    tx, lost_tx = r.get("transactions"), rpo.get("lost_acknowledged_transactions")
    whole = "" if not (tx and lost_tx and tx["ops_per_transaction"] > 1) else \
        f" ({count(lost_tx, 'transaction')} of {tx['ops_per_transaction']} ops)"  # the unit
    return (f"{count(lost, 'acknowledged write')}{whole} {'is' if lost == 1 else 'are'} "
            f"lost{why}: "
            + ("its client was told it committed, and " if lost == 1 else
               "the clients were told they committed, and ")
            + f"{final_primary(r)} does not have {'it' if lost == 1 else 'them'}." + again)


def doubt(r: dict) -> Optional[str]:
    d = r["indeterminate"]
    total = r["ops"]["indeterminate"]
    if not total or d["applied"] is None:
        return None
    applied, not_applied = d["applied"], d["not_applied"]
    if total == 1 and applied + not_applied == 1:
        had = "had it" if applied else "did not have it"
    elif applied == total:
        had = "had all of them"
    elif not_applied == total:
        had = "had none of them"
    else:
        had = f"had {applied:,} of them and not {not_applied:,}"
    if reconciled_later(r):
        # the run stopped before it recorded every answer: some of these had one
        return (f"{count(total, 'write')} {'has' if total == 1 else 'have'} no answer in "
                f"the ledger (in doubt: cut off by the failover, or answered after the "
                f"ledger's last record); {final_primary(r)} {had}.")
    return (f"{count(total, 'write')} ended without an answer (in doubt); {final_primary(r)} "
            f"{had}.")


def stale(r: dict) -> Optional[str]:
    s = (r.get("anatomy") or {}).get("stale_routing") or {}
    split = r["anomalies"].get("split_brain_writes")
    parts = []
    if s.get("seconds"):
        seen = [f"{count(s['refused_writes'], 'write')} refused as read-only"
                if s["refused_writes"] else "",
                f"{count(s['standby_sessions'], 'session')} landed on a standby"
                if s.get("standby_sessions") else ""]
        parts.append(f"For {seconds(s['seconds'])} clients were sent to a server that was "
                     f"no longer the primary ({' and '.join(x for x in seen if x)}).")
    held = (r.get("anatomy") or {}).get("refused_by_primary") or {}
    if held.get("refused_writes"):
        moved = (r.get("servers") or {}).get("primary_moves")
        parts.append(f"For {seconds(held['seconds'])} the {'new ' if moved else ''}primary "
                     f"itself refused writes as read-only "
                     f"({count(held['refused_writes'], 'write')}): it was held read-only "
                     "(default_transaction_read_only), by its manager or an operator.")
    both = (r.get("anatomy") or {}).get("two_primaries") or []
    if both:
        first = both[0]
        span = f"for {seconds(first['seconds'])}" if first["seconds"] > 0 else \
            "in one round of its samples"
        more = "" if len(both) == 1 else f" (and {len(both) - 1} more time" \
            f"{'s' if len(both) > 2 else ''})"
        parts.append(f"The node observer saw {first['nodes'][0]} and {first['nodes'][1]} "
                     f"both answer as the primary {span}{more}: two primaries at once"
                     + (", though no acknowledged write went to the old one after the new "
                        "one had served clients." if split == 0 else "."))
    if split:
        parts.append(f"{count(split, 'acknowledged write')} went to the old primary after a "
                     "newer one had served clients (split brain).")
    return " ".join(parts) or None


def cdc(r: dict) -> Optional[str]:
    c = r.get("cdc")
    if not c:
        return None
    slot = c["slot_on_new_primary"] or "unknown"
    missed = "" if c["missed"] is None else \
        f"; the consumer missed {count(c['missed'], 'acknowledged change')}"
    phantom = "" if not c["phantom"] else \
        f" and received {count(c['phantom'], 'change')} the new primary does not have"
    return f"The CDC slot {c['slot']} is {slot} on the new primary{missed}{phantom}."


def verdict(r: dict) -> str:
    status = r["verdict"].upper()
    if r["verdict"] == "pass":
        return f"Verdict {status}: every check held."
    reasons = r["verdict_reasons"]
    return f"Verdict {status}: {reasons[0] if reasons else 'see the checks'}" + (
        f" (and {count(len(reasons) - 1, 'more reason')})" if len(reasons) > 1 else "") + "."
