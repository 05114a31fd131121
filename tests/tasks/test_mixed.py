"""The mixed workload on every pool: its CPU part burns the thread's own CPU, its I/O part really waits.

Real workers, the real latency server (socket I/O) and the run ledger, which keeps the waiting
each task observed (`io_s`) for the report's I/O inflation.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from celery import Celery

from config import Settings
from config.pools import POOL_NAMES
from producer.publish import SendPlan, publish
from stack.workers import Worker
from tasks.ledger import RunLedger

CPU_MS, IO_MS = 20.0, 50.0


@pytest.mark.parametrize("io", ["socket", "sleep"])
@pytest.mark.parametrize("pool", POOL_NAMES)
def test_mixed_burns_its_cpu_and_waits_its_io_on_every_pool(
    pool: str, io: str, app: Celery, settings: Settings, start_worker: Callable[..., Worker],
    redis_client: redis.Redis,
) -> None:
    start_worker(pool, concurrency=2 if pool != "solo" else 1)
    plan = SendPlan("mixed", 6, (pool,), {"cpu_ms": CPU_MS, "io_ms": IO_MS, "io": io})
    publish(app, settings, plan)
    ledger = RunLedger(redis_client, plan.run_id)
    assert ledger.wait(plan.total, timeout=60).ended
    ledger.drain_timings()
    assert ledger.account(plan.total, [settings.queue_for(pool)]).completed == plan.total
    timings = ledger.timings
    assert timings.mean_task_cpu_s() >= CPU_MS / 1000, "the CPU part is the thread's own CPU time"
    assert timings.io_observed.total == plan.total, "every task reported the waiting it observed"
    assert (timings.io_observed.low or 0) >= IO_MS / 1000 * 0.999
    one = app.send_task("tasks.mixed", kwargs={"cpu_ms": 1.0, "io_ms": 5.0, "io": io, "order": "io-cpu"},
                        queue=settings.queue_for(pool)).get(timeout=30)
    assert one["cpu_s"] >= 0.001 and one["io_s"] >= 0.005 and one["io_requested_s"] == 0.005


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_green_pools_see_the_socket_wait_as_io(
    pool: str, app: Celery, settings: Settings, start_worker: Callable[..., Worker], redis_client: redis.Redis,
) -> None:
    """20 tasks each waiting 300 ms on the latency server overlap on 20 greenlets: about one wait, not 20."""
    start_worker(pool, concurrency=20)
    plan = SendPlan("mixed", 20, (pool,), {"cpu_ms": 0.0, "io_ms": 300.0, "io": "socket"})
    publish(app, settings, plan)
    ledger = RunLedger(redis_client, plan.run_id)
    assert ledger.wait(plan.total, timeout=60).ended
    ledger.drain_timings()
    span = ledger.timings.last_finished - ledger.timings.first_started
    assert span < 20 * 0.3 / 4, f"{pool}: the waits ran one after another ({span:.2f} s for 20 x 0.3 s)"


BAD_CALLS = [
    ({"cpu_ms": -1}, "cpu_ms must be a finite number"),
    ({"io_ms": float("nan")}, "io_ms must be a finite number"),
    ({"io": "carrier-pigeon"}, "io must be one of socket, sleep"),
    ({"order": "sideways"}, "order must be one of cpu-io, io-cpu"),
    ({"cpu_ms": "lots"}, "cpu_ms must be a number"),
]


def test_bad_arguments_fail_the_mixed_task_and_the_worker_serves_on(
    app: Celery, settings: Settings, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker("threads")
    queue = settings.queue_for("threads")
    for kwargs, error in BAD_CALLS:
        result = app.send_task("tasks.mixed", kwargs=kwargs, queue=queue)
        with pytest.raises(Exception, match=error):
            result.get(timeout=30)
    assert app.send_task("tasks.mixed", kwargs={"cpu_ms": 1, "io_ms": 1}, queue=queue).get(timeout=30)["io_s"] > 0
    assert worker.process is not None and worker.process.poll() is None
