"""A campaign's arithmetic and plan, on synthetic rounds: percentiles, per-cell summaries,
the verdict's checks, the --vary matrix, and the files it writes."""

import csv
import io
import xml.etree.ElementTree as ET

import pytest
from prometheus_client import generate_latest

from ptor_harness.campaign import outputs, stats
from ptor_harness.campaign.plan import matrix, schedule
from ptor_harness.config.parse import parse_campaign
from ptor_harness.errors import ConfigError

DSN = "host=127.0.0.1 port=1 dbname=x user=y"


def a_round(number, cell="all", verdict="pass", rto=1.0, lost=0, **more):
    fields = dict(round=number, cell=cell, verdict=verdict, reason="", run_id=f"r{number}",
                  run_dir=f"/runs/r{number}", started_at=100.0 * number,
                  ended_at=100.0 * number + 9, settle_seconds=0.5, write_rto=rto,
                  detection=0.1, promotion=0.5, routing=0.2, lost_acknowledged=lost,
                  brownout_seconds=0.0, primary_before="a", primary_after="b")
    fields.update(more)
    return stats.Round(**fields)


def test_percentiles_interpolate_between_ranks():
    assert stats.percentile([4, 1, 3, 2], 50) == 2.5
    assert stats.percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert stats.percentile([1, 2, 3, 4], 0) == 1 and stats.percentile([1, 2, 3, 4], 100) == 4
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([], 50) is None
    d = stats.distribution([3.0, None, 1.0, 2.0])
    assert (d["n"], d["min"], d["p50"], d["max"]) == (3, 1.0, 2.0, 3.0)


def test_cell_summary_counts_and_totals():
    rounds = [a_round(1, "k", rto=5.0, lost=0), a_round(2, "k", "fail", rto=7.0, lost=3),
              a_round(3, "s", rto=1.0, lost=0)]
    k = stats.cell_summary("k", {"fault": "kill-primary"}, rounds)
    assert (k["rounds"], k["passed"], k["failed"], k["unknown"]) == (2, 1, 1, 0)
    assert k["write_rto"]["p50"] == 6.0 and k["lost_acknowledged_total"] == 3
    assert k["lost_acknowledged_per_round"] == [0, 3]
    unknown_loss = stats.cell_summary("k", {}, [a_round(1, "k", lost=None)])
    assert unknown_loss["lost_acknowledged_total"] is None  # never a made-up 0


LIMITS = stats.Limits(max_write_rto_p95=None, max_lost_acknowledged_total=None,
                      max_failed_rounds=0)


def judge(rounds, planned=None, limits=LIMITS, stopped=None):
    cells = [stats.cell_summary("all", {}, rounds)]
    return stats.judge(cells, rounds, planned or len(rounds), limits, stopped)


def test_the_campaign_verdict():
    assert judge([a_round(1), a_round(2)])[0] == "pass"
    assert judge([a_round(1), a_round(2, verdict="fail")])[0] == "fail"
    lenient = stats.Limits(None, None, max_failed_rounds=1)
    assert judge([a_round(1), a_round(2, verdict="fail")], limits=lenient)[0] == "pass"
    verdict, reasons, _ = judge([a_round(1, verdict="unknown", reason="no failover")])
    assert verdict == "unknown" and "round 1 (all): no failover" in reasons[0]
    verdict, reasons, _ = judge([a_round(1)], planned=5, stopped="SIGTERM received")
    assert verdict == "unknown" and reasons == ["1 of 5 rounds ran (SIGTERM received)"]
    p95 = stats.Limits(max_write_rto_p95=2.0, max_lost_acknowledged_total=None,
                       max_failed_rounds=0)
    verdict, reasons, _ = judge([a_round(i, rto=1.0 + i) for i in range(3)], limits=p95)
    assert verdict == "fail" and "p95 write RTO 2.900 s" in reasons[0]
    total = stats.Limits(None, max_lost_acknowledged_total=2, max_failed_rounds=5)
    assert judge([a_round(1, lost=1), a_round(2, lost=2)], limits=total)[0] == "fail"
    assert judge([a_round(1, lost=1), a_round(2, lost=None)], limits=total)[0] == "unknown"


def test_the_matrix_and_its_interleaved_order():
    base, raw = parse_campaign(["--primary-pgdsn", DSN, "--rounds", "2", "--vary",
                                "parallel-workers=2,4", "--vary", "expect=failover,any"])
    cells = matrix(base, raw)
    assert [c.label for c in cells] == [
        "parallel-workers=2, expect=failover", "parallel-workers=2, expect=any",
        "parallel-workers=4, expect=failover", "parallel-workers=4, expect=any"]
    assert cells[2].scenario.load.parallel_workers == 4
    assert cells[1].scenario.thresholds.expect == "any"
    order = schedule(cells, 2)
    assert [(n, c.label) for n, c in order[:5]] == [
        (1, cells[0].label), (1, cells[1].label), (1, cells[2].label), (1, cells[3].label),
        (2, cells[0].label)]
    plain, raw = parse_campaign(["--primary-pgdsn", DSN])
    assert [c.label for c in matrix(plain, raw)] == ["all"]
    faults, raw = parse_campaign(["--primary-pgdsn", DSN, "--lab-dir", "/tmp/x", "--fault",
                                  "kill-primary:2", "--vary", "fault=switchover,blip=1"])
    assert [c.scenario.faults.fault for c in matrix(faults, raw)] == [
        (("switchover", 5.0),), (("blip=1", 5.0),)]  # the varied value replaces the base's


