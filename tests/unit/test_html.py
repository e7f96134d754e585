"""report.html (outputs/html.py): one self-contained page, every text escaped, no secret,
and `ptor report RUN_DIR --html` for an earlier run."""

import json
import os

from ptor_harness import cli
from ptor_harness.outputs import exports, html, report

from .test_report import outcome

PNG = bytes.fromhex("89504e470d0a1a0a") + b"picture"


def page(**changes) -> str:
    return html.report_html(report.build(outcome(**changes)), PNG)


def test_the_page_holds_the_account_the_checks_and_the_picture():
    r = report.build(outcome(rows=[(1, 1)]))
    text = html.report_html(r, PNG)
    assert "<span class='verdict fail'>FAIL</span>" in text
    assert all(html.esc(sentence) in text for sentence in r["account"])
    assert all(html.esc(c["detail"]) in text for c in r["checks"])
    assert "data:image/png;base64," in text and "<h2>Loss</h2>" in text
    assert f"content=\"{html.CSP}\"" in text


def test_the_loss_reads_in_words_with_the_causes_there_were():
    r = report.build(outcome(rows=[(1, 1)]))
    r["rpo"]["lost_acknowledged_ops"] = 20754
    r["rpo"]["lost_by_cause"] = {"sync_wait_cancelled": 0, "asynchronous_lag": 20754}
    r["rpo"]["examples"] = [{"worker": 0, "key": 36, "seq": 8071, "kind": "delete",
                             "found_by": "final_state", "cause": "asynchronous_lag",
                             "committed_at": 4.25}]
    text = html.loss(r)
    assert "<td>delete</td><td>+4.250</td><td>final state</td>" in text  # as the terminal
    assert "<td>20,754</td>" in text and "by cause: asynchronous lag" in text
    assert "sync wait cancelled" not in text  # a cause nothing was lost to is not listed
    assert "<td>final state</td>" in text


def test_nothing_is_fetched_and_nothing_is_secret():
    text = page()
    assert "http:" not in text and "https:" not in text and "src='data:" in text
    assert "zz9" not in text  # the DSN's and the fault command's password
    assert " src=" not in text.replace(" src='data:", "")


def test_every_text_is_escaped():
    r = report.build(outcome())
    r["warnings"] = ["<script>alert(1)</script>"]
    text = html.report_html(r)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_scenario_reads_as_its_ini_file_does():
    r = report.build(outcome())
    r["scenario"].update(fault=[["kill-primary", 3.0], ["restart-primary", 20.5]],
                         async_repo_mode=False, node_dsn=[], full_data_validation=True)
    text = html.scenario_section(json.loads(json.dumps(r["scenario"])))  # as report.json has it
    ini = exports.scenario_ini(r["scenario"], r["run_id"])
    assert "<td>fault</td><td>kill-primary:3, restart-primary:20.5</td>" in text
    assert "fault = kill-primary:3, restart-primary:20.5" in ini
    assert "<td>async-repo-mode</td><td>false</td>" in text
    assert "<td>full-data-validation</td><td>true</td>" in text
    assert "node-dsn" not in text and "node-dsn" not in ini  # unset, as the file leaves it
    assert "False" not in text and "[[" not in text


def test_the_cdc_section_shows_what_the_terminal_shows():
    from ptor_harness.outputs import render

    c = {"slot": "s1", "plugin": "pgoutput", "slot_on_new_primary": "present",
         "received": 23633, "received_before_fault": 12895, "received_after_fault": 10738,
         "missed": 0, "phantom": 0, "duplicates": 621, "caught_up": True,
         "outage": {"seconds": 5.57}, "lag_p50_seconds": -0.00004, "lag_p99_seconds": 0.61}
    text = html.cdc({"cdc": c})
    assert "<h2>Change data capture (slot s1, pgoutput)</h2>" in text
    for name, value in render.cdc_rows(c):
        assert f"<td>{html.esc(name)}</td><td>{html.esc(value)}</td>" in text
    assert "<td>CDC outage</td><td>5.570 s</td>" in text and "23,633" in text


def test_the_run_folder_gets_it_and_ptor_report_makes_it_again(tmp_path, capsys):
    r = report.build(outcome())
    run_dir = str(tmp_path)
    exports.write_json(r, os.path.join(run_dir, "report.json"))
    exports.write_run_files(r, run_dir)
    with open(os.path.join(run_dir, "report.html")) as src:
        made = src.read()
    assert "data:image/png;base64," in made  # timeline.png, drawn and put inside
    os.remove(os.path.join(run_dir, "report.html"))
    assert cli.main(["report", run_dir, "--html"]) == 0
    assert capsys.readouterr().out.strip() == os.path.join(run_dir, "report.html")
    assert os.path.exists(os.path.join(run_dir, "report.html"))
    assert cli.main(["report", run_dir]) == 0
    assert "What happened" in capsys.readouterr().out


