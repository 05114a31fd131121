"""The model every report prints beside a measurement: min(c / (cpu + io), U / cpu), by hand.

Issue #13's examples: a 50 ms task split into CPU and socket I/O, on threads (U = 1 under the
GIL), prefork and threads-ft (U = min(c, cores)); and the 15 % line past which a miss is a finding.
"""

from __future__ import annotations

import math

import pytest

from config.pools import POOLS
from report.verdicts import MODEL_TOLERANCE, misses_model
from tasks.workloads import WORKLOADS, broker_bound_per_s, efficiency, model_per_s


@pytest.mark.parametrize(
    ("concurrency", "cores", "cpu_ms", "io_ms", "expected"),
    [
        (8, 1, 0.0, 50.0, 8 / 0.050),  # pure I/O: the slots bound, 160/s
        (8, 1, 5.0, 45.0, 8 / 0.050),  # 10 % CPU on one core: slots 160/s < cores 200/s
        (8, 1, 25.0, 25.0, 1 / 0.025),  # 50 % CPU: the core is the bound, 40/s
        (8, 2, 25.0, 25.0, 2 / 0.025),  # two usable cores double it, 80/s
        (2, 2, 50.0, 0.0, 2 / 0.050),  # pure CPU at c = cores: both bounds agree, 40/s
        (1, 2, 50.0, 0.0, 1 / 0.050),  # one slot cannot use the second core
    ],
)
def test_the_model_is_the_lower_of_the_slots_and_the_cores_bounds(
    concurrency: int, cores: float, cpu_ms: float, io_ms: float, expected: float
) -> None:
    assert model_per_s(concurrency, cores, cpu_ms / 1000, io_ms / 1000) == pytest.approx(expected)


def test_fractional_cores_and_the_workers_own_overhead_enter_both_bounds() -> None:
    # 1.5 usable cores (a task that releases the GIL a third of its CPU), 2 ms of serial worker work
    assert model_per_s(4, 1.5, 0.030, 0.0, overhead_s=0.002) == pytest.approx(1 / (0.030 / 1.5 + 0.002))
    assert model_per_s(1, 1.5, 0.030, 0.010, overhead_s=0.002) == pytest.approx(1 / 0.042)
    assert model_per_s(4, 1, 0.0, 0.0) == math.inf  # noop: no model


@pytest.mark.parametrize(("pool", "usable"), [("threads", 1), ("gevent", 1), ("prefork", 2), ("threads-ft", 2)])
def test_the_mixed_workloads_ideal_uses_each_pools_usable_cores(pool: str, usable: int) -> None:
    params = WORKLOADS["mixed"].validate({"cpu_ms": 25, "io_ms": 25})
    assert POOLS[pool].usable_cores(8, cores=2) == usable
    expected = min(8 / 0.050, POOLS[pool].usable_cores(8) / 0.025)
    assert WORKLOADS["mixed"].ideal_per_s(params, pool, 8) == pytest.approx(expected)


def test_square_needs_the_measured_cpu_time_and_noop_has_no_model() -> None:
    square = WORKLOADS["square"]
    params = square.validate({"work": 1000})
    assert square.ideal_per_s(params, "prefork", 2) is None
    assert square.ideal_per_s(params, "threads", 2, task_cpu_s=0.040) == pytest.approx(1 / 0.040)
    assert WORKLOADS["noop"].ideal_per_s({}, "threads", 2) is None


def test_efficiency_and_the_fifteen_percent_line() -> None:
    assert efficiency(34.0, 40.0) == pytest.approx(0.85)
    assert efficiency(None, 40.0) is None and efficiency(10.0, 0.0) is None
    assert MODEL_TOLERANCE == 0.15
    assert not misses_model(0.86) and not misses_model(1.14) and not misses_model(None)
    assert misses_model(0.84) and misses_model(1.16)


def test_broker_latency_adds_serial_round_trips_to_each_task() -> None:
    # 300 noop/s direct (3.33 ms per task), 3 serial round trips at 2 ms RTT: 9.33 ms per task
    assert broker_bound_per_s(300.0, 3, 0.002) == pytest.approx(1 / (1 / 300 + 0.006))
    assert broker_bound_per_s(300.0, 3, 0.0) == pytest.approx(300.0)
