"""Fault specs, the fault schedule, and missing HA packages."""

import shutil

import pytest

from ptor_harness.config import parse_faults
from ptor_harness.drill.faults import FaultRecord, FaultSchedule
from ptor_harness.errors import ConfigError
from ptor_harness.lab import autofailover, patroni
from ptor_harness.lab.actions import split_action
from ptor_harness.lab.pg import LabError


def test_fault_specs_flags_lists_and_defaults():
    assert parse_faults(["switchover:30", "kill-primary"], 5.0) == (
        ("kill-primary", 5.0), ("switchover", 30.0))
    assert parse_faults(["[kill-primary:2, switchover:9.5]"], 1.0) == (
        ("kill-primary", 2.0), ("switchover", 9.5))
    assert parse_faults(None, 1.0) == ()
    # faults with a length: NAME=SECONDS[:AT]
    assert parse_faults(["blip=2.5:3", "cancel-sync-waits:1"], 5.0) == (
        ("cancel-sync-waits", 1.0), ("blip=2.5", 3.0))


def test_fault_lengths():
    assert split_action("blip=2") == ("blip", 2.0)
    assert split_action("cancel-sync-waits") == ("cancel-sync-waits", 3.0)
    assert split_action("kill-primary") == ("kill-primary", None)


@pytest.mark.parametrize("spec, fragment", [
    ("kill-primry", "did you mean 'kill-primary'"),
    ("reboot", "faults: kill-primary"),
    ("switchover:-3", "must not be negative"),
    ("switchover:soon", "must be a number of seconds"),
    ("blip", "needs its length: blip=SECONDS"),
    ("blip=0", "must be above 0"),
    ("blip=long", "must be a number of seconds"),
    ("kill-primary=3", "takes no '=SECONDS'"),
    ("blp=2", "did you mean 'blip'"),
])
def test_bad_fault_specs(spec, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_faults([spec], 1.0)


class Recording:
    def __init__(self, name, log):
        self.name = name
        self.log = log

    def fire(self):
        self.log.append(self.name)
        return FaultRecord(self.name, None, 0.0, 0.0, 0)


def test_schedule_fires_in_time_order_one_after_another():
    log = []
    schedule = FaultSchedule([(0.02, Recording("b", log)), (0.0, Recording("a", log))],
                             origin=0.0)  # both times are long past: fire at once, in order
    assert not schedule.done()
    schedule.start()
    schedule.thread.join(5)
    assert schedule.done() and log == ["a", "b"]
    assert [name for _, _, name in schedule.newly_fired()] == ["a", "b"]
    assert schedule.newly_fired() == []
    assert [r.name for r in schedule.records] == ["a", "b"]


def test_empty_schedule_is_done():
    schedule = FaultSchedule([], origin=0.0)
    schedule.start()
    assert schedule.done() and schedule.last_at is None


def test_missing_packages_name_the_install_command(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(patroni.os.path, "exists", lambda path: False)
    with pytest.raises(LabError, match="apt-get install -y --no-install-recommends "
                                       "postgresql-15-auto-failover pg-auto-failover-cli"):
        autofailover.pg_autoctl()
    with pytest.raises(LabError, match="patroni etcd-server haproxy"):
        patroni.program("haproxy")
