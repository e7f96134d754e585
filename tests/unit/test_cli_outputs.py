"""ptor's own output never ends in a traceback: a closed pipe, a full disk; a password in a
flag is masked in the process title whatever form its DSN takes."""

import os
import subprocess
import sys

import pytest

from ptor_harness.cli import masked_argv
from ptor_harness.redact import MASK


def history(tmp_path, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "ptor_harness.cli", "history",
                             "--report-dir", str(tmp_path)], stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, **kwargs)


def test_a_closed_pipe_ends_ptor_quietly(tmp_path):
    for i in range(30):  # enough output to fill the pipe
        run = tmp_path / f"20261101T0000{i:02d}Z-abcdef"
        run.mkdir()
        (run / "ptor.log").write_text("x")
    reader, writer = os.pipe()
    os.close(reader)  # nobody reads: `ptor history | head -0`
    proc = history(tmp_path, stdout=writer)
    os.close(writer)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err and err == ""


def test_a_full_disk_is_one_sentence_exit_3(tmp_path):
    with open("/dev/full", "w") as full:
        proc = history(tmp_path, stdout=full)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert err.strip().splitlines() == ["ptor: error: cannot write to standard output: No space "
                                        "left on device"]


@pytest.mark.parametrize("argv, hidden", [
    (["--primary-pgdsn", "host=x password=Head TailSecret"], "TailSecret"),
    (["--primary-pgdsn=postgresql://u:p@ss/w0rd@h/db"], "ss/w0rd"),
    (["--repo-pgdsn", "host=x password='two words'"], "two words"),
    (["--failover-command", "PGPASSWORD=s3cret psql -c 'select 1'"], "s3cret"),
])
def test_the_process_title_keeps_no_password(argv, hidden):
    masked = " ".join(masked_argv(argv))
    assert hidden not in masked and MASK in masked
    assert masked_argv(["--schema", "ptor", "--report-dir", "ptor-runs"]) == \
        ["--schema", "ptor", "--report-dir", "ptor-runs"]
