"""The scenario as a person writes it: option names and INI values.

One home for the text of every option's value, so that the run folder's scenario.ini
(which `ptor -c` reads back) and the scenario tables of report.html and a campaign's page
show the same words, not Python's spelling of lists and booleans.
"""
from __future__ import annotations

import json

from ..config import OPTIONS


def ini_value(value) -> str:
    """An option's value as an INI file holds it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return "; ".join(value)  # node DSNs
    if isinstance(value, (list, tuple)):  # faults: ((action, seconds), ...)
        return ", ".join(f"{a}:{t:g}" for a, t in value)
    return str(value)


def scenario_entries(public: dict) -> list[tuple[str, str]]:
    """(option, value) in the options' order, for every option the scenario sets; the
    secrets are already masked in `public` (Scenario.as_public_dict)."""
    entries = []
    for option in OPTIONS:
        value = public.get(option.dest)
        if value is None or value in ((), []) or option.name == "reset":
            continue
        # background commands stay whole, as a list (config.rules._commands_in)
        entries.append((option.name, json.dumps(list(value))
                        if option.name == "background-load" else ini_value(value)))
    return entries
