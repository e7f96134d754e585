"""The shipped scenario files parse, and scenarios/README.md documents every key."""

import glob
import os

import pytest

from ptor_harness.config import OPTIONS, parse_scenario

HERE = os.path.dirname(__file__)
SCENARIOS = os.path.join(HERE, "..", "..", "scenarios")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(SCENARIOS, "*.ini"))))
def test_scenario_file_is_valid(path):
    scenario = parse_scenario(["-c", path], {})
    assert scenario.config_file == path
    assert scenario.connection.primary_pgdsn


def test_every_key_is_documented():
    with open(os.path.join(SCENARIOS, "README.md")) as src:
        text = src.read()
    for option in OPTIONS:
        assert f"| `{option.name}` | `{option.env}` |" in text, option.name
