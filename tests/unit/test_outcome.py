"""The outcome's recording API (outcome.py): each piece of news a drill's process sends
lands in one place, once."""

from ptor_harness.config import parse_scenario
from ptor_harness.drill import messages
from ptor_harness.outcome import DrillOutcome


def fresh() -> DrillOutcome:
    return DrillOutcome("run-1", "/tmp/run-1", parse_scenario(
        ["--primary-pgdsn", "host=127.0.0.1"], {}), "sqlite")


def test_each_kind_of_news_lands_in_its_place():
    o = fresh()
    o.watching(["node1", "node2"], "lab")
    totals = messages.RecorderFinished(ops=5, intents=5, identities=1)
    gap = messages.ProbeGap(1.0, 1.1, 3.0)
    schedule = messages.WorkerSchedule(0, 10, 2, (), ())
    assert all(o.heard(news) for news in (
        totals, gap, schedule, messages.ObserverFinished(40, 3),
        messages.BackgroundFinished(["cmd"])))
    assert o.recorder_totals is totals and o.probe_gaps == [gap] and o.schedules == [schedule]
    assert (o.observer.nodes, o.observer.found, o.observer.sent, o.observer.dropped) == (
        ["node1", "node2"], "lab", 40, 3)
    assert o.background == ["cmd"]
    assert not o.heard(messages.WorkerCrashed(0, "x", "")) and o.worker_crashes == []


def test_a_crash_and_an_error_are_told_once():
    o = fresh()
    crash = messages.WorkerCrashed(2, "crashed: boom", "trace")
    assert o.worker_crashed(crash) and not o.worker_crashed(
        messages.WorkerCrashed(2, "exited with code -9", ""))
    assert o.worker_crashes == [crash] and o.errors == ["worker 2 crashed: boom"]
    assert o.error("the recorder process died") and not o.error("the recorder process died")
    assert o.errors.count("the recorder process died") == 1
