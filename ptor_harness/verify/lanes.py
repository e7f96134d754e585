"""The nodes over time, for the charts (pure): each node's role lanes and each standby's
replay lag in bytes, from the node observer's samples. The anatomy (anatomy.py) reads the
same samples for events; this is the picture of them."""

from __future__ import annotations

from collections.abc import Sequence

from ..ops import NodeSample, ReplicationRow


def role_lanes(samples: Sequence[NodeSample]) -> dict[str, list[dict]]:
    """Each node's (and the endpoint's) states over time, runs of equal samples merged:
    primary, standby or unreachable, with the timeline (the charts' lanes)."""
    lanes: dict[str, list[dict]] = {}
    for sample in sorted(samples, key=lambda s: s.at):
        state = ("unreachable" if not sample.reachable else "standby" if sample.in_recovery
                 else "primary")
        lane = lanes.setdefault(sample.node, [])
        if lane and lane[-1]["state"] == state and lane[-1]["timeline"] == sample.timeline:
            lane[-1]["to"] = sample.at
        else:
            lane.append({"state": state, "timeline": sample.timeline, "from": sample.at,
                         "to": sample.at})
    return lanes


LAG_POINTS = 2000  # per standby, at most, in the report


def lag_series(samples: Sequence[NodeSample],
               replication: Sequence[ReplicationRow]) -> dict[str, list[list[float]]]:
    """Each standby's replay lag in bytes over time, as its primary saw it (the primary's
    WAL position minus the standby's replayed position, at each sample): the lag curve."""
    wal = {(s.node, s.at): s.wal_lsn for s in samples if s.wal_lsn is not None}
    series: dict[str, list[list[float]]] = {}
    for row in sorted(replication, key=lambda r: r.at):
        position = wal.get((row.node, row.at))
        if position is None or row.replay_lsn is None:
            continue
        series.setdefault(row.application_name or "standby", []).append(
            [row.at, max(0, position - row.replay_lsn)])
    for name, points in series.items():
        stride = -(-len(points) // LAG_POINTS)
        series[name] = points[::stride]
    return series
