"""The drill in plain words (outputs/account.py), for each kind of drill, and held to the
report: every number in the account is one of the report's figures."""

import copy
import re

import pytest

from ptor_harness.outputs import account, html, render, report, words

from .test_report import outcome

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def figures(value, out: set, strings: list) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        out.add(float(value))
    elif isinstance(value, str):
        strings.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            figures(item, out, strings)
    elif isinstance(value, (list, tuple)):
        for item in value:
            figures(item, out, strings)


def held_to_the_report(r: dict) -> None:
    """Each number in the account is a figure of the report, as rounded there (or a
    fault's time from the warmup), once the report's own strings (labels, reasons) are
    taken out of the sentences."""
    known, strings = set(), []
    figures({k: v for k, v in r.items() if k != "account"}, known, strings)
    warmup = r["phases"]["warmup"]
    known |= {f["started_at"] - warmup for f in r["faults"]}
    known |= {abs(k) for k in known}  # "10.60 s before the fault": a negative offset
    for sentence in r["account"]:
        for text in sorted(strings, key=len, reverse=True):
            if len(text) > 3:
                sentence = sentence.replace(text, "")
        for number in NUMBER.findall(sentence):
            value = float(number.replace(",", ""))
            digits = len(number.split(".")[1]) if "." in number else 0
            assert any(round(k, digits) == value for k in known), (number, sentence)


def built(**changes) -> dict:
    r = report.build(outcome(**changes))
    return r


def clean() -> dict:
    r = built()
    r["servers"]["primary_before"] = {"port": 7211, "timeline": 1, "label": "127.0.0.1:7211"}
    r["servers"]["primary_after"] = {"port": 7212, "timeline": 2, "label": "127.0.0.1:7212"}
    r["anatomy"]["promotion_seconds"] = 1.25
    r["anatomy"]["replication_at_fault"] = [
        {"standby": "node2", "seen_by": "primary node1", "sync_state": "sync",
         "flushed_bytes_behind": 0}]
    return r


def redo(r: dict) -> dict:
    r = copy.deepcopy(r)
    r["account"] = account.account(r)
    return r


def test_a_clean_failover():
    r = redo(clean())
    text = " ".join(r["account"])
    assert text.startswith("At the fault, the primary was streaming to node2 (sync, 0 bytes "
                           "behind).")
    assert "ptor ran the fault failover-command at +1.50 s." in text
    assert "127.0.0.1:7212 became the primary, 1.25 s after the first client error." in text
    assert "No acknowledged write was lost." in text
    assert "Writes were back after 3.50 s" in text and text.endswith("every check held.")
    held_to_the_report(r)


def test_a_first_commit_that_held_the_writes_is_said_with_the_standby_it_waited_for():
    r = clean()
    r["anatomy"].update(new_primary="node2", first_commit_seconds=0.929, events=[
        {"name": "redundancy restored", "at": 17.429, "seconds_after_fault": 1.428,
         "source": "observer: node2", "detail": "node3 streaming, quorum"},
        {"name": "writes acknowledged again", "at": 17.430, "seconds_after_fault": 1.429,
         "source": "workers", "detail": ""}])
    r = redo(r)
    assert "Of that, 0.93 s was the first commit on node2, which waited until a standby " \
        "streamed from it (node3 streaming, quorum)." in " ".join(r["account"])
    held_to_the_report(r)
    r["anatomy"]["events"] = r["anatomy"]["events"][1:]  # no standby came: said plainly
    assert "Of that, 0.93 s was the first commit on node2." in " ".join(redo(r)["account"])
    r["anatomy"]["first_commit_seconds"] = 0.004  # an op's time: nothing to say
    assert "first commit" not in " ".join(redo(r)["account"])


