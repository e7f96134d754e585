"""Scenario parsing: precedence, every bad input, and what the user sees for it."""

import pytest

from ptor_harness import cli
from ptor_harness.config import parse_scenario
from ptor_harness.errors import ConfigError

DSN = "host=127.0.0.1 port=1 dbname=postgres"


def write(tmp_path, text, name="scenario.ini"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    ini = write(tmp_path, f"[ptor]\nprimary-pgdsn = {DSN}\nparallel-workers = 3\n"
                          "warmup-duration = 7\nseed = 1\n")
    env = {"PTOR_PARALLEL_WORKERS": "5", "PTOR_SEED": "2"}
    s = parse_scenario(["-c", ini, "--seed", "3"], env)
    assert s.load.seed == 3  # flag beats env and file
    assert s.load.parallel_workers == 5  # env beats file
    assert s.load.warmup_duration == 7.0  # file beats default
    assert s.load.duration == 60.0  # default
    assert s.config_file == ini


def test_original_env_var_names_work():
    s = parse_scenario([], {"PRIMARY_PGDSN": DSN, "REPO_PGDSN": DSN + " user=x"})
    assert s.connection.primary_pgdsn == DSN
    assert s.connection.repo_pgdsn == DSN + " user=x"


def test_config_file_from_env(tmp_path):
    ini = write(tmp_path, f"primary-pgdsn = {DSN}\nparallel-workers = 2\n")
    assert parse_scenario([], {"PTOR_CONFIG": ini}).load.parallel_workers == 2


@pytest.mark.parametrize("argv, value", [
    (["--full-data-validation"], True),
    (["--full-data-validation=false"], False),
    (["--full-data-validation", "yes"], True),
    ([], False),
])
def test_boolean_flags_accept_original_forms(argv, value):
    s = parse_scenario(["--primary-pgdsn", DSN] + argv, {})
    assert s.preparation.full_data_validation is value


def test_boolean_in_file_and_env(tmp_path):
    ini = write(tmp_path, f"primary-pgdsn = {DSN}\nasync-repo-mode = true\n")
    assert parse_scenario(["-c", ini], {}).load.async_repo_mode is True
    assert parse_scenario(["-c", ini], {"PTOR_ASYNC_REPO_MODE": "false"}).load.async_repo_mode \
        is False


def test_fractional_rto_conn_timeout_in_seconds():
    assert parse_scenario(["--primary-pgdsn", DSN, "--rto-conn-timeout", "0.25"],
                          {}).connection.rto_conn_timeout == 0.25


@pytest.mark.parametrize("argv, fragment", [
    (["--insert-percent", "60"], "add up to 100"),
    (["--insert-percent", "120", "--update-percent", "-10", "--delete-percent", "-10"],
     "must not be negative"),
    (["--parallel-workers", "0"], "parallel-workers must be between 1"),
    (["--duration", "-1"], "duration must not be negative"),
    (["--warmup-duration", "-0.5"], "warmup-duration must not be negative"),
    (["--rto-conn-timeout", "0"], "rto-conn-timeout must be above 0"),
    (["--duration", "soon"], "--duration"),
    (["--paralel-workers", "3"], "did you mean 'parallel-workers'"),
    (["--schema", "Robert'); drop"], "schema must be a plain"),
    (["--ops-per-worker", "-5"], "ops-per-worker must not be negative"),
    (["--ops-per-transaction", "0"], "ops-per-transaction must be between 1 and 1000"),
    (["--ops-per-transaction", "1001"], "ops-per-transaction must be between 1 and 1000"),
    (["--rate", "-1"], "rate must be between 0"),
    (["--payload-bytes", str(1024 * 1024 + 1)], "payload-bytes must be between 16"),
])
def test_bad_values_are_config_errors(argv, fragment):
    with pytest.raises(ConfigError) as err:
        parse_scenario(["--primary-pgdsn", DSN] + argv, {})
    assert fragment in str(err.value)
    assert err.value.exit_code == 2


def test_a_fault_due_after_the_deadline_is_refused_before_the_run():
    """A fault the deadline would cut off leaves a drill that can only end UNKNOWN after
    the whole deadline; a cron job's owner learns it at once instead."""
    base = ["--primary-pgdsn", DSN, "--warmup-duration", "2", "--lab-dir", "/tmp/lab"]
    with pytest.raises(ConfigError) as err:
        parse_scenario(base + ["--fault", "kill-primary:1,switchover:5",
                               "--max-run-seconds", "7"], {})
    assert str(err.value) == ("max-run-seconds 7 ends the run before the fault switchover is "
                              "due at 7 s (the 2 s warmup, then 5 s): raise max-run-seconds "
                              "or inject the fault sooner")
    with pytest.raises(ConfigError, match="before the failover command is due at 62 s"):
        parse_scenario(["--primary-pgdsn", DSN, "--warmup-duration", "2", "--failover-command",
                        "true", "--failover-after", "60", "--max-run-seconds", "30"], {})
    fits = parse_scenario(base + ["--fault", "kill-primary:1,switchover:5",
                                  "--max-run-seconds", "7.5"], {})
    assert fits.faults.last_planned() == ("the fault switchover", 5.0)
    assert parse_scenario(base + ["--max-run-seconds", "1"], {}).faults.last_planned() is None


def test_missing_primary():
    with pytest.raises(ConfigError, match="no primary given"):
        parse_scenario([], {})


def test_unknown_key_in_file_names_key_and_suggests(tmp_path):
    ini = write(tmp_path, f"primary-pgdsn = {DSN}\nwarmup_duraton = 3\n")
    with pytest.raises(ConfigError) as err:
        parse_scenario(["-c", ini], {})
    assert "warmup_duraton" in str(err.value)
    assert "did you mean 'warmup-duration'" in str(err.value)


def test_unreadable_scenario_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read scenario file"):
        parse_scenario(["-c", str(tmp_path / "absent.ini")], {})


def test_unparsable_dsn_never_shows_password():
    with pytest.raises(ConfigError) as err:
        parse_scenario(["--primary-pgdsn", "host=x password=hunter2 port"], {})
    assert "not a valid libpq connection string" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_public_dict_masks_passwords():
    s = parse_scenario(["--primary-pgdsn", "host=x password=hunter2",
                        "--repo-pgdsn", "postgresql://u:s3cret@h/db"], {})
    public = str(s.as_public_dict())
    assert "hunter2" not in public and "s3cret" not in public
    assert s.secrets == ("hunter2", "s3cret")


@pytest.mark.parametrize("argv", [
    ["--primary-pgdsn", DSN, "--delete-percent", "90"],
    ["--primary-pgdsn", "host=x password=hunter2 port"],
    ["--primary-pgdsn", DSN, "--nonsense"],
    ["-c", "/nonexistent/ptor.ini"],
])
def test_cli_prints_one_sentence_and_exits_2(argv, capsys, monkeypatch):
    for var in ("PRIMARY_PGDSN", "REPO_PGDSN", "PTOR_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ptor: error: ")
    assert "Traceback" not in captured.err and "hunter2" not in captured.err
    assert captured.out == ""


def test_a_later_check_knows_which_options_were_given_again(tmp_path):
    """`ptor reconcile` judges by the run's own thresholds except those given again, from
    any of the three sources; an option left at its default is not given."""
    from ptor_harness.config.parse import parse_reconcile

    ini = write(tmp_path, f"primary-pgdsn = {DSN}\nmax-write-rto = 5\n")
    run_id, scenario, given = parse_reconcile(
        ["--run", "20261125T210627Z-90a45e", "-c", ini, "--brownout-threshold", "0.5"],
        {"PTOR_EXPECT": "any"})
    assert run_id == "20261125T210627Z-90a45e"
    assert {"max_write_rto", "brownout_threshold", "expect", "primary_pgdsn"} <= given
    assert scenario.thresholds.expect == "any" and scenario.thresholds.max_write_rto == 5
    assert "max_lost_acknowledged" not in given and "max_detection_time" not in given
