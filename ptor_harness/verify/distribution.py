"""Distributions, in one place: the percentile of a list of values (a campaign's rounds,
the CDC consumer's lags, the latency check's samples), and a fixed-memory histogram for
what is too many to keep (every op's latency, the schedule's lag), which workers fill and
pack into one message each.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Optional

# Latency histogram: 16 buckets per factor of two, from 10 microseconds to ~80 seconds.
_EDGES = [1e-5 * 2 ** (i / 16) for i in range(16 * 23 + 1)]


class LatencyHistogram:
    """Fixed-memory latency distribution; percentiles within ~4.4% of the true value."""

    def __init__(self) -> None:
        self.counts = [0] * (len(_EDGES) + 1)
        self.n = 0
        self.min = math.inf
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(_EDGES, seconds)] += 1
        self.n += 1
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's samples to this one."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]
        self.n += other.n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def packed(self) -> tuple:
        """The histogram in few bytes (its non-empty buckets), to travel between processes
        in one message."""
        return (tuple((i, c) for i, c in enumerate(self.counts) if c), self.n,
                self.min, self.max)

    @classmethod
    def unpacked(cls, packed: tuple) -> LatencyHistogram:
        hist = cls()
        buckets, hist.n, hist.min, hist.max = packed
        for index, count in buckets:
            hist.counts[index] = count
        return hist

    def percentile(self, p: float) -> Optional[float]:
        """Upper edge of the bucket holding the p-th percentile (p in 0..100)."""
        if not self.n:
            return None
        rank = max(1, math.ceil(self.n * p / 100.0))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                edge = _EDGES[index] if index < len(_EDGES) else self.max
                return min(max(edge, self.min), self.max)
        return self.max


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """The q-th percentile (q in 0..100) of a list of values, by linear interpolation
    between the nearest ranks (numpy's default); None for no values. The one definition
    for figures kept as lists (a campaign's rounds, the CDC consumer's lags); ops'
    latencies, too many to keep, go to LatencyHistogram."""
    data = sorted(values)
    if not data:
        return None
    position = (len(data) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return data[low] + (data[high] - data[low]) * (position - low)


def latency_summary(samples: list[float]) -> dict:
    """min / median / p99 / max of a small list of measured latencies (seconds)."""
    if not samples:
        return {"samples": 0}
    return {"samples": len(samples), "min": min(samples), "median": percentile(samples, 50),
            "p99": percentile(samples, 99), "max": max(samples)}