def test_writes_held_by_the_clients_own_timeouts_are_said_beside_the_probe():
    """hang-primary on the streaming lab: write RTO 14.53 s where the probe, a new
    connection, wrote again after 4.02 s; the workers' ops in flight failed only at their
    bound (statement-timeout 10 s + rto-conn-timeout 2 s) after the fault."""
    r = clean()
    start = r["faults"][0]["started_at"]
    r["scenario"].update(statement_timeout=10.0, rto_conn_timeout=2.0)
    r["rto"].update(write_seconds=14.528, probe_seconds=4.017)
    r["windows"][0]["first_failure"] = start + 12.012
    r = redo(r)
    assert "A new connection (ptor's probe) wrote again after 4.02 s; the workers' writes " \
        "in flight were held on the old primary until their bound, statement-timeout 10 s " \
        "plus rto-conn-timeout 2 s, cut them" in " ".join(r["account"])
    held_to_the_report(r)
    r["windows"][0]["first_failure"] = start + 2.0  # they failed early: another cause
    assert "probe" not in " ".join(redo(r)["account"])
    r["windows"][0]["first_failure"] = start + 12.012
    r["rto"]["probe_seconds"] = 14.0  # the probe as slow: nothing held the workers apart
    assert "probe" not in " ".join(redo(r)["account"])


def test_a_node_known_only_by_its_address_is_not_named_twice():
    """--node-dsn without a lab: the observer names a node host:port, which is how the
    server's label begins; "127.0.0.1:6101 at 127.0.0.1:6101 (...)" read twice."""
    label = "127.0.0.1:6101 (system 77, timeline 3)"
    assert words.server_name({"node": "127.0.0.1:6101", "label": label}) == label
    assert words.server_name({"node": "pa1", "label": label}) == f"pa1 at {label}"
    assert words.server_name({"node": None, "label": label}) == label


def test_redundancy_after_the_promotion_is_said_restored_or_not():
    """The time to redundancy a DR record keeps: the new primary's standby streaming again
    (as the old primary's was: sync), or not yet when the drill ended."""
    r = clean()
    r["anatomy"].update(old_primary="node1", new_primary="node2", events=[
        {"name": "standby promoted", "at": 12.0, "seconds_after_fault": 1.5,
         "source": "observer: node2", "detail": "node2 now primary, timeline 2 (was 1)"}])
    text = " ".join(redo(r)["account"])
    assert "When the drill ended, node2 had no synchronous standby streaming: the cluster " \
        "ran without that redundancy from the fault on" in text
    r["nodes"] = dict(r.get("nodes") or {}, failure="the node observer died")
    assert "When the drill ended" not in " ".join(redo(r)["account"])  # it stopped looking
    r["nodes"]["failure"] = None
    r["anatomy"]["events"].append(
        {"name": "old primary rejoined", "at": 16.0, "seconds_after_fault": 5.5,
         "source": "observer: node1", "detail": "node1 streaming from node2"})
    text = " ".join(redo(r)["account"])
    assert "node1 rejoined as a standby 5.50 s after the fault, but when the drill ended, " \
        "node2 had no synchronous standby streaming" in text
    r["anatomy"]["events"].append(
        {"name": "redundancy restored", "at": 17.0, "seconds_after_fault": 6.25,
         "source": "observer: node2", "detail": "node1 streaming, sync"})
    r = redo(r)
    assert "Redundancy was back 6.25 s after the fault (node1 streaming, sync, from node2)." \
        in r["account"]
    held_to_the_report(r)
    r["anatomy"]["events"] = []  # no promotion seen: nothing said of redundancy after it
    assert not any("edundancy" in line for line in redo(r)["account"])


def test_a_server_the_observer_knows_is_named_by_its_node():
    """The promoted server in the account and the terminal's Servers table: by the node's
    name where the report has it (the observer reached that address), else its address."""
    r = clean()
    r["servers"]["primary_after"]["node"] = "node2"
    r = redo(r)
    assert "node2 at 127.0.0.1:7212 became the primary, 1.25 s after" in " ".join(r["account"])
    held_to_the_report(r)
    r["servers"]["primary_moves"] = [{"first": 1.0, "last": 1.1, "workers": 4,
                                      "from": "127.0.0.1:7211", "to": "127.0.0.1:7212",
                                      "from_node": None, "to_node": "node2"}]
    shown = render.render(r)
    assert "primary after   node2 at 127.0.0.1:7212" in shown
    assert "127.0.0.1:7211  node2 at 127.0.0.1:7212" in shown  # the move, by node too
    assert "<td>node2 at 127.0.0.1:7212</td>" in html.report_html(r)  # and in report.html
    assert "primary before  127.0.0.1:7211" in shown


