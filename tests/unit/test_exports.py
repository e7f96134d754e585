"""The outputs for the tools around cron, each read back by a real parser."""

import csv
import io
import json
import math
import xml.etree.ElementTree as ET

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ptor_harness.config import parse_scenario
from ptor_harness.outputs import exports, report

from .test_report import outcome


def samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_prometheus_text_parses_with_the_figures_and_verdict():
    r = report.build(outcome(rows=[(1, 1)]))  # one acknowledged insert lost: fail
    found = samples(exports.prometheus_text(r))
    assert found[("ptor_verdict", (("verdict", "fail"),))] == 1
    assert found[("ptor_verdict", (("verdict", "pass"),))] == 0
    assert found[("ptor_lost_acknowledged_ops", ())] == 1
    assert found[("ptor_write_rto_seconds", ())] == 3.5
    assert found[("ptor_ops", (("outcome", "ok"),))] == 2
    assert found[("ptor_check_status", (("check", "max-lost-acknowledged"),
                                        ("status", "fail")))] == 1
    assert found[("ptor_interrupted", ())] == 0


def test_prometheus_says_nan_for_what_was_not_measured():
    r = report.build(outcome(validated=False))
    found = samples(exports.prometheus_text(r))
    assert math.isnan(found[("ptor_lost_acknowledged_ops", ())])
    assert found[("ptor_verdict", (("verdict", "unknown"),))] == 1


def test_junit_xml_has_one_case_per_check():
    r = report.build(outcome(["--max-write-rto", "1"], validated=False))
    suite = ET.fromstring(exports.junit_xml(r)).find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert suite.get("tests") == str(len(cases)) == "8"
    assert suite.get("failures") == "1" and suite.get("errors") == "2"
    assert "above max-write-rto 1 s" in cases["max-write-rto"].find("failure").get("message")
    assert cases["max-lost-acknowledged"].find("error") is not None
    assert cases["writes recovered"].find("failure") is None


def test_a_run_without_a_report_exports_unknown_never_the_drill_before_it(tmp_path):
    """A nightly drill that could not start or finish rewrites the textfile and the JUnit
    file: a collector must not go on reading the previous night's pass."""
    stub = exports.unfinished("20261206T000000Z-abcdef", str(tmp_path),
                              "the recorder did not finish writing the ledger",
                              {"check": 100.0, "warmup": 101.0}, {"schema": "ptor"},
                              "postgresql")
    found = samples(exports.prometheus_text(stub))
    assert found[("ptor_verdict", (("verdict", "unknown"),))] == 1
    assert found[("ptor_verdict", (("verdict", "pass"),))] == 0
    assert found[("ptor_run_finished", ())] == 0
    assert found[("ptor_run_start_timestamp_seconds", ())] == 100.0
    assert found[("ptor_run_end_timestamp_seconds", ())] >= 101.0
    assert not any(name == "ptor_lost_acknowledged_ops" for name, _ in found)  # no figure
    suite = ET.fromstring(exports.junit_xml(stub)).find("testsuite")
    (case,) = suite.findall("testcase")
    assert suite.get("errors") == "1" and case.get("name") == "drill ran"
    assert "recorder did not finish" in case.find("error").get("message")
    finished = samples(exports.prometheus_text(report.build(outcome(rows=[]))))
    assert finished[("ptor_run_finished", ())] == 1


def test_timeline_csv_marks_phases_and_the_outage():
    o = outcome()
    o.phases = {"warmup": 0.0, "load": 1.0, "fault": 1.5, "drain": 5.0}
    r = report.build(o)
    rows = list(csv.DictReader(io.StringIO(exports.timeline_csv(r))))
    assert tuple(rows[0]) == exports.TIMELINE_COLUMNS
    by_second = {int(row["second"]): row for row in rows}
    assert by_second[1]["phase"] == "fault" and by_second[1]["in_outage"] == "1"
    assert by_second[4]["ok"] == "1" and by_second[4]["in_outage"] == "1"  # back at 4.5
    assert sum(int(row["ok"]) for row in rows) == r["ops"]["ok"]


def test_resolved_scenario_runs_again_as_it_was(tmp_path):
    args = ["--primary-pgdsn", "host=db1 user=ptor", "--parallel-workers", "3",
            "--fault", "kill-primary:2,switchover:9", "--lab-dir", "/tmp/lab",
            "--full-data-validation", "--max-write-rto", "4.5", "--seed", "7"]
    original = parse_scenario(args, {})
    path = tmp_path / "scenario.ini"
    path.write_text(exports.scenario_ini(original.as_public_dict(), "run-1"))
    again = parse_scenario(["-c", str(path)], {})
    assert again == original.__class__(**dict(vars(original), config_file=str(path)))


def test_resolved_scenario_masks_passwords():
    s = parse_scenario(["--primary-pgdsn", "host=db1 password=s3cret"], {})
    text = exports.scenario_ini(s.as_public_dict(), "run-1")
    assert "s3cret" not in text and "primary-pgdsn = host=db1 password=" in text


def test_a_drill_stopped_by_a_bug_of_ptors_still_exports_unknown(tmp_path, monkeypatch):
    """Not only a user's error: whatever stops a drill before its report rewrites the
    textfile, or a nightly collector reads the night before's pass as this one."""
    from ptor_harness.drill import coordinator

    prom = tmp_path / "night.prom"
    prom.write_text('ptor_verdict{verdict="pass"} 1.0\n')
    scenario = parse_scenario(["--primary-pgdsn", "host=127.0.0.1 port=1 dbname=x",
                               "--report-dir", str(tmp_path / "runs"),
                               "--prometheus-file", str(prom)])
    drill = coordinator.Drill(scenario)
    monkeypatch.setattr(drill.locks, "take", lambda: None)
    monkeypatch.setattr(drill.locks, "release", lambda: None)

    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(coordinator, "check_cluster", broken)
    with pytest.raises(RuntimeError):
        drill.run()
    found = samples(prom.read_text())
    assert found[("ptor_verdict", (("verdict", "unknown"),))] == 1
    assert found[("ptor_run_finished", ())] == 0
    stub = json.loads((tmp_path / "runs" / drill.run_id / "report.json").read_text())
    assert stub["error"] == "ptor stopped on an error of its own: RuntimeError: a bug"
