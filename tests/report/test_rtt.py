"""The broker-latency model's arithmetic and how the report judges cells against it."""

from __future__ import annotations

from typing import Any

import pytest

from report import rtt
from report.verdicts import MODEL_TOLERANCE
from tasks.workloads import broker_bound_per_s


def test_broker_bound_adds_the_serial_round_trips_to_the_direct_time_per_task() -> None:
    assert broker_bound_per_s(250.0, 3.0, 0.0) == pytest.approx(250.0)
    # 4 ms direct + 3 x 10 ms waiting = 34 ms per task
    assert broker_bound_per_s(250.0, 3.0, 0.010) == pytest.approx(1 / 0.034)
    assert broker_bound_per_s(250.0, 2.0, 0.010) > broker_bound_per_s(250.0, 3.0, 0.010)
    assert broker_bound_per_s(0.0, 3.0, 0.010) == 0.0
    # At large RTT the bound tends to 1 / (S x RTT), whatever the direct rate
    assert broker_bound_per_s(1e9, 2.0, 1.0) == pytest.approx(0.5)


def cell(workload: str, pool: str, prefetch: int, rtt_ms: float, per_s: float,
         ideal: float | None = None) -> dict[str, Any]:
    return {"workload": workload, "params": {}, "pool": pool, "pool_label": pool, "prefetch_multiplier": prefetch,
            "rtt_ms": rtt_ms, "concurrency": 2, "throughput_per_s": per_s, "throughput_min": per_s * 0.9,
            "throughput_max": per_s * 1.1, "ideal_per_s": ideal, "p99_s": 0.5, "healthy": True,
            "relay_cpu_us_per_task": None if not rtt_ms else 900.0, "redis_cpu_us_per_task": 300.0}


def results(cells: list[dict[str, Any]]) -> Any:
    # cycles behind 10 ms: threads 4 ms own + 3 RTT, prefork 5 ms own + 2 RTT (own = 1 / its noop rate direct)
    census = {"threads": {"rtt_ms": 10.0, "prefetch_multiplier": 4, "cycle_ms": 34.0},
              "prefork": {"rtt_ms": 10.0, "prefetch_multiplier": 4, "cycle_ms": 25.0}}
    return {"cells": cells, "delay": {"mechanism": "relay", "round_trips": census}}


def test_rows_put_the_model_beside_every_cell_and_mark_misses() -> None:
    rows = rtt.rows(results([
        cell("noop", "threads", 4, 0, 250.0),
        cell("noop", "threads", 4, 10, 29.0),            # model 1 / (1/250 + 0.030) = 29.4
        cell("noop", "prefork", 4, 0, 200.0),
        cell("noop", "prefork", 4, 10, 20.0),            # model 1 / (0.005 + 0.020) = 40: a miss
        cell("square", "prefork", 4, 0, 150.0, ideal=160.0),
        cell("square", "prefork", 4, 10, 39.0, ideal=160.0),  # broker bound 40 < CPU ideal 160
        cell("square", "threads", 4, 0.5, 70.0, ideal=80.0),  # broker 1 / (0.004 + 0.0015) = 182 > 80
    ]))  # fmt: skip
    by = {(r["workload"], r["pool"], r["rtt_ms"]): r for r in rows}
    assert by[("noop", "threads", 0)]["efficiency"] == pytest.approx(1.0)
    assert by[("noop", "threads", 10)]["model_per_s"] == pytest.approx(1 / (1 / 250 + 0.030))
    assert not by[("noop", "threads", 10)]["miss"]
    assert by[("noop", "prefork", 10)]["model_per_s"] == pytest.approx(40.0)
    assert by[("noop", "prefork", 10)]["miss"] and by[("noop", "prefork", 10)]["efficiency"] < 1 - MODEL_TOLERANCE
    assert by[("square", "prefork", 10)]["model_per_s"] == pytest.approx(40.0)
    assert by[("square", "threads", 0.5)]["model_per_s"] == pytest.approx(80.0)


def test_serial_round_trips_are_the_census_cycle_less_the_consumers_own_time() -> None:
    serial = rtt.serial_round_trips(results([]), {("threads", 4): 250.0, ("prefork", 4): 200.0})
    assert serial == pytest.approx({"threads": 3.0, "prefork": 2.0})
    assert rtt.serial_round_trips(results([]), {}) == {}


def test_a_cell_without_its_direct_twin_or_census_has_no_model() -> None:
    (row,) = rtt.rows(results([cell("noop", "gevent", 4, 10, 20.0)]))
    assert row["model_per_s"] is None and row["efficiency"] is None and not row["miss"]