def test_a_primary_that_moved_twice_names_the_server_the_fault_promoted():
    """A kill, then a switchover back (the pg_auto_failover scenario): the anatomy's
    promotion is the kill's, so the account names the server promoted then, not the one
    the drill ended on (it read "node1 ... became the primary, 3.35 s after the first
    client error" of node2's promotion), and says the primary moved on; the terminal
    names the server in between by its node too."""
    r = clean()
    kill = r["faults"][0]["started_at"]
    one, two, three = ("127.0.0.1:7211 (timeline 1)", "127.0.0.1:7212 (timeline 2)",
                       "127.0.0.1:7211 (timeline 3)")
    r["servers"]["primary_before"].update(label=one, node="node1")
    r["servers"]["primary_after"].update(port=7211, timeline=3, label=three, node="node1")
    r["servers"]["primary_moves"] = [
        {"first": kill + 3.0, "last": kill + 3.1, "workers": 4, "from": one, "to": two,
         "from_node": "node1", "to_node": "node2"},
        {"first": kill + 20.0, "last": kill + 20.1, "workers": 4, "from": two, "to": three,
         "from_node": "node2", "to_node": "node1"}]
    r = redo(r)
    said = " ".join(r["account"])
    assert "node2 at 127.0.0.1:7212 (timeline 2) became the primary, 1.25 s after the " \
        "first client error. The primary then moved again; the drill ended on node1 at " \
        "127.0.0.1:7211 (timeline 3)." in said, said
    held_to_the_report(r)
    shown = render.render(r)
    assert "node1 at 127.0.0.1:7211 (timeline 1)  node2 at 127.0.0.1:7212 (timeline 2)" \
        in shown and "node2 at 127.0.0.1:7212 (timeline 2)  node1 at 127.0.0.1:7211 " \
        "(timeline 3)" in shown
    # the later move's own anatomy: its promotion, said with the move
    r["anatomy"]["later_outages"] = [{"fault": "switchover", "fault_at": kill + 19.9,
                                      "new_primary": "node1", "promotion_seconds": 0.12,
                                      "events": []}]
    r["rto"]["outage_windows"] = 2
    r = redo(r)
    said = " ".join(r["account"])
    assert "The primary then moved again (switchover: node1 promoted 0.12 s after the first " \
        "client error); the drill ended on node1 at 127.0.0.1:7211 (timeline 3)." in said, said
    assert "(the write RTO, the longest of 2 outages)" in said
    held_to_the_report(r)
    page = html.report_html(r)  # report.html lists the moves as the terminal does
    assert "<td>node1 at 127.0.0.1:7211 (timeline 1)</td><td>node2 at 127.0.0.1:7212 " \
        "(timeline 2)</td>" in page
    # a move before the fault (a pooler's, a restart) is not the fault's promotion
    r["servers"]["primary_moves"][0].update(first=kill - 5.0, last=kill - 4.9)
    assert "node1 at 127.0.0.1:7211 (timeline 3) became the primary" in \
        " ".join(redo(r)["account"])


def test_a_promotion_before_any_client_error_is_said_as_such():
    """The primary frozen, the standby promoted 0.17 s after the fault while the clients
    still waited on the old one until 2.02 s: it read "became the primary, -1.85 s after
    the first client error"."""
    r = clean()
    r["anatomy"].update(detection_seconds=2.016, promotion_seconds=0.0, routing_seconds=3.0,
                        events=[{"name": "standby promoted", "at": 5.17,
                                 "seconds_after_fault": 0.17, "source": "observer: node2",
                                 "detail": "node2 now primary, timeline 2 (was 1)"}])
    r = redo(r)
    assert "127.0.0.1:7212 became the primary 0.17 s after the fault, before any client saw " \
        "an error (the first came 2.02 s after the fault: until then clients waited on the " \
        "old primary)." in " ".join(r["account"])
    held_to_the_report(r)
    r["anatomy"]["read_only_seconds"] = 1.5
    assert "; its manager held it read-only for 1.50 s of the outage before it took " \
        "writes." in " ".join(redo(r)["account"])


