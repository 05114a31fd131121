"""Latency statistics in bounded memory: a log-bucketed histogram per measure.

A million-task run keeps a few thousand integers, not a million floats; the
percentiles it reports are within one bucket (about 1 %) of the exact value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BUCKETS_PER_DECADE = 200
SMALLEST = 1e-6


@dataclass
class Histogram:
    """Counts of samples in geometric buckets from 1 µs up; negative or zero go to bucket 0."""

    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    low: float = math.inf
    high: float = -math.inf

    def add(self, value: float) -> None:
        bucket = 0 if value <= SMALLEST else 1 + int(math.log10(value / SMALLEST) * BUCKETS_PER_DECADE)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.total += 1
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    def percentile(self, q: float) -> float | None:
        """The value below which a fraction `q` (0..1) of samples fall, at bucket resolution."""
        if not self.total:
            return None
        rank = max(1, math.ceil(q * self.total))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(max(_bucket_value(bucket), self.low), self.high)
        return self.high

    def merge(self, other: Histogram) -> None:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.total += other.total
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)

    def summary(self) -> dict[str, float | None]:
        return {f"p{int(q * 100)}_s": self.percentile(q) for q in (0.5, 0.95, 0.99)}


def _bucket_value(bucket: int) -> float:
    """The geometric middle of a bucket."""
    if bucket == 0:
        return SMALLEST
    return SMALLEST * 10 ** ((bucket - 0.5) / BUCKETS_PER_DECADE)
