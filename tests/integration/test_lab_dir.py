"""ptor-lab takes only a folder it creates or an empty one, and a wipe removes only what the
lab made: a user's file beside the lab's, and the folder's mode, are found intact."""

import os
import stat

import pytest

from ptor_harness.lab import cli as lab_cli
from ptor_harness.lab import load_lab, pooler

from .conftest import free_port_base, lab_processes


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def up(directory, *extra) -> int:
    return lab_cli.main(["up", "--dir", str(directory), "--port-base", str(free_port_base()),
                         *extra])


def one_sentence(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_users_folder_that_holds_files_is_refused_untouched(capsys, scratch_dir):
    folder = os.path.join(scratch_dir, "mine")
    os.mkdir(folder, 0o700)
    os.chmod(folder, 0o700)
    with open(os.path.join(folder, "notes.txt"), "w") as out:
        out.write("my notes")
    assert up(folder) == 2
    line = one_sentence(capsys.readouterr().err)
    assert "is not empty and is not a ptor-lab lab" in line
    assert os.listdir(folder) == ["notes.txt"] and mode(folder) == 0o700
    # down --wipe on it finds no lab and removes nothing
    assert lab_cli.main(["down", "--dir", folder, "--wipe"]) == 3
    assert os.listdir(folder) == ["notes.txt"]


def test_an_empty_folder_keeps_its_mode_and_a_file_added_to_it_survives_the_wipe(
        capsys, scratch_dir):
    folder = os.path.join(scratch_dir, "empty")
    os.mkdir(folder)
    os.chmod(folder, 0o711)  # enterable by the lab user, and not the 0755 ptor-lab sets
    assert up(folder) == 0
    assert mode(folder) == 0o711
    lab = load_lab(folder)
    assert set(lab.state["made"]["entries"]) >= {"lab.json", "data", "sock", "logs"}
    assert lab.state["made"]["created"] == []
    with open(os.path.join(folder, "notes.txt"), "w") as out:
        out.write("added while the lab ran")
    capsys.readouterr()
    assert lab_cli.main(["down", "--dir", folder, "--wipe"]) == 0
    out = capsys.readouterr().out
    assert "not the lab's: notes.txt" in out
    assert os.listdir(folder) == ["notes.txt"] and mode(folder) == 0o711
    assert lab_processes(folder) == []


def test_a_folder_the_lab_created_goes_with_it_unless_someone_filled_it(capsys, scratch_dir):
    first = os.path.join(scratch_dir, "a", "b", "lab")
    assert up(first) == 0
    assert load_lab(first).state["made"]["created"] == [
        os.path.join(scratch_dir, "a"), os.path.join(scratch_dir, "a", "b"), first]
    assert lab_cli.main(["down", "--dir", first, "--wipe"]) == 0
    assert "lab stopped and removed" in capsys.readouterr().out
    assert os.listdir(scratch_dir) == []  # every folder it made, and nothing else
    second = os.path.join(scratch_dir, "c", "lab")
    assert up(second) == 0
    with open(os.path.join(scratch_dir, "c", "beside.txt"), "w") as out:
        out.write("beside the lab")
    with open(os.path.join(second, "inside.txt"), "w") as out:
        out.write("inside the lab's folder")
    assert lab_cli.main(["down", "--dir", second, "--wipe"]) == 0
    assert os.listdir(second) == ["inside.txt"]
    assert sorted(os.listdir(os.path.join(scratch_dir, "c"))) == ["beside.txt", "lab"]


@pytest.mark.parametrize("case", ["file", "symlink", "shared", "root", "home", "newline",
                                  "unenterable"])
def test_hostile_lab_folders_are_one_sentence_and_touch_nothing(capsys, scratch_dir, case):
    elsewhere = os.path.join(scratch_dir, "elsewhere")
    os.mkdir(elsewhere)
    target = {
        "file": os.path.join(scratch_dir, "a-file"),
        "symlink": os.path.join(scratch_dir, "link"),
        "shared": os.path.join(scratch_dir, "shared"),
        "root": "/",
        "home": os.path.expanduser("~"),
        "newline": os.path.join(scratch_dir, "two\nlines"),
        "unenterable": os.path.join(scratch_dir, "private"),
    }[case]
    if case == "file":
        with open(target, "w") as out:
            out.write("a user's file")
    elif case == "symlink":
        os.symlink(elsewhere, target)
    elif case == "shared":
        os.mkdir(target)
        os.chmod(target, 0o777)
    elif case == "unenterable":
        os.mkdir(target)
        os.chmod(target, 0o700)
    before = {name: os.lstat(os.path.join(scratch_dir, name)) for name in
              os.listdir(scratch_dir)}
    watched = target if os.path.isdir(target) and not os.path.islink(target) else None
    listing = sorted(os.listdir(watched)) if watched else None
    watched_mode = mode(watched) if watched else None
    for command in (["up"], ["down", "--wipe"], ["status"]):
        code = lab_cli.main([command[0], "--dir", target, *command[1:]])
        err = capsys.readouterr().err
        line = one_sentence(err)
        assert code == (3 if command[0] != "up" and case in ("shared", "unenterable")
                        else 2), (command, line)
    if case in ("file", "symlink", "newline", "root", "home"):
        assert "ptor-lab: error: " in line
    after = {name: os.lstat(os.path.join(scratch_dir, name)) for name in
             os.listdir(scratch_dir)}
    assert after.keys() == before.keys()
    assert all(after[n].st_mode == before[n].st_mode for n in before)
    assert os.listdir(elsewhere) == []
    if watched:
        assert sorted(os.listdir(watched)) == listing and mode(watched) == watched_mode
        assert not os.path.exists(os.path.join(watched, "lab.json"))


def test_the_pooler_and_a_recloned_standby_remove_only_their_own(scratch_dir):
    """The pooler's hook goes with the pooler, a re-cloned standby's data directory with
    the old copy: a user's files beside each stay."""
    folder = os.path.join(scratch_dir, "lab")
    assert up(folder, "--mode", "async") == 0
    lab = load_lab(folder)
    try:
        pooler.add(lab, "session", "repoint")
        beside_hook = os.path.join(pooler.pooler_dir(lab), "mine.txt")
        beside_data = os.path.join(lab.dir, "data", "mine.txt")
        for path in (beside_hook, beside_data):
            with open(path, "w") as out:
                out.write("a user's file")
        pooler.remove(lab)
        assert not os.path.exists(pooler.hook_path(lab)) and os.path.exists(beside_hook)
        lab = load_lab(folder)
        standby = lab.nodes[lab.named("standby")]
        standby.stop()
        lab.clone(standby, lab.nodes[lab.named("primary")])
        assert os.path.exists(beside_data)
    finally:
        lab.down(wipe=False)
    left = load_lab(folder).down(wipe=True)
    assert left == []  # the data and pooler folders are the lab's: they went whole
    assert not os.path.exists(folder)



def test_a_lab_that_could_not_be_built_stays_the_labs_until_wiped(capsys, scratch_dir):
    """Its pooler's port is taken: the lab is stopped, its folder keeps a state file marked
    failed (its logs for a post-mortem), a second `up` is told to wipe it first, and the
    wipe removes every file the lab made."""
    import socket

    folder = os.path.join(scratch_dir, "lab")
    base = free_port_base(4)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", base + 3))  # the pooler's: after the lab's three nodes
    blocker.listen(1)
    try:
        code = lab_cli.main(["up", "--dir", folder, "--port-base", str(base), "--pooler",
                             "pgbouncer"])
    finally:
        blocker.close()
    assert code == 3
    line = one_sentence(capsys.readouterr().err)
    assert "in use" in line and f"ptor-lab down --dir {folder} --wipe removes them" in line
    lab = load_lab(folder)
    assert lab.state["failed"] is True and lab_processes(folder) == []
    assert os.path.exists(os.path.join(folder, "logs"))
    assert lab_cli.main(["up", "--dir", folder, "--port-base", str(free_port_base())]) == 3
    assert "a lab already exists" in capsys.readouterr().err
    assert lab_cli.main(["down", "--dir", folder, "--wipe"]) == 0
    assert not os.path.exists(folder) and os.listdir(scratch_dir) == []