def test_a_new_primary_held_read_only_is_said():
    """pg_auto_failover holds a promoted node read-only for seconds: the account says so,
    and the terminal's split of the outage shows it beside routing."""
    r = clean()
    r["anatomy"].update(read_only_seconds=3.1, routing_seconds=0.05, detection_seconds=0.02,
                        events=[{"at": 1.0, "seconds_after_fault": 0.0, "name": "x",
                                 "source": "ptor", "detail": ""}])
    r["nodes"] = dict(r.get("nodes") or {}, observer="on")
    r["anatomy"]["replication_at_fault"][0].update(
        sent_bytes_behind=0, replayed_bytes_behind=0, replay_lag_seconds=0.0)
    r = redo(r)
    assert ("127.0.0.1:7212 became the primary, 1.25 s after the first client error; it "
            "stayed read-only for 3.10 s more (held so by its manager) before it took "
            "writes.") in " ".join(r["account"])
    held_to_the_report(r)
    split = "write outage: detection 0.020 s, promotion 1.250 s, read-only 3.100 s, " \
            "routing 0.050 s"
    assert split in render.render(r) and f"<p>{split}</p>" in html.report_html(r)
    r["anatomy"]["read_only_seconds"] = None
    r = redo(r)
    assert "read-only" not in render.render(r)


def test_writes_in_doubt_are_said_as_the_check_found_them():
    r = clean()
    r["ops"]["indeterminate"] = 4
    for applied, said in ((4, "had all of them."), (0, "had none of them."),
                          (3, "had 3 of them and not 1.")):
        r["indeterminate"].update(applied=applied, not_applied=4 - applied)
        assert f"4 writes ended without an answer (in doubt); the new primary {said}" in \
            " ".join(redo(r)["account"])
    r["ops"]["indeterminate"] = 1
    r["indeterminate"].update(applied=0, not_applied=1)
    assert "1 write ended without an answer (in doubt); the new primary did not have it." \
        in " ".join(redo(r)["account"])
    # a run reconciled later may have had answers its ledger never got
    r["stop_reason"] = "reconciled later by ptor reconcile: the run did not finish"
    assert "1 write has no answer in the ledger (in doubt: cut off by the failover, or " \
        "answered after the ledger's last record); the new primary did not have it." \
        in " ".join(redo(r)["account"])


def one_lost(cause: str) -> dict:
    """A clean failover's report but for one acknowledged op lost, put down to `cause`."""
    r = clean()
    lossy = built(rows=[(1, 1)])
    r["rpo"], r["verdict"], r["verdict_reasons"] = lossy["rpo"], "fail", \
        lossy["verdict_reasons"]
    r["rpo"]["lost_by_cause"] = dict.fromkeys(
        ("sync_wait_cancelled", "split_brain", "asynchronous_lag", "synchronous_commit_off",
         "unexplained", "not_attributed"), 0)
    r["rpo"]["lost_by_cause"][cause] = 1
    return r


def test_an_asynchronous_loss():
    r = redo(one_lost("asynchronous_lag"))
    text = " ".join(r["account"])
    assert "1 acknowledged write is lost (1 to asynchronous replication lag): its client " \
        "was told it committed, and the new primary does not have it." in text
    assert "Verdict FAIL: 1 acknowledged op was lost" in text
    held_to_the_report(r)
    # --ops-per-transaction: the transactions the clients were told of, too
    r["transactions"] = {"ops_per_transaction": 3, "ok": 10, "failed": 0,
                         "indeterminate": 0}
    r["rpo"].update(lost_acknowledged_ops=3, lost_acknowledged_transactions=1)
    r["rpo"]["lost_by_cause"]["asynchronous_lag"] = 3
    assert "3 acknowledged writes (1 transaction of 3 ops) are lost (3 to asynchronous " \
        "replication lag)" in " ".join(redo(r)["account"])
    held_to_the_report(redo(r))
    r["rpo"]["lost_by_cause"]["asynchronous_lag"] = 1
    r["rpo"].update(lost_acknowledged_ops=1, lost_acknowledged_transactions=1)
    r["transactions"] = None
    # without the node observer, no cause: said without brackets inside brackets
    r["rpo"]["lost_by_cause"].update(asynchronous_lag=0, not_attributed=1)
    assert "1 acknowledged write is lost (1 not attributed to a cause, since the node " \
        "observer saw no replication): its client" in " ".join(redo(r)["account"])


