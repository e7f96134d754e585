"""Fault specs, the fault schedule, and missing HA packages."""

import shutil

import pytest

from ptor_harness.config import parse_faults
from ptor_harness.drill.faults import (
    FAULT_ENDED,
    FaultRecord,
    FaultSchedule,
    fault_ordinal,
    fault_phase,
    records_from_journal,
)
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
    assert [(n, r.name) for n, r in schedule.newly_ended()] == [(1, "a"), (2, "b")]
    assert schedule.newly_ended() == []


def test_a_runs_faults_come_back_from_its_journal():
    """`ptor reconcile` of a run that never finished: each fault journaled as it began
    and as it ended comes back whole; one whose end was never journaled counts as failed,
    so no verdict rests on it."""
    assert [fault_ordinal(fault_phase(n)) for n in (1, 2, 12)] == [1, 2, 12]
    assert fault_ordinal("fault-x") is None and fault_ordinal("drain") is None
    clean = FaultRecord("failover-command", "patronictl failover", 10.0, 12.5, 0, "ok")
    events = [(9.0, "phase:warmup", {"faults_planned": 3}),
              (10.0, "phase:fault", {"action": "failover-command"}),
              (12.5, FAULT_ENDED, dict(clean.as_dict(), ordinal=1)),
              (20.0, "phase:fault-2", {"action": "kill-primary"}),
              (21.0, "phase:drain", {})]
    first, second = records_from_journal(events)
    assert first == clean and not first.failed
    assert (second.name, second.started_at, second.ended_at) == ("kill-primary", 20.0, None)
    assert second.failed and "did not journal its end" in second.failure()
    # a ledger of a run that journaled no fault (or an older ptor's): none
    assert records_from_journal(events[:1] + events[-1:]) == []


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
