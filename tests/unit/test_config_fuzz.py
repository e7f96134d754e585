"""Property-based: whatever a user puts in flags, env vars or a scenario file, ptor either
builds a valid Scenario or raises ConfigError with one sentence (exit 2): never a traceback,
never a password in the message."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptor_harness import cli
from ptor_harness.config import OPTIONS, Scenario, parse_scenario
from ptor_harness.errors import ConfigError

SECRET = "s3cr3t-pw"
names = st.sampled_from([o.name for o in OPTIONS] + ["config", "bogus-key", "init"])
text = st.text(alphabet=string.printable, max_size=20)
values = st.one_of(text, st.integers(-10**6, 10**6).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(str),
                   st.sampled_from(["true", "false", "", "0", "-1", "1e309", "nan",
                                    "kill-primary:2", "host=x password=" + SECRET]))


def check(argv, env):
    try:
        scenario = parse_scenario(argv, env)
    except SystemExit as exc:  # only a value that is itself a request for the version or help
        assert exc.code == 0 and {"--version", "--help", "-h"} & set(argv), argv
        return
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message.strip() and "Traceback" not in message
        assert SECRET not in message
        return
    assert isinstance(scenario, Scenario)
    assert scenario.load.parallel_workers >= 1
    load = scenario.load
    assert load.insert_percent + load.update_percent + load.delete_percent == 100


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.tuples(names, values), max_size=6))
def test_any_flags(pairs):
    argv = ["--primary-pgdsn", f"host=127.0.0.1 password={SECRET}"]
    for name, value in pairs:
        argv += [f"--{name}", value]
    check(argv, {})


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from([o.env for o in OPTIONS]), values, max_size=5))
def test_any_env(env):
    check([], dict(env, PRIMARY_PGDSN=env.get("PRIMARY_PGDSN", "host=127.0.0.1")))


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(names, values), max_size=6), st.booleans())
def test_any_scenario_file(tmp_path, pairs, section):
    lines = ["[ptor]"] if section else []
    lines += [f"{name} = {value}".replace("\n", " ").replace("\r", " ")
              for name, value in pairs]
    path = tmp_path / "fuzz.ini"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    check(["-c", str(path), "--primary-pgdsn", "host=127.0.0.1"], {})


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.tuples(names, values), max_size=4))
def test_the_cli_exits_2_with_one_line(pairs):
    argv = ["--primary-pgdsn", "host=127.0.0.1 port=1", "--bogus"]
    for name, value in pairs:
        argv += [f"--{name}", value]
    assert cli.main(argv) == 2