def test_a_loss_with_synchronous_commit_off_names_the_setting():
    r = one_lost("synchronous_commit_off")
    r["servers"]["synchronous_commit"] = "off"
    r = redo(r)
    assert "1 acknowledged write is lost (1 acknowledged without waiting for the synchronous " \
        "standby, since synchronous_commit was off): its client" in " ".join(r["account"])
    held_to_the_report(r)


def test_cancelled_waits():
    r = clean()
    r["rpo"]["lost_acknowledged_ops"] = 64
    r["rpo"]["lost_by_cause"] = {"sync_wait_cancelled": 64}
    r = redo(r)
    assert "64 acknowledged writes are lost (64 after a cancelled wait for synchronous " \
           "replication)" in " ".join(r["account"])
    held_to_the_report(r)


def test_split_brain_and_stale_routing():
    r = clean()
    r["anomalies"]["split_brain_writes"] = 7
    r["anatomy"]["stale_routing"] = {"refused_writes": 12, "standby_sessions": 3,
                                     "first_at": 1.0, "last_at": 3.5, "seconds": 2.5}
    r = redo(r)
    text = " ".join(r["account"])
    assert "For 2.50 s clients were sent to a server that was no longer the primary " \
           "(12 writes refused as read-only and 3 sessions landed on a standby)." in text
    assert "7 acknowledged writes went to the old primary after a newer one" in text
    held_to_the_report(r)
    # sessions that found a standby send no write: "0 writes refused" said nothing
    r["anatomy"]["stale_routing"].update(refused_writes=0, standby_sessions=112)
    assert "no longer the primary (112 sessions landed on a standby)." in \
        " ".join(redo(r)["account"])


def test_no_failover_when_one_was_expected():
    r = built()
    r["servers"]["primary_before"] = r["servers"]["primary_after"] = {
        "port": 7211, "timeline": 1, "label": "127.0.0.1:7211"}
    r["rto"].update(outage_windows=0, write_seconds=0.0)
    r["verdict"], r["verdict_reasons"] = "unknown", [
        "no failover was observed: the primary never changed and no write failed"]
    r["brownout"].update(seconds=0.0, periods=[])
    r = redo(r)
    text = " ".join(r["account"])
    assert "The primary stayed the same server: no standby was promoted." in text
    assert "No write failed." in text
    assert "Verdict UNKNOWN: no failover was observed" in text
    held_to_the_report(r)


def test_a_run_reconciled_later_without_its_journal_never_says_no_fault_ran():
    """A run whose coordinator and journal spill went with its host: the ledger records
    no fault, but one may have run. Its primary before is known only from the workers'
    sessions; where no worker was served, "did not change" would be a guess."""
    r = clean()
    r["faults"] = []
    r["stop_reason"] = "reconciled later by ptor reconcile: the run did not finish"
    text = " ".join(redo(r)["account"])
    assert "The run did not finish and its journal records no fault, so whether one was " \
        "injected is not known; the primary changed during the drill." in text
    assert "injected no fault" not in text
    r["servers"]["primary_before"], r["servers"]["primary_moves"] = None, []
    text = " ".join(redo(r)["account"])
    assert "which server was the primary before is not known." in text
    assert "did not change" not in text
    r["stop_reason"] = "completed"  # a drill with no fault, finished: ptor knows
    r["servers"]["primary_before"] = r["servers"]["primary_after"]
    assert "ptor injected no fault; the primary did not change." in \
        " ".join(redo(r)["account"])


def test_a_stall_without_an_error_is_said():
    """A primary frozen for 3 s (blip) under --expect no-failover: no op failed, so no
    outage window; the account read "Writes never stopped." of 3 s without a write."""
    r = built()
    r["servers"]["primary_before"] = r["servers"]["primary_after"] = {
        "port": 7211, "timeline": 1, "label": "127.0.0.1:7211"}
    r["rto"].update(outage_windows=0, write_seconds=0.0)
    r["latency"]["op_ok_max_seconds"] = 3.0214
    r["brownout"].update(threshold=0.5, seconds=3.0,
                         periods=[{"start": 6.0, "end": 9.0, "seconds": 3.0}])
    r = redo(r)
    assert "No write failed, but writes stalled: the slowest acknowledged write took " \
        "3.02 s, and for 3 s acknowledged writes ran under 0.5 of the warmup's rate (the " \
        "brownout)." in " ".join(r["account"])
    held_to_the_report(r)


