"""The account's sentences on the cluster after the outage: when writes were back (and
the first commit on the new primary, where it held them), and whether the new primary
had a standby streaming again before the drill ended."""

from __future__ import annotations

from typing import Optional

from ..verify.metrics import first_outage_fault
from .words import seconds


def recovery(r: dict) -> Optional[str]:
    rto, brown = r["rto"], r.get("brownout") or {}
    if not rto["outage_windows"]:
        slowest = r["latency"].get("op_ok_max_seconds")
        if brown.get("seconds") and slowest is not None:
            return (f"No write failed, but writes stalled: the slowest acknowledged write "
                    f"took {seconds(slowest)}, and for {brown['seconds']:g} s acknowledged "
                    f"writes ran under {brown['threshold']:g} of the warmup's rate (the "
                    "brownout).")
        return "No write failed."
    if not rto["recovered"]:
        return "Writes did not come back before the drill ended."
    of = "" if rto["outage_windows"] < 2 else f", the longest of {rto['outage_windows']} outages"
    return f"Writes were back after {seconds(rto['write_seconds'])} (the write RTO{of})." + \
        held_by_timeouts(r) + first_commit(r)


# the workers' RTO this much past the probe's is worth a sentence (seconds)
BEHIND_THE_PROBE_SAID = 1.0


def held_by_timeouts(r: dict) -> str:
    """Where a new connection (the probe) wrote again well before the workers did, and
    the workers' first failures came no sooner than their bound (statement-timeout plus
    rto-conn-timeout) after the fault: their writes in flight were held by a primary that
    hung rather than died, and the clients' own timeouts set the outage (hang-primary on
    the streaming lab: 14.53 s, where the probe wrote again after 4.02 s)."""
    rto, s = r["rto"], r.get("scenario") or {}
    probe, write = rto.get("probe_seconds"), rto.get("write_seconds")
    statement, connect = s.get("statement_timeout"), s.get("rto_conn_timeout")
    causing = first_outage_fault(r.get("faults") or [])
    if None in (probe, write, causing) or not statement or connect is None \
            or write < probe + BEHIND_THE_PROBE_SAID:
        return ""
    start = r["faults"][causing]["started_at"]
    window = next((w for w in r.get("windows") or [] if w["first_failure"] >= start), None)
    if window is None or window["first_failure"] - start < statement + connect - 0.5:
        return ""
    return (f" A new connection (ptor's probe) wrote again after {seconds(probe)}; the "
            "workers' writes in flight were held on the old primary until their bound, "
            f"statement-timeout {statement:g} s plus rto-conn-timeout {connect:g} s, cut "
            "them: where a primary hangs rather than dies, a client's own timeouts set "
            "its outage.")


# a first commit on the new primary this long is worth a sentence (an op takes ms)
FIRST_COMMIT_SAID = 0.1


def first_commit(r: dict) -> str:
    """The new primary's first commit, where it held the writes back: sessions had reached
    it, and their commits waited (for a synchronous standby to attach, as the observer
    saw one stream from it just then)."""
    a = r.get("anatomy") or {}
    held = a.get("first_commit_seconds")
    if held is None or held < FIRST_COMMIT_SAID:
        return ""
    new = a.get("new_primary") or "the new primary"
    events = a.get("events") or []
    ok = next((e for e in events if e["name"] == "writes acknowledged again"), None)
    back = next((e for e in events if e["name"] == "redundancy restored"), None)
    waited = ""
    if ok is not None and back is not None and ok["at"] - held <= back["at"] <= ok["at"] + 0.25:
        waited = f", which waited until a standby streamed from it ({back['detail']})"
    return f" Of that, {seconds(held)} was the first commit on {new}{waited}."


def redundancy(r: dict) -> Optional[str]:
    """After a promotion, whether the new primary had a standby streaming again before the
    drill ended, as the node observer saw it: until then a second failure would lose what
    it acknowledged alone (the time to redundancy a DR test records)."""
    a = r.get("anatomy") or {}
    events = {e["name"]: e for e in a.get("events") or []
              if e.get("seconds_after_fault") is not None}
    new = a.get("new_primary")
    if new is None or "standby promoted" not in events:
        return None
    back = events.get("redundancy restored")
    if back is not None:
        return (f"Redundancy was back {seconds(back['seconds_after_fault'])} after the fault "
                f"({back['detail']}, from {new}).")
    if (r.get("nodes") or {}).get("failure"):
        return None  # the observer stopped: what it did not see may have happened
    was_sync = any(x.get("sync_state") in ("sync", "quorum")
                   for x in a.get("replication_at_fault") or []
                   if x["seen_by"].startswith("primary"))
    rejoined = events.get("old primary rejoined")
    lead = "When the drill ended" if rejoined is None else (
        f"{a.get('old_primary')} rejoined as a standby "
        f"{seconds(rejoined['seconds_after_fault'])} after the fault, but when the drill ended")
    return (f"{lead}, {new} had no {'synchronous ' if was_sync else ''}standby streaming: "
            "the cluster ran without that redundancy from the fault on (a longer "
            "--observe-after shows when it came back).")
