"""report.json's one reader (outputs/report_file.py): today's reports read back as
written, older formats brought up to the current one, and nothing else taken for a
report."""

import json

import pytest

from ptor_harness.errors import ConfigError
from ptor_harness.outputs import exports, history, render, report, report_file
from ptor_harness.outputs.report_file import ADDED_IN, FORMAT, NotAReport

from .test_report import outcome


def test_a_report_reads_back_as_it_was_written(tmp_path):
    built = report.build(outcome())
    path = str(tmp_path / "report.json")
    exports.write_json(built, path)
    assert report_file.load(path) == json.loads(report_file.to_text(built))
    assert report_file.load(path)["format"] == FORMAT == report.REPORT_FORMAT


def test_every_key_a_format_added_is_in_todays_report():
    """The upgrade table names keys the writer really writes: a key misspelt there would
    be added as null to an old report and never read."""
    built = report.build(outcome())
    cdc = report.build(outcome(["--cdc-slot", "s"]))  # the cdc section is null without
    for added in ADDED_IN.values():
        for section, key in added:
            assert key in (built if section is None else built[section] or cdc[section]), \
                (section, key)


def format_1_report() -> dict:
    """A report as the first ptor wrote it: the keys of format 1 only."""
    built = json.loads(report_file.to_text(report.build(outcome())))
    for version in range(2, FORMAT + 1):
        for section, key in ADDED_IN[version]:
            (built if section is None else built.get(section) or {}).pop(key, None)
    built["format"] = 1
    return built


def test_an_older_report_gets_every_later_key_as_null():
    old = format_1_report()
    read = report_file.parse(json.dumps(old))
    assert read["format"] == FORMAT
    assert read["background"] is None and read["anatomy"] is None and read["load"] is None
    assert read["rpo"]["lost_acknowledged_transactions"] is None
    assert read["rpo"]["lost_acknowledged_ops"] == old["rpo"]["lost_acknowledged_ops"]
    assert "background" not in old  # the caller's dict is left as it was
    summary = history.summarize("r", 1.0, read)
    assert summary.verdict == old["verdict"] and summary.lost == 0


def test_a_format_10_reports_servers_get_no_node_names():
    old = json.loads(report_file.to_text(report.build(outcome())))
    old["format"] = 10
    old["servers"]["primary_before"] = {"addr": "127.0.0.1", "port": 7211, "label": "x"}
    read = report_file.parse(json.dumps(old))
    assert read["servers"]["primary_before"] == {"addr": "127.0.0.1", "port": 7211,
                                                 "label": "x", "node": None}
    assert "node" not in old["servers"]["primary_before"]  # the caller's dict is as it was
    render.render(read)  # and renders


def test_a_format_15_reports_evidence_gets_no_commit_order_losses():
    old = json.loads(report_file.to_text(report.build(outcome())))
    old["format"] = 15
    old["rpo"]["lost_by_evidence"] = {"final_state": 3, "version_chain": 1,
                                      "worker_order": 2}
    read = report_file.parse(json.dumps(old))
    assert read["rpo"]["lost_by_evidence"] == {"final_state": 3, "version_chain": 1,
                                               "worker_order": 2, "commit_order": 0}
    assert "commit_order" not in old["rpo"]["lost_by_evidence"]
    render.render(read)


def test_a_format_16_reports_anatomy_events_are_bounded_by_nothing():
    old = json.loads(report_file.to_text(report.build(outcome())))
    old["format"] = 16
    old["anatomy"] = dict(old["anatomy"] or {}, events=[
        {"name": "standby promoted", "at": 12.0, "after": 11.9, "source": "observer: n2",
         "detail": "n2", "seconds_after_fault": 1.5}])
    read = report_file.parse(json.dumps(old))
    assert read["anatomy"]["events"][0]["happened_by"] is None
    assert "happened_by" not in old["anatomy"]["events"][0]
    render.render(read)


def test_a_report_from_before_the_format_key_is_format_1():
    old = format_1_report()
    del old["format"]
    assert report_file.parse(old)["lock"] is None


def test_a_run_that_could_not_start_is_read_as_it_is():
    early = {"format": FORMAT, "run_id": "r", "verdict": None, "error": "refused"}
    assert report_file.parse(early) == early


@pytest.mark.parametrize("text, why", [
    ("[]", "not a JSON object"),
    ("{", "not JSON"),
    ("[" * 50000 + "]" * 50000, "not JSON"),
    ('{"format": "6"}', "no report format"),
    ('{"format": true}', "no report format"),
    ('{"format": 0}', "no report format"),
    (json.dumps({"format": FORMAT + 1}), "upgrade ptor"),
])
def test_what_is_not_a_report_is_refused_in_one_sentence(text, why):
    with pytest.raises(NotAReport, match=why) as raised:
        report_file.parse(text)
    assert raised.value.exit_code == 2


def test_a_file_that_cannot_be_read_is_a_config_error(tmp_path):
    missing = str(tmp_path / "none.json")
    with pytest.raises(ConfigError, match="cannot read the report"):
        report_file.load(missing)
    garbled = tmp_path / "garbled.json"
    garbled.write_bytes(b"\xff\xfe{")
    with pytest.raises(ConfigError, match="cannot read the report"):
        report_file.load(str(garbled))


def test_an_older_report_renders(tmp_path):
    text = render.render(report_file.parse(format_1_report()))
    assert "verdict" in text


def test_an_older_report_gets_its_moves_of_the_primary_worked_out():
    built = report.build(outcome())
    assert built["servers"]["primary_moves"][0]["workers"] == 1  # the writer's own
    read = report_file.parse(format_1_report())
    assert read["servers"]["primary_moves"] == built["servers"]["primary_moves"]
    garbled = report_file.parse({"format": 6, "verdict": "pass",
                                 "servers": {"identity_changes": "x"}})
    assert garbled["servers"]["primary_moves"] is None
    assert "Primary changes seen by the workers" in render.render(read)
    # format 13 names each move's servers by node; an older report's moves get null
    move = {"from": "a", "to": "b", "first": 1.0, "last": 1.0, "workers": 1}
    twelve = report_file.parse({"format": 12, "verdict": "pass",
                                "servers": {"primary_moves": [move]}})
    assert twelve["servers"]["primary_moves"] == [dict(move, from_node=None, to_node=None)]
