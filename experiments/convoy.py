"""The convoy figure: short socket tasks sharing a worker with CPU tasks, threads against prefork.

A threads worker at c=8 serves 5 ms socket tasks while a growing share (0, 10, 30, 50 %) of its
tasks are 50 ms CPU tasks; prefork at the same concurrency serves the same mix. Under the GIL a
thread whose socket answered must take the GIL back from the CPU-bound threads before it can run
again (the convoy effect, bpo-7946): the socket tasks' observed I/O time grows with the CPU share,
and so does their p99. Processes are scheduled by the kernel instead, which preempts a CPU-bound
process for one that became runnable.

Both kinds arrive at a fixed total rate (one publishing thread per kind, each at its share of the
rate) well under either pool's capacity, so what grows is the tasks' own time, not a queue. Each
kind has its own run id, so the ledger keeps them apart; every task is accounted for.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from config import Settings
from config.pools import DEFAULT_POOLS
from experiments.schema import ConvoyPoint
from producer.publish import SendPlan, publish
from stack.workers import Worker
from tasks import connections
from tasks.ledger import RunLedger, Timings

IO_MS, CPU_MS = 5.0, 50.0
IO_TASK = {"cpu_ms": 0.0, "io_ms": IO_MS, "io": "socket"}
CPU_TASK = {"cpu_ms": CPU_MS, "io_ms": 0.0, "io": "socket"}
SHARES = (0.0, 0.1, 0.3, 0.5)
CONCURRENCY = 8
RATE_PER_S = 20.0  # at 50 % CPU tasks: 0.5 cores of demand, under the one core threads have
SECONDS = 15.0


def run_convoy(settings: Settings, log_dir: Path, console: Console, pools: Sequence[str] = DEFAULT_POOLS,
               shares: Sequence[float] = SHARES, seconds: float = SECONDS) -> list[ConvoyPoint]:
    """Every pool at every CPU share; one worker per pool, kept for all its shares."""
    points: list[ConvoyPoint] = []
    for pool in pools:
        worker = Worker(settings, pool, CONCURRENCY, log_dir / f"convoy-{pool}.log").start(120)
        try:
            for share in shares:
                point = measure_point(settings, worker, share, seconds)
                console.print(f"convoy {pool} c={CONCURRENCY}, {share:.0%} CPU tasks: socket tasks' I/O "
                              f"p50 {_ms(point['io_p50_s'])}, p99 {_ms(point['io_p99_s'])} (asked 5 ms); "
                              f"end-to-end p99 {_ms(point['io_tasks_p99_s'])}; lost {point['lost']}")
                points.append(point)
        finally:
            worker.stop()
    return points


def measure_point(settings: Settings, worker: Worker, share: float, seconds: float = SECONDS) -> ConvoyPoint:
    total = round(RATE_PER_S * seconds)
    cpu_count = round(total * share)
    plans = [SendPlan("mixed", total - cpu_count, (worker.pool,), IO_TASK, rate=RATE_PER_S * (1 - share))]
    if cpu_count:
        plans.append(SendPlan("mixed", cpu_count, (worker.pool,), CPU_TASK, rate=RATE_PER_S * share))
    senders = [threading.Thread(target=_send, args=(settings, plan)) for plan in plans]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    queue = settings.queue_for(worker.pool)
    with connections.redis_client(settings.require_broker()) as client:
        ledgers = [RunLedger(client, plan.run_id) for plan in plans]
        accounts = []
        for plan, ledger in zip(plans, ledgers, strict=True):
            ledger.wait(plan.total, timeout=120, queues=[queue], stall_s=10)
            ledger.drain_timings()
            accounts.append(ledger.account(plan.total, [queue]))
            ledger.delete()
    io_tasks = ledgers[0].timings
    cpu_tasks = ledgers[1].timings if len(ledgers) > 1 else Timings()
    return {
        "pool": worker.pool, "concurrency": CONCURRENCY, "cpu_share": share, "rate_per_s": RATE_PER_S,
        "io_tasks": plans[0].total, "cpu_tasks": cpu_count,
        "io_requested_s": IO_MS / 1000,
        "io_p50_s": io_tasks.io_observed.percentile(0.5), "io_p99_s": io_tasks.io_observed.percentile(0.99),
        "io_tasks_p99_s": io_tasks.end_to_end.percentile(0.99),
        "cpu_tasks_p99_s": cpu_tasks.end_to_end.percentile(0.99),
        "worker_memory_mb": round(worker.memory_mb(), 1),
        "lost": sum(a.lost for a in accounts), "duplicated": sum(a.duplicated for a in accounts),
    }  # fmt: skip


def _send(settings: Settings, plan: SendPlan) -> None:
    with connections.client_app(settings) as app:
        publish(app, settings, plan)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"