def test_unknown_when_nothing_could_be_checked():
    r = redo(built(validated=False))
    text = " ".join(r["account"])
    assert "What the new primary kept could not be checked: no confirmed primary" in text
    assert r["account"][-1].startswith("Verdict UNKNOWN")
    held_to_the_report(r)


@pytest.mark.parametrize("changes", [{}, {"rows": [(1, 1)]}, {"validated": False}])
def test_the_report_carries_its_account(changes):
    r = built(**changes)
    assert r["account"] == account.account(r) and r["account"]
    held_to_the_report(r)


def test_a_standby_gone_before_the_fault_is_said():
    r = clean()
    warmup = r["phases"]["warmup"]
    r["anatomy"]["events"] = [{"name": "standby stopped streaming", "at": warmup - 9.1,
                               "source": "observer: node1",
                               "detail": "node2 (sync) no longer streaming",
                               "after": None, "seconds_after_fault": -10.6}]
    r["anatomy"]["no_standby_since"] = warmup - 9.1
    r["anatomy"]["replication_at_fault"] = []
    r = redo(r)
    assert r["account"][0] == ("10.60 s before the fault the primary lost a standby (node2 "
                               "(sync) no longer streaming); at the fault no standby was "
                               "streaming from the primary.")
    held_to_the_report(r)


def test_a_standby_the_fault_stopped_before_writes_failed_is_said():
    """One command stopped the standby, waited 3 s and failed the primary over: at the
    command's start the standby streamed; the account says it went 0.05 s later and that
    none streamed when writes began to fail, which is why the failover lost writes."""
    r = clean()
    fault = r["faults"][0]["started_at"]
    r["anatomy"]["events"] = [{"name": "standby stopped streaming", "at": fault + 0.05,
                               "source": "observer: node1",
                               "detail": "node2 (async) no longer streaming",
                               "after": fault - 0.05, "seconds_after_fault": 0.05}]
    r["anatomy"]["no_standby_since"] = fault + 0.05
    r["anatomy"]["replication_at_fault"][0]["sync_state"] = "async"
    r = redo(r)
    assert r["account"][:3] == [
        "At the fault, the primary was streaming to node2 (async, 0 bytes behind).",
        "ptor ran the fault failover-command at +1.50 s.",
        "0.05 s after it began, the primary lost a standby (node2 (async) no longer "
        "streaming); when writes began to fail, no standby was streaming from it."]
    held_to_the_report(r)
    r["nodes"] = dict(r["nodes"] or {}, observer="on")
    r["anatomy"]["replication_at_fault"][0].update(
        sent_bytes_behind=0, replayed_bytes_behind=0, replay_lag_seconds=0.0)
    said = "No standby was streaming from the primary from 0.05 s after the fault began " \
        "until writes failed."
    assert said in render.render(r)
    assert said in html.report_html(r)
    # the standby back before writes failed: the loss is said, not the solitude
    r["anatomy"]["no_standby_since"] = None
    assert redo(r)["account"][2].endswith("(node2 (async) no longer streaming).")
    assert "No standby was streaming" not in render.render(r)


def test_commits_stalling_and_a_standby_lagging_before_the_fault_are_said():
    r = clean()
    warmup = r["phases"]["warmup"]
    r["anatomy"]["events"] = [
        {"name": "commits stalled", "at": warmup - 8.0, "source": "ledger",
         "detail": "under 0.5 of the baseline's 1,200 acknowledged ops a second for 3 s",
         "after": None,
         "seconds_after_fault": -9.5},
        {"name": "standby lag above the threshold", "at": warmup - 4.0,
         "source": "observer: node1", "after": warmup - 4.1, "seconds_after_fault": -5.5,
         "detail": "node2: 17,000,000 bytes behind in replay, 16,000 in flush "
                   "(threshold 16,777,216)"},
        {"name": "commits stalled", "at": warmup - 2.0, "source": "ledger",
         "detail": "later", "after": None, "seconds_after_fault": -3.5}]
    r = redo(r)
    assert r["account"][1] == (
        "Before the fault: commits stalled 9.50 s before it (under 0.5 of the baseline's "
        "1,200 acknowledged ops a second for 3 s); standby lag above the threshold 5.50 s "
        "before it (node2: 17,000,000 bytes behind in replay, 16,000 in flush (threshold "
        "16,777,216)).")
    held_to_the_report(r)


