"""Real local PostgreSQL HA clusters (labs) for demos and tests.

`load_lab(dir)` returns the lab in a directory, whatever its stack; `STACKS` maps each
stack name to its class (and `up()` builder).
"""

from __future__ import annotations

import json
import os

from .base import STATE, Lab
from .pg import LabError


def stacks() -> dict:
    from .autofailover import AutoFailoverLab
    from .patroni import PatroniLab
    from .streaming import StreamingLab

    return {cls.stack: cls for cls in (StreamingLab, AutoFailoverLab, PatroniLab)}


def load_lab(lab_dir: str) -> Lab:
    """The lab recorded in `lab_dir`, as an instance of its own stack's class."""
    path = os.path.join(lab_dir, STATE)
    try:
        with open(path) as src:
            state = json.load(src)
    except FileNotFoundError:
        raise LabError(f"no lab in {lab_dir} (no {STATE}); start one with "
                       f"ptor-lab up --dir {lab_dir}") from None
    return stacks()[state["stack"]](lab_dir, state)