def test_rate_payload_and_background_load_vary():
    base, raw = parse_campaign(["--primary-pgdsn", DSN, "--background-load", "pgbench -c 9",
                                "--vary", "rate=500,2000", "--vary", "payload-bytes=64,4096",
                                "--vary", "background-load=none,pgbench -n -P 1 -c 4"])
    cells = matrix(base, raw)
    assert len(cells) == 8
    shapes = {(c.scenario.load.rate, c.scenario.load.payload_bytes,
               c.scenario.load.background_load) for c in cells}
    assert (500.0, 4096, ()) in shapes  # none: that cell runs without one
    assert (2000.0, 64, ("pgbench -n -P 1 -c 4",)) in shapes  # replaces the base's


@pytest.mark.parametrize("args, fragment", [
    (["--vary", "parallel-workers=2,lots"], "vary parallel-workers: 'lots' is not a valid"),
    (["--vary", "parallel-workers=2,0"], "parallel-workers must be between 1 and 512"),
    (["--vary", "paralel-workers=2"], "did you mean 'parallel-workers'"),
    (["--vary", "rounds=2,3"], "not an option a drill can vary"),
    (["--vary", "report-dir=a,b"], "not an option a drill can vary"),
    (["--vary", "duration"], "give KEY=VALUE1,VALUE2"),
    (["--vary", "duration=1", "--vary", "duration=2"], "given twice"),
    (["--rounds", "0"], "rounds must be between 1 and 1000"),
    (["--vary", "fault=reboot"], "unknown fault 'reboot'"),
    (["--vary", "pooler=none,pgpool"], "vary pooler: 'pgpool' is not one of none, pgbouncer"),
    (["--vary", "synchronous-commit=on,maybe"], "'maybe' is not one of on, off"),
])
def test_bad_campaigns_are_one_sentence(args, fragment):
    with pytest.raises(ConfigError, match=fragment):
        base, raw = parse_campaign(["--primary-pgdsn", DSN, "--lab-dir", "/tmp/x", *args])
        matrix(base, raw)


def test_lab_settings_are_cells_for_the_lab_not_options_of_the_drill():
    base, raw = parse_campaign(["--primary-pgdsn", DSN, "--lab-dir", "/tmp/x", "--vary",
                                "pooler=none,pgbouncer", "--vary",
                                "synchronous-commit=on,off"])
    cells = matrix(base, raw)
    assert [c.label for c in cells][:2] == ["pooler=none, synchronous-commit=on",
                                             "pooler=none, synchronous-commit=off"]
    assert cells[3].lab_settings == {"pooler": "pgbouncer", "synchronous-commit": "off"}
    assert all(c.scenario == base for c in cells)  # the drill's own options unchanged
    with pytest.raises(ConfigError, match="a setting of a ptor lab; give --lab-dir"):
        parse_campaign(["--primary-pgdsn", DSN, "--vary", "pooler=none,pgbouncer"])


def synthetic_report():
    rounds = [a_round(1, "k", rto=5.0), a_round(1, "s", rto=1.0),
              a_round(2, "k", "fail", rto=6.0, lost=2, reason="2 lost"),
              a_round(2, "s", "unknown", rto=None, lost=None, reason="no failover")]
    cells = [stats.cell_summary(label, {}, rounds) for label in ("k", "s")]
    verdict, reasons, checks = stats.judge(cells, rounds, 4, LIMITS, None)
    return {"campaign_id": "campaign-x", "campaign_dir": "/c", "started_at": 0.0,
            "verdict": verdict, "verdict_reasons": reasons, "cells": cells,
            "rounds": [r.as_dict() for r in rounds]}


def test_csv_junit_and_prometheus():
    report = synthetic_report()
    rows = list(csv.DictReader(io.StringIO(outputs.rounds_csv(report))))
    assert [(r["round"], r["cell"], r["verdict"]) for r in rows] == [
        ("1", "k", "pass"), ("1", "s", "pass"), ("2", "k", "fail"), ("2", "s", "unknown")]
    assert rows[3]["write_rto"] == "" and rows[2]["lost_acknowledged"] == "2"
    assert {"held", "routing", "first_commit"} <= set(rows[0])  # the outage's parts
    suites = ET.fromstring(outputs.junit_xml(report))
    k, s = suites.findall("testsuite")
    assert (k.get("name"), k.get("tests"), k.get("failures")) == ("k", "2", "1")
    assert s.get("errors") == "1" and s.find("testcase/error").get("message") == "no failover"
    text = generate_latest(outputs.prometheus_registry(report)).decode()
    assert 'ptor_campaign_write_rto_seconds{cell="k",quantile="0.5"} 5.5' in text
    assert 'ptor_campaign_rounds{cell="k",verdict="failed"} 1.0' in text
    assert 'ptor_campaign_verdict{verdict="fail"} 1.0' in text
    assert 'ptor_campaign_write_rto_seconds{cell="s",quantile="0.5"} 1.0' in text
    assert 'ptor_campaign_lost_acknowledged_ops{cell="s"}' not in text  # unknown: no series
    assert "verdict: FAIL" in outputs.render(report)