def test_an_earlier_format_is_read_and_a_wrong_folder_is_one_sentence(tmp_path, capsys):
    old = {"format": 1, "run_id": "r1", "verdict": "pass", "verdict_reasons": [],
           "warnings": [], "errors": [], "phases": {"warmup": 0.0}, "timeline": [],
           "rto": {"write_seconds": 1.0, "recovered": True, "worker_min_seconds": None,
                   "worker_median_seconds": None, "worker_max_seconds": None,
                   "detection_seconds": None, "injection_to_first_ok_seconds": None,
                   "outage_windows": 1},
           "rpo": {"lost_acknowledged_ops": 0, "window_seconds": 0.0},
           "ops": {"ok": 5, "failed": 0, "indeterminate": 0},
           "indeterminate": {"applied": 0, "not_applied": 0}, "ledger": "sqlite",
           "latency": {"op_ok_p50_seconds": None, "op_ok_p99_seconds": None, "check": None},
           "validation": {"completed": True, "error": None}, "faults": [], "windows": [],
           "workers": [], "servers": {"primary_before": None, "primary_after": None,
                                      "identity_changes": []},
           "anomalies": {}, "scenario": {}}
    (tmp_path / "report.json").write_text(json.dumps(old))
    assert cli.main(["report", str(tmp_path), "--html"]) == 0
    assert "ptor drill r1" in (tmp_path / "report.html").read_text()
    capsys.readouterr()
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no report.json" in err and "Traceback" not in err


def test_the_page_holds_the_evidence_tables_the_terminal_shows():
    """A ticket's reader has only the page: the fault and its exit, the outage windows, the
    validation's every count (zeros are claims) and each worker's outcomes are on it, row
    for row as the terminal has them."""
    from ptor_harness.outputs import render

    r = report.build(outcome(rows=[(1, 1)]))
    r["background"] = {"commands": [{"command": "pgbench -c 2", "starts": 2,
                                     "exit_codes": [2, -15], "tps_before_fault": 590.5,
                                     "tps_after_fault": 664.2, "gave_up": False,
                                     "tps": [[1, 590, 0], [3, 664, 0]]}],
                       "wal": {"ptor_share": None, "why": "no WAL samples: the node "
                               "observer is off"}}
    text = html.report_html(r)
    rel = render.from_warmup(r)
    for title, rows in (("Faults", render.faults_rows(r, rel)),
                        ("Outage windows", render.windows_rows(r, rel)),
                        ("Validation", render.validation_rows(r)),
                        ("Workers", render.workers_rows(r)),
                        ("Background load", render.background_rows(r["background"]))):
        assert f"<h2>{title}" in text, title
        assert rows, title
        for row in rows:
            assert "".join(f"<td>{html.esc(cell)}</td>" for cell in row) in text, (title, row)
    assert "<td>failover-command</td><td>+1.500</td>" in text
    assert "<td>phantom rows</td><td>0</td>" in text
    assert "<td>2, SIGTERM</td>" in text  # a stopped run reads as its signal, not -15
    assert "unknown: no WAL samples: the node observer is off" in text
    terminal = render.render(r)
    assert "2, SIGTERM" in terminal and "phantom rows" in terminal


def test_a_later_faults_outage_has_its_anatomy_on_the_page_and_the_terminal():
    """A failback's outage, beside the failover's: its title, events and parts, on the page
    as in the terminal."""
    from ptor_harness.outputs import render

    r = report.build(outcome(rows=[(1, 1)]))
    t0 = r["phases"]["warmup"]
    event = {"name": "standby promoted", "at": t0 + 6.189, "after": t0 + 6.089,
             "happened_by": t0 + 6.135, "source": "observer: node1",
             "detail": "node1 now primary, timeline 3 (was 2)", "seconds_after_fault": 0.187}
    r["nodes"] = {"observer": "on", "nodes": {}}
    r["anatomy"] = dict(r["anatomy"] or {}, events=[dict(event, name="fault injected",
                                                         happened_by=None)],
                        later_outages=[{"fault": "switchover", "fault_at": t0 + 6.002,
                                        "events": [event], "detection_seconds": 0.013,
                                        "promotion_seconds": 0.12, "routing_seconds": 0.0}])
    text, terminal = html.report_html(r), render.render(r)
    title = "Failover anatomy of the later fault switchover at +6.002"
    assert html.esc(title) in text and title in terminal
    assert "<td>by +0.133 s</td>" in text and "by +6.135" in terminal
    assert html.esc("seen in the sample at +0.187 s") in text
    assert "seen in the sample at +6.189" in terminal
    said = "write outage: detection 0.013 s, promotion 0.120 s, routing 0.000 s"
    assert said in text and said in terminal
