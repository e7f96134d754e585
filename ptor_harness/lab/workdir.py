"""The lab's folder: which folder a lab may take, what the lab made in it, and what
`down --wipe` may remove.

A lab takes a folder it creates, or an empty one; never a folder that holds anything of
anyone else's. The state file records what the lab made: the folders it created on the
way to its own (so a wipe can remove them again, and only if they are empty) and every
entry it put at the top of its folder. A wipe removes those entries, and the lab's folder
itself only if the lab created it and nothing else is left in it: a file someone added is
left where it is, and said so. A folder the lab did not create keeps its mode.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
from typing import Optional

from .pg import LabError, LabUser
from .state import STATE

SAVING = f".{STATE}."  # the prefix of the state file's temporary copies (Lab.save)
# What a lab made by a ptor-lab older than the record can have put at the top of its
# folder: the only names a wipe of such a lab removes (and never the folder itself).
OLDER_ENTRIES = ("data", "sock", "logs", "xdg", "pooler", "haproxy.cfg", STATE)


class LabDirError(LabError):
    """A lab folder a user gave that ptor-lab must not take (exit 2: fix the argument)."""


def _home_folders() -> set[str]:
    homes = {os.path.expanduser("~")}
    for uid in {os.getuid(), os.geteuid()}:
        with contextlib.suppress(KeyError):
            homes.add(pwd.getpwuid(uid).pw_dir)
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user:
        with contextlib.suppress(KeyError):
            homes.add(pwd.getpwnam(sudo_user).pw_dir)
    return {os.path.realpath(h) for h in homes if h}


def check_path(lab_dir: str) -> str:
    """The absolute path of a lab folder a user named, or one LabDirError saying why it
    cannot be one: a path with control characters, the root, a home folder, a symbolic
    link anywhere on the way, or something that is not a folder."""
    if not lab_dir or any(ord(ch) < 32 or ord(ch) == 127 for ch in lab_dir):
        raise LabDirError("the lab folder's path is empty or holds a control character "
                          "(a newline?); give a plain path")
    path = os.path.abspath(lab_dir)
    if path == "/":
        raise LabDirError("the lab folder cannot be / ; give a new folder, for example "
                          "/tmp/ptor-lab")
    if os.path.realpath(path) in _home_folders():
        raise LabDirError(f"{path} is a home folder; give a new folder for the lab, for "
                          "example /tmp/ptor-lab")
    if os.path.realpath(path) != path:
        raise LabDirError(f"{path} is or passes through a symbolic link (to "
                          f"{os.path.realpath(path)}); give the real path of a folder")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise LabDirError(f"{path} exists and is not a folder; give a new or empty folder "
                          "for the lab")
    return path


def take(lab_dir: str, user: LabUser) -> dict:
    """Make `lab_dir` the lab's: create it (and the folders missing on the way), or take
    it as it is if it is empty. Returns the record the state file keeps (`made`)."""
    path = check_path(lab_dir)
    created: list[str] = []
    if os.path.isdir(path):
        if os.path.lexists(os.path.join(path, STATE)):
            raise LabError(f"a lab already exists in {path}; run ptor-lab down --dir "
                           f"{path} --wipe first")
        if os.listdir(path):
            raise LabDirError(f"{path} is not empty and is not a ptor-lab lab; give a new or "
                              "empty folder (ptor-lab never puts its files among others')")
        reachable(user, path)
        check_taken_folder(path, user)
    else:
        missing = path
        while not os.path.lexists(missing):
            created.insert(0, missing)
            missing = os.path.dirname(missing)
        if not os.path.isdir(missing):
            raise LabDirError(f"{missing} is not a folder, so {path} cannot be made")
        reachable(user, created[0])  # before anything is made
        for folder in created:
            try:
                os.mkdir(folder, 0o755)
            except OSError as exc:
                raise LabDirError(f"cannot create {folder}: {exc.strerror}") from None
            os.chmod(folder, 0o755)  # root's (the state file decides what root signals)
    return {"created": created, "entries": [STATE]}


def reachable(user: LabUser, path: str) -> None:
    """The lab user can walk down to `path` (its servers run there), or LabDirError."""
    try:
        user.check_reachable(path)
    except LabError as exc:
        raise LabDirError(str(exc)) from None


def check_taken_folder(path: str, user: LabUser) -> None:
    """An existing folder is taken only as it is: ptor-lab changes no mode or owner of a
    folder it did not create, so one it could not use as it is is refused."""
    info = os.stat(path)
    if info.st_mode & 0o022:
        raise LabDirError(f"{path} can be written by other users (mode "
                          f"{stat.S_IMODE(info.st_mode):04o}); give a folder only its owner "
                          "can write, or a new one")
    if os.geteuid() == 0 and info.st_uid != 0:
        raise LabDirError(f"{path} is owned by uid {info.st_uid}, not root, and root acts on "
                          "the lab's state file in it; give a new folder")
    if user.switching and not info.st_mode & 0o001:
        raise LabDirError(f"the lab user {user.name} cannot enter {path} (mode "
                          f"{stat.S_IMODE(info.st_mode):04o}) and ptor-lab changes no mode "
                          "of a folder it did not create; give a new folder")


def own_entry(state: dict, name: str) -> None:
    """Record that the lab made `name` at the top of its folder (a wipe removes it)."""
    made = state.setdefault("made", {"created": [], "entries": [STATE]})
    if name not in made["entries"]:
        made["entries"].append(name)


def remove_made(lab_dir: str, state: Optional[dict]) -> list[str]:
    """Remove what the lab made in `lab_dir` (see the module's docstring); returns the
    names left there that are not the lab's, sorted."""
    made = (state or {}).get("made")
    if made is None:  # a lab made before the record: its well-known names only
        nodes = (state or {}).get("nodes", {})
        entries = list(OLDER_ENTRIES) + [f"{name}.yml" for name in nodes]
        created: list[str] = []
    else:
        entries, created = list(made.get("entries", [])), list(made.get("created", []))
    for name in entries:
        if not name or "/" in name or name in (".", ".."):
            continue  # never a path out of the lab's folder
        remove_entry(os.path.join(lab_dir, name))
    try:
        for name in os.listdir(lab_dir):
            if name.startswith(SAVING):  # a state file's copy a crash left behind
                remove_entry(os.path.join(lab_dir, name))
        left = sorted(os.listdir(lab_dir))
    except FileNotFoundError:
        return []
    if not left:
        for folder in reversed(created):
            try:
                os.rmdir(folder)  # only while empty: a folder someone filled stays
            except OSError:
                break
    return left


def remove_entry(path: str) -> None:
    """Remove one entry the lab made: a folder whole, a file, or a link (never followed)."""
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
