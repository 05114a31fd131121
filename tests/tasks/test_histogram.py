"""The log-bucketed histogram: percentiles within one bucket, bounded memory, merging."""

import pytest

from tasks.histogram import Histogram


def test_percentiles_of_known_inputs_within_one_bucket() -> None:
    histogram = Histogram()
    for i in range(1, 1001):
        histogram.add(i / 1000)
    assert histogram.percentile(0.5) == pytest.approx(0.5, rel=0.015)
    assert histogram.percentile(0.95) == pytest.approx(0.95, rel=0.015)
    assert histogram.percentile(0.99) == pytest.approx(0.99, rel=0.015)
    assert histogram.percentile(1.0) == pytest.approx(1.0)


def test_histogram_memory_is_bounded() -> None:
    histogram = Histogram()
    for i in range(200_000):
        histogram.add(0.001 + (i % 5000) * 1e-5)
    assert histogram.total == 200_000
    assert len(histogram.counts) < 1000


def test_empty_histogram_has_no_percentile() -> None:
    assert Histogram().percentile(0.5) is None


def test_merge_equals_adding_everything_to_one() -> None:
    a, b, both = Histogram(), Histogram(), Histogram()
    for value in (0.1, 0.2, 0.3):
        a.add(value)
        both.add(value)
    for value in (1.0, 2.0):
        b.add(value)
        both.add(value)
    a.merge(b)
    assert a.counts == both.counts
    assert a.percentile(0.99) == both.percentile(0.99)
