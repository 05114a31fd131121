"""How fast can the producer enqueue? Three ways side by side, into a queue nobody consumes.

* `apply_async`: one `send_task` per message, each its own Redis round trip;
* `batch`: the lab's `publish()` (kombu `Producer.batch()`, pipelined LPUSHes), what the runner uses;
* `processes`: several processes each running `batch` at once (started first, then released together).

The report compares the rate the runner used with the fastest drain it measured:
a producer slower than the pool would make the pool look slow.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from typing import Any

import redis

from config import Settings
from experiments.schema import EnqueueRates, EnqueueResult
from experiments.spec import EnqueueBench
from experiments.stats import Spread
from producer.publish import SendPlan, publish
from tasks.connections import client_app
from tasks.ledger import run_headers
from tasks.workloads import WORKLOADS

USED_BY_RUNNER = "batch"
BENCH_POOL = "threads"
BENCH_TASK = WORKLOADS["noop"]  # the cheapest message: what is measured is the producer


def run(settings: Settings, client: redis.Redis, bench: EnqueueBench) -> EnqueueResult:
    """Measure each method `bench.repetitions` times; rates are messages per second."""
    target = settings.replace(queue_prefix=f"{settings.queue_prefix}-enqueue")
    queue = target.queue_for(BENCH_POOL)
    methods = {
        "apply_async": lambda: _apply_async(target, bench.tasks),
        "batch": lambda: _batch(target, bench.tasks),
        f"processes_{bench.processes}": lambda: _processes(target, bench.tasks, bench.processes),
    }
    rates: dict[str, list[float]] = {name: [] for name in methods}
    try:
        for _ in range(bench.repetitions):
            for name, method in methods.items():
                rates[name].append(method())
                client.delete(queue)
    finally:
        client.delete(queue)
    spreads = {name: Spread.of(values) for name, values in rates.items()}
    return {
        "tasks": bench.tasks,
        "repetitions": bench.repetitions,
        "used": USED_BY_RUNNER,
        "methods": {name: _rates(spread) for name, spread in spreads.items()},
    }


def _rates(spread: Spread) -> EnqueueRates:
    return {"median_per_s": round(spread.median, 1), "min_per_s": round(spread.low, 1),
            "max_per_s": round(spread.high, 1)}


def _apply_async(settings: Settings, count: int) -> float:
    with client_app(settings) as app:
        queue = settings.queue_for(BENCH_POOL)
        app.send_task(BENCH_TASK.task_name, queue=queue)  # connect before the clock starts
        headers = run_headers("enqueue-bench")
        started = time.perf_counter()
        for _ in range(count):
            app.send_task(BENCH_TASK.task_name, queue=queue, headers=headers)
        return count / (time.perf_counter() - started)


def _batch(settings: Settings, count: int) -> float:
    with client_app(settings) as app:
        publish(app, settings, SendPlan(BENCH_TASK.name, 1, (BENCH_POOL,), run_id="enqueue-warmup"))
        plan = SendPlan(BENCH_TASK.name, count, (BENCH_POOL,), run_id="enqueue-bench")
        return publish(app, settings, plan).rate_per_s


def _processes(settings: Settings, count: int, workers: int) -> float:
    """Total rate of `workers` producer processes released together by a barrier."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers + 1)
    results = context.Queue()
    share = count // workers
    procs = [context.Process(target=_produce, args=(settings, share, barrier, results)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    try:
        barrier.wait(timeout=60)
        spans = [results.get(timeout=300) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    first = min(start for start, _ in spans)
    last = max(end for _, end in spans)
    return share * workers / (last - first)


def _produce(settings: Settings, count: int, barrier: Any, results: Any) -> None:
    """In a child: connect, wait for the others, publish, report (start, end) wall-clock times."""
    with client_app(settings) as app:
        publish(app, settings, SendPlan(BENCH_TASK.name, 1, (BENCH_POOL,), run_id="enqueue-warmup"))
        barrier.wait(timeout=60)
        started = time.time()
        publish(app, settings, SendPlan(BENCH_TASK.name, count, (BENCH_POOL,), run_id=uuid.uuid4().hex[:12]))
        results.put((started, time.time()))
