"""A run's folder: made private when ptor creates it; one that is there already keeps its
mode, and the files beside it stay."""

import os
import stat

from ptor_harness.drill.coordinator import make_run_dir


def test_a_new_run_folder_is_private_and_an_existing_one_keeps_its_mode(tmp_path):
    beside = tmp_path / "notes.txt"
    beside.write_text("mine")
    fresh = tmp_path / "reports" / "run-1"
    make_run_dir(str(fresh))
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o700
    existing = tmp_path / "run-2"
    existing.mkdir()
    os.chmod(existing, 0o750)
    make_run_dir(str(existing))
    assert stat.S_IMODE(os.stat(existing).st_mode) == 0o750
    assert beside.read_text() == "mine"
