"""The campaign's matrix: one scenario per combination of the `--vary` values, and the
order of the rounds, interleaved (round 1 of every cell, then round 2, ...) so that drift in
the cluster or the machine affects every cell alike."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

from ..config import OPTIONS, Scenario, validate
from ..config.options import parse_bool
from ..errors import ConfigError
from ..lab.settings import LAB_SETTINGS

BY_NAME = {o.name: o for o in OPTIONS}


@dataclass(frozen=True)
class Cell:
    """One scenario of the matrix: its label ("fault=switchover"), the values that make it
    differ from the base, and the validated scenario itself."""

    label: str
    changes: tuple[tuple[str, str], ...]
    scenario: Scenario

    @property
    def lab_settings(self) -> dict[str, str]:
        """The varied settings the lab must have for this cell's rounds (pooler, ...)."""
        return {key: value for key, value in self.changes if key in LAB_SETTINGS}


def axes(vary: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """`KEY=V1,V2` items (validated by config.rules) as (key, values)."""
    out = []
    for item in vary:
        key, _, listed = item.partition("=")
        out.append((key, tuple(v for v in listed.split(",") if v)))
    return out


def matrix(base: Scenario, raw: dict) -> list[Cell]:
    """Every combination of the varied values, each validated as a drill's scenario would
    be; a value a drill would refuse is one ConfigError naming the cell."""
    found = axes(base.campaign.vary)
    if not found:
        return [Cell("all", (), base)]
    cells = []
    for combo in itertools.product(*[values for _, values in found]):
        changes = tuple(zip([key for key, _ in found], combo))
        label = ", ".join(f"{key}={value}" for key, value in changes)
        values = copy.deepcopy(raw)
        for key, text in changes:
            if key in LAB_SETTINGS:  # the lab's, set before the cell's rounds
                continue
            opt = BY_NAME[key]
            try:
                values[opt.dest] = [text] if opt.multiple else \
                    parse_bool(text) if opt.flag else opt.type(text)
            except (TypeError, ValueError):
                raise ConfigError(f"vary {key}: '{text}' is not a valid value") from None
        try:
            scenario = validate(values, base.config_file)
        except ConfigError as exc:
            raise ConfigError(f"vary {label}: {exc}") from None
        cells.append(Cell(label, changes, scenario))
    return cells


def schedule(cells: list[Cell], rounds: int) -> list[tuple[int, Cell]]:
    """(round number, cell) in the order they run: interleaved."""
    return [(number, cell) for number in range(1, rounds + 1) for cell in cells]