def test_a_check_the_server_broke_off_and_that_ran_again_is_said():
    r = clean()
    r["validation"]["interrupted"] = [
        "reading the primary failed mid-check: OperationalError: server closed the "
        "connection unexpectedly"]
    r = redo(r)
    text = " ".join(r["account"])
    assert ("No acknowledged write was lost. The server broke the check off (reading the "
            "primary failed mid-check: OperationalError: server closed the connection "
            "unexpectedly); it ran again to the end on the primary then confirmed.") in text
    held_to_the_report(r)
    assert "attempt 1 broken off" in render.render(r)


def test_two_primaries_at_once_are_said_with_or_without_split_brain_writes():
    """Seen with Patroni's manager killed: the observer saw the old primary still answer
    as one for 0.20 s beside the promoted node. The anatomy's terminal table said so; the
    account did not."""
    r = clean()
    r["anatomy"]["two_primaries"] = [{"nodes": ["pa1", "pa2"], "start": 10.856,
                                      "end": 11.06, "seconds": 0.204}]
    r = redo(r)
    text = " ".join(r["account"])
    assert "The node observer saw pa1 and pa2 both answer as the primary for 0.20 s: two " \
           "primaries at once, though no acknowledged write went to the old one after the " \
           "new one had served clients." in text
    held_to_the_report(r)
    r["anomalies"]["split_brain_writes"] = 3
    r["anatomy"]["two_primaries"].append({"nodes": ["pa1", "pa2"], "start": 12.0,
                                          "end": 12.0, "seconds": 0.0})
    r = redo(r)
    text = " ".join(r["account"])
    assert "both answer as the primary for 0.20 s (and 1 more time): two primaries at " \
           "once. 3 acknowledged writes went to the old primary" in text
    held_to_the_report(r)


def test_every_fault_of_the_drill_is_named_around_the_one_the_outage_followed():
    """pg_auto_failover, stop-sync-standby at +2 s then kill-primary at +8 s: the account
    named only the kill, so the commits stalling 6 s before it had no cause in it. The
    same server back as primary after its restart is "the primary", not a new one."""
    r = clean()
    kill = r["faults"][0]
    quiet = {"detection_seconds": None, "injection_to_first_ok_seconds": None}  # no outage
    stop = dict(kill, name="stop-sync-standby", started_at=kill["started_at"] - 1.0,
                ended_at=kill["started_at"] - 0.5, **quiet)
    back = dict(kill, name="switchover", started_at=kill["started_at"] + 2.0,
                ended_at=kill["started_at"] + 2.5, exit_code=1, **quiet)
    r["faults"] = [stop, kill, back]
    r = redo(r)
    said = " ".join(r["account"])
    assert "ptor ran the fault failover-command at +1.50 s (after stop-sync-standby at " \
        "+0.50 s; then switchover at +3.50 s, where it did not run cleanly: exit 1)." in said
    held_to_the_report(r)
    same = clean()
    same["servers"]["primary_after"] = dict(same["servers"]["primary_before"])
    same = redo(same)
    said = " ".join(same["account"])
    assert "The primary stayed the same server: no standby was promoted." in said
    assert "(in doubt); the primary did not have it." in said, said
    same["anatomy"]["old_primary"] = "node1"
    same["anatomy"]["events"].append({"name": "old primary back", "at": 16.9,
                                      "source": "observer: node1", "after": 16.4,
                                      "detail": "node1 primary again, timeline 1",
                                      "seconds_after_fault": 15.4})
    same = redo(same)
    assert "no standby was promoted; node1 answered as the primary again 15.40 s after " \
        "the fault." in " ".join(same["account"])
    held_to_the_report(same)
    assert "new primary" not in said
