"""Run history: summaries, trends and regressions from synthetic runs."""

import json

from ptor_harness.outputs import history, report
from ptor_harness.outputs.history import RunSummary

from .test_report import outcome


def run(run_id, verdict="pass", rto=1.0, lost=0, started=None, faults="kill-primary",
        cluster="pg:5432/app"):
    return RunSummary(run_id, started, verdict, rto, 0.1, lost, 0, 1000, faults,
                      cluster=cluster)


def test_summary_of_a_report_and_of_a_run_without_one():
    r = report.build(outcome(rows=[(1, 1)]))
    s = history.summarize("run-1", 100.0, r)
    assert (s.verdict, s.write_rto, s.lost, s.ok_ops, s.faults) == \
        ("fail", 3.5, 1, 2, "failover-command")
    assert "1 acknowledged op was lost" in s.reason
    assert s.cluster == "127.0.0.1:5432"  # from the report's masked DSN: no password
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
        "write RTO 3.00 s is 3.0x the median of the 3 runs before with the same faults on "
        "the same cluster (1.00 s)"]
    # other drills' RTOs are not this one's baseline: a blip's none, a switchover's
    others = [run("r6", rto=3.0), run("r5", rto=0.0, faults="blip=2"),
              run("r4", rto=0.5, faults="switchover"), run("r3", rto=2.8)]
    assert history.regressions(others) == []
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
    # the change is from the previous run with the same faults, never from another drill
    mixed = history.render([run("r3", rto=4.5), run("r2", rto=0.0, faults="hang-primary"),
                            run("r1", rto=4.0)], "dir").splitlines()
    assert "+0.50 s" in mixed[3] and "+4.50 s" not in mixed[3]
    assert "vs prev*" in mixed[1] and "same faults" in mixed[6]
    assert "write RTO  ▁█" in text and "verdicts   ++" in text
    assert "Regressions in the newest run" in text
    assert history.render([], "dir") == "no runs recorded in dir yet\n"


def test_json_output():
    data = json.loads(history.as_json([run("r2", rto=2.5), run("r1", rto=1.0)]))
    assert [r["run_id"] for r in data["runs"]] == ["r2", "r1"]
    assert data["regressions"][0].startswith("write RTO 2.50 s")


def test_hostile_reports_are_skipped_with_one_line_each(tmp_path):
    """Partial, malformed or hostile report.json files never stop `ptor history`."""
    import json as jsonlib

    from ptor_harness.outputs import history as hist

    bad = {"20261101T000000Z-aaaaaa": "[]",
           "20261101T000001Z-bbbbbb": "{}",
           "20261101T000002Z-cccccc": '{"verdict": "pass"}',
           "20261101T000003Z-dddddd": '{"verdict": "pass", "rto": 5, "rpo": {}, "ops": {}}',
           "20261101T000004Z-eeeeee": "[" * 50000 + "]" * 50000,
           "20261101T000005Z-ffffff": '{"verdict": "pass", "rto": {"write_seconds": "x", '
                                      '"detection_seconds": null}, "rpo": {"lost_acknowled'
                                      'ged_ops": 0}, "ops": {"indeterminate": 0, "ok": 1}}'}
    for name, text in bad.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(text)
    (tmp_path / "20261101T000006Z-999999").mkdir()
    (tmp_path / "20261101T000006Z-999999" / "report.json").write_bytes(b"\xff\xfe{")
    early = tmp_path / "20261101T000007Z-777777"
    early.mkdir()
    (early / "report.json").write_text(jsonlib.dumps({"verdict": None, "error": "cannot "
                                                      "connect to the primary: refused"}))
    late = tmp_path / "20261101T000008Z-888888"  # it started its load, then its repo went
    late.mkdir()
    (late / "report.json").write_text(jsonlib.dumps({
        "verdict": None, "error": "the recorder failed", "phases": {"check": 1, "warmup": 2}}))
    skipped = []
    runs = hist.from_report_dir(str(tmp_path), 20, skipped)
    assert [r.run_id for r in runs] == ["20261101T000008Z-888888", "20261101T000007Z-777777"]
    assert runs[0].reason == "did not finish: the recorder failed"
    assert runs[1].reason == "did not start: cannot connect to the primary: refused"
    assert len(skipped) == 7 and all(line.startswith("skipped run ") for line in skipped)
    jsonlib.loads(hist.as_json(runs))  # still valid JSON


def test_campaigns_are_listed_with_their_percentiles(tmp_path):
    from .test_campaign import synthetic_report

    good = synthetic_report()
    good["campaign_id"] = "campaign-20261126T100000Z-aaaaaa"
    for name, text in (("campaign-20261126T100000Z-aaaaaa", json.dumps(good)),
                       ("campaign-20261126T110000Z-bbbbbb", '{"cells": 3}'),
                       ("campaign-20261126T120000Z-cccccc", None)):  # still running
        (tmp_path / name).mkdir()
        if text is not None:
            (tmp_path / name / "campaign.json").write_text(text)
    skipped = []
    found = history.campaigns_from_report_dir(str(tmp_path), 10, skipped)
    assert [c["id"] for c in found] == ["campaign-20261126T100000Z-aaaaaa"]
    assert skipped == ["skipped campaign campaign-20261126T110000Z-bbbbbb: its campaign.json "
                       "is not one"]
    (c,) = found
    assert c["verdict"] == "fail" and c["rounds"] == 4
    assert [(x["label"], x["passed"], x["p50"]) for x in c["cells"]] == [("k", 1, 5.5),
                                                                          ("s", 1, 1.0)]
    text = history.render_campaigns(found)
    assert "campaign-20261126T100000Z-aaaaaa  FAIL" in text and "5.50 s" in text
    assert json.loads(history.as_json([], found))["campaigns"] == found


def test_runs_of_other_clusters_are_no_baseline():
    """One cron host drilling several clusters into one report folder: a Patroni
    switchover's RTO is no baseline for a streaming pair's kill, and each row says which
    cluster it drilled."""
    several = [run("r4", rto=3.0), run("r3", rto=0.5, cluster="10.0.0.9:5432,5433/app"),
               run("r2", rto=0.4, cluster="10.0.0.9:5432,5433/app"), run("r1", rto=2.9)]
    assert history.regressions(several) == []
    lines = history.render(several, "dir").splitlines()
    assert "cluster" in lines[1] and "pg:5432/app" in lines[3]
    assert "+0.10 s" in lines[3] and "+2.50 s" not in lines[3]  # from r1, not from r3
    assert lines[7].endswith("the same faults on the same cluster")
    # a trend per cluster: the pair's two fast runs are not a dip in the other's
    text = "\n".join(lines)
    assert "Trends, oldest to newest, pg:5432/app\n  write RTO  ▁█" in text
    assert "Trends, oldest to newest, 10.0.0.9:5432,5433/app\n  write RTO  ▁█" in text
    alone = history.render([run("r2"), run("r1")], "dir").splitlines()
    assert "cluster" not in alone[1]  # one cluster: no column for it
    assert "Trends, oldest to newest" in alone


def test_endpoint_labels():
    from ptor_harness.db import endpoint_label

    assert endpoint_label("host=127.0.0.1,127.0.0.1 port=6041,6042 dbname=postgres "
                          "password=zz9") == "127.0.0.1:6041,6042/postgres"
    assert endpoint_label("host=a,b port=5432 dbname=x") == "a:5432,b:5432/x"
    assert endpoint_label("postgresql://u:zz9@db.example:6432/app?sslmode=require") == \
        "db.example:6432/app"
    assert endpoint_label("dbname=app") == "localhost:5432/app"
    assert endpoint_label("not a dsn") == ""
