"""What an unfenced pooler's kill-primary drill must show on any stack: pgbouncer left on
the demoted node, which rejoined as a standby, so every session lands on a standby."""


def check_stuck_on_the_demoted_node(run, lab, old, new) -> dict:
    """The drill fails (writes never came back), reports the stale routing with its
    length, stops at its duration without hanging, and still settles every in-doubt op and
    the loss count from the new primary the node observer found."""
    from ptor_harness.lab import pooler

    r = run.report
    assert (run.code, r["verdict"]) == (1, "fail"), run
    # the endpoint's fault, not the cluster's: a standby was promoted
    assert f"writes did not come back through the primary DSN, though {new.name} was " \
        "promoted while the load ran: after the fault" in " ".join(r["verdict_reasons"]), \
        r["verdict_reasons"]
    assert r["rto"]["recovered"] is False
    stale = r["anatomy"]["stale_routing"]
    assert stale["standby_sessions"] > 0 and stale["seconds"] > 3, stale
    assert pooler.target(lab) == old.port  # left on the demoted node
    assert old.query("SELECT pg_is_in_recovery()")[0][0] is True
    v = r["validation"]
    assert v["completed"] is True and v["reconciled_on"] == new.name, v
    assert r["servers"]["primary_after"]["port"] == new.port
    assert r["rpo"]["lost_acknowledged_ops"] == 0  # synchronous: nothing lost
    undecided = r["ops"]["indeterminate"] - r["indeterminate"]["applied"] - \
        r["indeterminate"]["not_applied"] - r["indeterminate"]["superseded"]
    assert undecided == 0, r["indeterminate"]
    phases = r["phases"]  # no hang: the workers left within seconds of the duration
    assert phases["reconcile"] - phases["drain"] < 5, phases
    assert r["stop_reason"] == "duration reached"
    return r
