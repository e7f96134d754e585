"""A drain that waits as long as the recorder lives says what it waits for, every 30 s of
its own clock: never silent, never a line per poll."""

import logging

from ptor_harness.drill import crew


def test_a_long_drain_wait_is_told_every_thirty_seconds(monkeypatch, caplog):
    clock = [1000.0]
    monkeypatch.setattr(crew.time, "monotonic", lambda: clock[0])
    waiting = crew.DrainWait("worker 2 to hand over its records", lambda: "7 queued")
    with caplog.at_level(logging.WARNING, logger="ptor"):
        for step in range(1, 601):  # 60 s of polls every 0.1 s
            clock[0] = 1000.0 + step / 10
            waiting.tick()
    told = [r.getMessage() for r in caplog.records]
    assert told == ["the drain has waited 30 s for worker 2 to hand over its records "
                    "(7 queued)",
                    "the drain has waited 60 s for worker 2 to hand over its records "
                    "(7 queued)"]
