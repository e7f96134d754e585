"""scenario.ini re-runs exactly: what a run writes, `ptor -c` reads back as the same
Scenario, whatever its values hold; and hand-written files are read as written."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptor_harness.config import WEEK, parse_scenario
from ptor_harness.errors import ConfigError
from ptor_harness.outputs.exports import scenario_ini

# one-line text with the characters INI parsers like to eat: ; # quotes % = and unicode
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")) |
               st.sampled_from(list(";#'\"%=[] ")), min_size=1, max_size=40).map(
    lambda text: text.strip()).filter(bool)
SECONDS = st.floats(0, WEEK, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def scenarios(draw):
    args = ["--primary-pgdsn", "host=127.0.0.1 port=5432 dbname=app user=ptor",
            "--parallel-workers", str(draw(st.integers(1, 512))),
            "--warmup-duration", repr(draw(SECONDS)), "--duration", repr(draw(SECONDS)),
            "--failover-command", draw(TEXT), "--failover-after", repr(draw(SECONDS)),
            "--failover-timeout", repr(draw(SECONDS.filter(lambda x: x > 0))),
            "--expect", draw(st.sampled_from(["failover", "no-failover", "any"])),
            "--schema", draw(st.from_regex(r"[a-oq-z_][a-z0-9_]{0,10}", fullmatch=True)),
            "--report-dir", draw(TEXT), "--payload-bytes", str(draw(st.integers(16, 4096))),
            "--statement-timeout", repr(draw(st.sampled_from([0.0, 0.5, 10.0]))),
            "--max-lost-acknowledged", str(draw(st.integers(0, 10 ** 6)))]
    for flag in ("--init", "--full-data-validation", "--async-repo-mode", "--quiet"):
        if draw(st.booleans()):
            args.append(flag)
    if draw(st.booleans()):
        args += ["--max-write-rto", repr(draw(SECONDS))]
    if draw(st.booleans()):
        args += ["--seed", str(draw(st.integers(0, 2 ** 31)))]
    if draw(st.booleans()):
        args += ["--repo-pgdsn", "postgresql://ptor@127.0.0.1:5433/ledger?sslmode=disable"]
    for _ in range(draw(st.integers(0, 2))):
        args += ["--background-load", draw(TEXT)]
    if draw(st.booleans()):
        args += ["--lab-dir", draw(TEXT), "--fault", "kill-primary:3, switchover:30.5"]
    return args


@settings(max_examples=300, derandomize=True, deadline=None)
@given(argv=scenarios())
def test_scenario_ini_reproduces_the_scenario(tmp_path_factory, argv):
    try:
        original = parse_scenario(argv, {})
    except ConfigError:  # the generator may draw a value ptor refuses; not this test's
        return
    path = tmp_path_factory.mktemp("ini") / "scenario.ini"
    path.write_text(scenario_ini(original.as_public_dict(), "run-1"), encoding="utf-8")
    again = parse_scenario(["-c", str(path)], {})
    assert dataclasses.replace(again, config_file=None) == \
        dataclasses.replace(original, config_file=None)


def test_a_hand_written_file_keeps_hashes_and_semicolons_in_values(tmp_path):
    path = tmp_path / "s.ini"
    path.write_text("\ufeff[ptor]\n# a comment line\n; another\n"
                    "primary-pgdsn = host=127.0.0.1 dbname=x\n"
                    "failover-command = ssh pg1 'kill -9 $(pgrep postgres) ; echo #done'\n",
                    encoding="utf-8")
    s = parse_scenario(["-c", str(path)], {})
    assert s.faults.failover_command == "ssh pg1 'kill -9 $(pgrep postgres) ; echo #done'"


@pytest.mark.parametrize("text, fragment", [
    ("primary-pgdsn = host=x\nreset = false\nreset = true\n", "key 'reset' is given twice"),
    ("primary-pgdsn = host=x\njust words\n", "line 2 is not a key = value line"),
])
def test_a_broken_file_is_one_sentence(tmp_path, text, fragment):
    path = tmp_path / "s.ini"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        parse_scenario(["-c", str(path)], {})


@pytest.mark.parametrize("argv, fragment", [
    (["--failover-command", "kill\nreset = true"], "failover-command must be one line"),
    (["--rese"], "unknown option --rese"),
    (["--rto-conn-timeout", "1e300"], "rto-conn-timeout"),
    (["--failover-after", "1e300"], "failover-after"),
    (["--statement-timeout", "0.0001"], "at least 0.001 s"),
    (["--schema", "pg_catalog"], "is a system schema"),
    (["--schema", "information_schema"], "is a system schema"),
    (["--schema", "ptor\n"], "plain lower-case identifier"),
    (["--expect", "sometimes"], "expect must be one of"),
])
def test_values_ptor_cannot_keep_or_bound_are_refused(argv, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_scenario(["--primary-pgdsn", "host=x", *argv], {})


def test_error_messages_are_capped():
    with pytest.raises(ConfigError) as err:
        parse_scenario(["--primary-pgdsn", "host=x", "--schema", "x" * 5_000_000], {})
    assert len(str(err.value)) < 600
