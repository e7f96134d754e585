"""The timeline pictures: the terminal chart's columns and the PNG."""

import sys

from ptor_harness.outputs import charts, report

from .test_report import outcome


def drill_report():
    o = outcome()  # ops at 1.0 (ok), 2.0 (in doubt), 4.5 (ok); fault at 1.5
    o.phases = {"warmup": 0.0, "load": 1.0, "drain": 6.0}
    return report.build(o)


def test_terminal_chart_puts_everything_in_its_second():
    lines = charts.terminal_chart(drill_report())
    assert lines[0] == "Timeline (one column = 1 s; bars: ok ops, peak 1/s)"
    assert lines[1] == "  ok       " + " █  █  "
    assert lines[2] == "  errors     ×"
    assert lines[3] == "  outage    ━━━━"  # from the last ok (1.0) to the first ok (4.5)
    assert lines[4] == "  events   WF    D"  # the fault at 1.5 covers the load mark


def test_terminal_chart_buckets_long_runs():
    r = drill_report()
    r["phases"]["drain"] = 600.0
    lines = charts.terminal_chart(r, width=60)
    assert lines[0].startswith("Timeline (one column = 15 s;")
    assert len(lines[1]) - len("  ok       ") <= 60


def test_png_is_drawn(tmp_path):
    import matplotlib.image

    path = str(tmp_path / "t.png")
    assert charts.timeline_png(drill_report(), path) is None
    height, width, _ = matplotlib.image.imread(path).shape
    assert (width, height) == (1000, 550)


def test_without_matplotlib_the_png_is_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    why = charts.timeline_png(drill_report(), str(tmp_path / "t.png"))
    assert why == "matplotlib is not installed (pip install ptor[plot])"
    assert not (tmp_path / "t.png").exists()


def test_png_of_a_drill_whose_writes_never_came_back(tmp_path):
    r = drill_report()
    r["rto"]["write_seconds"] = None
    r["rpo"]["lost_acknowledged_ops"] = None
    r["windows"][0]["end"] = None
    assert charts.timeline_png(r, str(tmp_path / "t.png")) is None
    assert (tmp_path / "t.png").stat().st_size > 0


def test_png_gains_a_wal_lane_when_the_observer_saw_the_primarys_wal(tmp_path):
    import matplotlib.image

    r = drill_report()
    r["load"]["wal_timeline"] = [[0, 1_500_000], [1, 2_000_000], [2, 0], [4, 3_000_000]]
    path = str(tmp_path / "t.png")
    assert charts.timeline_png(r, path) is None
    height, width, _ = matplotlib.image.imread(path).shape
    assert (width, height) == (1000, 550 + 140)  # one lane more


def test_terminal_chart_has_a_wal_lane_when_the_primarys_wal_was_seen():
    r = drill_report()
    assert not any(line.startswith("  WAL") for line in charts.terminal_chart(r))
    r["load"]["wal_timeline"] = [[0, 1_000_000], [1, 2_000_000], [4, 500_000]]
    (wal,) = [line for line in charts.terminal_chart(r) if line.startswith("  WAL")]
    assert wal == "  WAL      ▄█  ▂   (peak 2.00 MB/s)"


def test_a_cdc_consumer_gets_a_lane_in_both_pictures(tmp_path):
    import matplotlib.image

    r = drill_report()
    assert not any(line.startswith("  CDC") for line in charts.terminal_chart(r))
    r["cdc"] = {"received_per_second": [[0, 400], [1, 800], [4, 200]]}
    (cdc,) = [line for line in charts.terminal_chart(r) if line.startswith("  CDC")]
    assert cdc == "  CDC      ▄█  ▂   (changes received, peak 800/s)"
    path = str(tmp_path / "t.png")
    assert charts.timeline_png(r, path) is None
    height, width, _ = matplotlib.image.imread(path).shape
    assert (width, height) == (1000, 550 + 140)


def test_lane_labels_tell_the_nodes_apart():
    assert charts.lane_labels(["node1", "node2", "endpoint"]) == ["node1", "node2", "endpoint"]
    assert charts.lane_labels(["127.0.0.1:7211", "127.0.0.1:7212", "endpoint"]) == [
        ":7211", ":7212", "endpoint"]
    labels = charts.lane_labels(["10.0.0.11:5432", "10.0.0.12:5432"])
    assert labels == ["…11:5432", "…12:5432"] and all(len(x) <= 8 for x in labels)
    alike = charts.lane_labels(["db-a.example.com:5432", "db-b.example.com:5432"])
    assert alike == ["db-a.ex…", "db-b.ex…"]  # the same suffix: from the right
    assert charts.lane_labels(["a" * 20, "a" * 20]) == ["#1", "#2"]


def test_the_endpoint_lane_says_it_is_reached_with_any_role():
    """On a multi-host DSN the endpoint lane reached a standby all drill long while every
    write went to the primary: the legend says the lane is the DSN with any role."""
    r = drill_report()
    r["nodes"] = {"lanes": {"node1": [{"from": 0.0, "to": 6.0, "state": "primary"}]}}
    lines = charts.terminal_chart(r)
    assert lines[-1].endswith("nodes: P primary, s standby, · unreachable)")
    r["nodes"]["lanes"]["endpoint"] = [{"from": 0.0, "to": 6.0, "state": "standby"}]
    lines = charts.terminal_chart(r)
    assert lines[-3].startswith("  endpoint sssssss")
    assert lines[-1] == ("           (endpoint: the primary DSN reached with "
                         "target_session_attrs=any, as a client that only reads would "
                         "reach it)")