def test_the_campaign_page_is_self_contained_and_escaped(tmp_path):
    from ptor_harness.campaign import page
    from ptor_harness.outputs.html import CSP

    report = synthetic_report()
    report["rounds"][3]["reason"] = "<b>no failover</b>"
    report["scenario"] = {"primary_pgdsn": "host=127.0.0.1 password=******"}
    text = page.campaign_html(report, b"\x89PNG picture")
    assert "<span class='verdict fail'>FAIL</span>" in text and "campaign-x" in text
    assert f'content="{CSP}"' in text and "src='data:image/png;base64," in text
    # the cells as the terminal has them, every round linked to its own page
    assert "<td>5.500</td>" in text  # cell k's median write RTO
    for r in report["rounds"]:
        assert f"<a href='{r['run_id']}/report.html'>{r['round']}</a>" in text
    assert "&lt;b&gt;no failover&lt;/b&gt;" in text and "<b>" not in text
    assert "http:" not in text and "https:" not in text
    # campaign.html beside campaign.png in the campaign's folder, with the picture inside
    report["campaign_dir"] = str(tmp_path)
    report["envelope"], report["checks"] = None, []
    assert outputs.write_all(report, Outputs()) == []
    written = (tmp_path / "campaign.html").read_text()
    assert "PASS" not in written and "FAIL</span>" in written
    assert ("src='data:image/png;base64," in written) == (tmp_path / "campaign.png").exists()


class Outputs:
    report_json = junit_xml = prometheus_file = None


def test_ptor_report_shows_an_earlier_campaign_again(tmp_path, capsys):
    """`ptor report CAMPAIGN_DIR [--html]`: it read "is not a run folder" of a campaign's
    own folder. A campaign.json of format 3 gets its envelope read anew (no slope over
    rates too close for a trend); one no ptor campaign wrote is one sentence, exit 2."""
    import json

    from ptor_harness import cli

    report = dict(synthetic_report(), campaign_dir=str(tmp_path), format=3,
                  kind="campaign", checks=[])
    points = [{"round": n, "cell": "k", "wal_mb_per_second": wal, "lag_at_fault_bytes": 0,
               "lost_acknowledged": 0, "lost_bytes": 0, "write_rto": rto}
              for n, wal, rto in ((1, 1.38, 1.9), (2, 1.42, 1.3))]
    report["envelope"] = {"points": points, "lost_bytes_per_wal_mb_per_second": 0.0,
                          "write_rto_seconds_per_wal_mb_per_second": -15.0}
    (tmp_path / "campaign.json").write_text(json.dumps(report))
    assert cli.main(["report", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("Campaign campaign-x\n") and "verdict: FAIL" in shown
    assert "no slope read; the rounds' WAL rates before the fault (1.38 to 1.42 MB/s)" \
        in shown and "-15.000 s" not in shown
    assert cli.main(["report", str(tmp_path), "--html"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'campaign.html'}\n"
    assert "campaign-x" in (tmp_path / "campaign.html").read_text()
    for text, says in (('{"kind": "campaign", "format": 4}', "figures are missing"),
                       ("[1", "not JSON"), ('{"kind": "drill", "format": 4}', "ptor wrote"),
                       ('{"kind": "campaign", "format": 99}', "newer than this ptor")):
        (tmp_path / "campaign.json").write_text(text)
        assert cli.main(["report", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1 and "Traceback" not in err
    assert cli.main(["report", str(tmp_path / "none")]) == 2
    assert "nor a campaign's campaign.json" in capsys.readouterr().err


def test_a_round_is_not_started_when_its_fault_would_come_after_the_deadline():
    """With --max-run-seconds, a round is started only with time for its fault and a
    little after it: one cut before its fault would add an UNKNOWN about nothing."""
    from ptor_harness.campaign.runner import MIN_ROUND_SECONDS, round_needs
    from ptor_harness.config import parse_scenario

    plain = parse_scenario(["--primary-pgdsn", DSN, "--warmup-duration", "3"], {})
    assert round_needs(plain) == MIN_ROUND_SECONDS
    late = parse_scenario(["--primary-pgdsn", DSN, "--warmup-duration", "3", "--lab-dir",
                           "/tmp/lab", "--fault", "kill-primary:1,switchover:20"], {})
    assert round_needs(late) == 3 + 20 + MIN_ROUND_SECONDS
