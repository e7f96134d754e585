"""Real local PostgreSQL HA clusters (labs) for demos and tests.

`load_lab(dir)` returns the lab in a directory, whatever its stack; `STACKS` maps each
stack name to its class (and `up()` builder).
"""

from __future__ import annotations

from .base import Lab
from .pg import LabError
from .state import STACK_NAMES, read_state


def stacks() -> dict:
    from .autofailover import AutoFailoverLab
    from .patroni import PatroniLab
    from .repmgr import RepmgrLab
    from .streaming import StreamingLab

    found = {cls.stack: cls for cls in (StreamingLab, AutoFailoverLab, PatroniLab, RepmgrLab)}
    assert tuple(found) == STACK_NAMES  # the state file's check knows them by name
    return found


def load_lab(lab_dir: str) -> Lab:
    """The lab recorded in `lab_dir`, as an instance of its own stack's class. A path no
    lab can have (workdir.check_path) is refused before anything is read."""
    from .workdir import check_path

    lab_dir = check_path(lab_dir)
    state = read_state(lab_dir)
    return stacks()[state["stack"]](lab_dir, state)


__all__ = ["Lab", "LabError", "load_lab", "read_state", "stacks"]
