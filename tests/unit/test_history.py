"""Run history: summaries, trends and regressions from synthetic runs."""

import json

from ptor_harness import history, report
from ptor_harness.history import RunSummary

from .test_report import outcome


def run(run_id, verdict="pass", rto=1.0, lost=0, started=None):
    return RunSummary(run_id, started, verdict, rto, 0.1, lost, 0, 1000, "kill-primary")


def test_summary_of_a_report_and_of_a_run_without_one():
    r = report.build(outcome(rows=[(1, 1)]))
    s = history.summarize("run-1", 100.0, r)
    assert (s.verdict, s.write_rto, s.lost, s.ok_ops, s.faults) == \
        ("fail", 3.5, 1, 2, "failover-command")
    assert "acknowledged ops were lost" in s.reason
    dead = history.summarize("run-2", 200.0, None)
    assert dead.verdict is None and dead.reason == "no report: the run did not finish"


def test_sparkline_scales_and_leaves_gaps():
    assert history.sparkline([1.0, None, 3.0, 2.0]) == "▁ █▅"
    assert history.sparkline([2.0, 2.0]) == "▁▁"
    assert history.sparkline([None]) == ""


def test_regressions_of_the_newest_run():
    steady = [run("r5", rto=1.1), run("r4", rto=1.0), run("r3", rto=0.9)]
    assert history.regressions(steady) == []
    slower = [run("r6", rto=3.0)] + steady
    assert history.regressions(slower) == [
        "write RTO 3.00 s is 3.0x the median of the 3 runs before (1.00 s)"]
    lossy = [run("r6", verdict="fail", lost=4)] + steady
    assert history.regressions(lossy) == [
        "the newest run fails; r5 passed", "4 acknowledged ops lost; none in the runs before"]
    died = [RunSummary("r6", None, None)] + steady
    assert history.regressions(died) == ["the newest run (r6) did not finish"]


def test_render_newest_first_with_deltas_and_trends():
    text = history.render([run("r2", rto=2.5, started=86400.0), run("r1", rto=1.0)], "dir")
    lines = text.splitlines()
    assert lines[0] == "Runs in dir, newest first (times UTC)"
    assert lines[3].startswith("1970-01-02 00:00  r2  ") and "+1.50 s" in lines[3]
    assert "write RTO  ▁█" in text and "verdicts   ++" in text
    assert "Regressions in the newest run" in text
    assert history.render([], "dir") == "no runs recorded in dir yet\n"


def test_json_output():
    data = json.loads(history.as_json([run("r2", rto=2.5), run("r1", rto=1.0)]))
    assert [r["run_id"] for r in data["runs"]] == ["r2", "r1"]
    assert data["regressions"][0].startswith("write RTO 2.50 s")
