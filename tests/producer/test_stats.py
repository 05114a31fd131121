import math

import pytest

from producer.stats import Histogram, Spread
from producer.tracking import Timings


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


def test_spread_is_median_and_range() -> None:
    spread = Spread.of([3.0, 1.0, 2.0, 10.0])
    assert (spread.median, spread.low, spread.high, spread.runs) == (2.5, 1.0, 10.0, 4)


def test_timings_give_drain_rate_from_first_start_to_last_finish() -> None:
    timings = Timings()
    timings.add("100.0 100.5 101.0 0.4 SUCCESS threads@h")
    timings.add("100.0 101.0 102.5 1.2 SUCCESS threads@h")
    assert timings.count == 2
    assert timings.drain_rate() == pytest.approx(2 / 2.0)
    assert timings.elapsed_since_sent() == pytest.approx(2.5)
    assert timings.mean_task_cpu_s() == pytest.approx(0.8)
    assert timings.queue_wait.percentile(1.0) == pytest.approx(1.0)
    assert math.isnan(Timings().drain_rate())
