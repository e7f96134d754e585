"""A lab's state file (lab.json): read only when it is ptor-lab's own, and trusted.

As root, ptor-lab signals the PIDs this file names, so a file root did not write, or one
not in ptor-lab's exact shape, is refused whole.
"""

from __future__ import annotations

import json
import os
import stat

from .pg import LabError

STATE = "lab.json"
STACK_NAMES = ("streaming", "auto-failover", "patroni", "repmgr")
STATE_BYTES = 1024 * 1024


def check_trusted(lab_dir: str, path: str) -> None:
    """As root, act only on a state file root wrote: a regular file owned by root, in a
    folder owned by root that nobody else can write. The file names the PIDs root will
    signal; anyone who could plant or swap it could make root kill any process."""
    if os.geteuid() != 0:
        return
    for what, where in (("the lab's folder", lab_dir), (STATE, path)):
        info = os.lstat(where)
        if info.st_uid != 0:
            raise LabError(f"refusing {path}: {what} is owned by uid {info.st_uid}, not "
                           "root, and root acts on this file")
        if info.st_mode & 0o022:
            raise LabError(f"refusing {path}: {what} can be written by others, and root "
                           "acts on this file")
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise LabError(f"refusing {path}: not a regular file")


def _valid_state(state) -> bool:
    """The shape ptor-lab writes (base.Lab.save), to the type of every field it reads."""
    def pid_ok(pid) -> bool:
        return pid is None or (type(pid) is int and 0 < pid < 2 ** 31)

    if not isinstance(state, dict) or state.get("stack") not in STACK_NAMES:
        return False
    nodes, daemons = state.get("nodes"), state.get("daemons", {})
    return (isinstance(state.get("bindir"), str) and isinstance(state.get("user"), str)
            and type(state.get("port_base")) is int and isinstance(state.get("mode"), str)
            and isinstance(nodes, dict) and isinstance(daemons, dict)
            and all(isinstance(name, str) and isinstance(info, dict)
                    and type(info.get("port")) is int and 0 < info["port"] < 65536
                    and pid_ok(info.get("pid")) for name, info in nodes.items())
            and all(isinstance(name, str) and isinstance(info, dict)
                    and isinstance(info.get("argv"), list) and info["argv"]
                    and all(isinstance(a, str) for a in info["argv"])
                    and pid_ok(info.get("pid"))
                    and isinstance(info.get("env") or {}, dict)
                    for name, info in daemons.items()))


def read_state(lab_dir: str) -> dict:
    """A lab's state file. One root did not write (as root), or one that is not
    ptor-lab's, is one LabError: nothing in it is acted on."""
    path = os.path.join(lab_dir, STATE)
    try:
        check_trusted(lab_dir, path)
        if os.path.getsize(path) > STATE_BYTES:
            raise LabError(f"{path} is not a ptor-lab state file (too large)")
        with open(path, encoding="utf-8") as src:
            state = json.load(src)
    except FileNotFoundError:
        raise LabError(f"no lab in {lab_dir} (no {STATE}); start one with "
                       f"ptor-lab up --dir {lab_dir}") from None
    except (OSError, ValueError, RecursionError):
        raise LabError(f"{path} is not a ptor-lab state file (unreadable or not JSON)") \
            from None
    if not _valid_state(state):
        raise LabError(f"{path} is not a ptor-lab state file (its fields are not ptor-lab's)")
    return state
