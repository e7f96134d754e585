"""The built-in fault actions: what `--fault` and `ptor-lab fault` may ask of a lab.

The lab owns these names (each stack implements the ones it can; hang-primary,
split-brain, kill-standby-then-primary and restart-cluster: the streaming lab only); the
scenario's validation and the drill's fault trigger read them from here, so nothing in the
lab imports the drill. Some take a number of seconds after `=`: `blip=2` freezes the primary
for 2 s, `cancel-sync-waits=3` cancels waiting commits for 3 s.
"""

from __future__ import annotations

from typing import Optional

FAULT_ACTIONS = ("kill-primary", "stop-primary", "switchover", "kill-manager", "hang-primary",
                 "split-brain", "blip", "stop-sync-standby", "cancel-sync-waits",
                 "kill-standby-then-primary", "restart-cluster")
# action -> (whether its seconds are required, the default when optional)
SECONDS = {"blip": (True, None), "cancel-sync-waits": (False, 3.0)}


def split_action(text: str) -> tuple[str, Optional[float]]:
    """`NAME` or `NAME=SECONDS` into (name, seconds); ValueError with one sentence for an
    unknown name or a number where none belongs (or none where one must be)."""
    name, has_seconds, value = text.strip().partition("=")
    name = name.strip()
    if name not in FAULT_ACTIONS:
        raise ValueError(f"unknown fault '{name}'")
    if name not in SECONDS:
        if has_seconds:
            raise ValueError(f"fault '{name}' takes no '=SECONDS'")
        return name, None
    required, default = SECONDS[name]
    if not has_seconds:
        if required:
            raise ValueError(f"fault '{name}' needs its length: {name}=SECONDS")
        return name, default
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"fault '{text.strip()}': the length after '=' must be a number "
                         "of seconds") from None
    if not 0 < seconds <= 3600:
        raise ValueError(f"fault '{text.strip()}': the length must be above 0 and at most "
                         "3600 seconds")
    return name, seconds
