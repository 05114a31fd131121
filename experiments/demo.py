"""`make demo`: a short side-by-side of square and sleep on the threads and prefork pools."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal, get_args

from rich.console import Console
from rich.table import Table

from config import Settings
from config.pools import DEFAULT_POOLS
from config.settings import STATE_FILE
from experiments.environment import describe
from experiments.schema import DemoRun, DemoSummary
from producer.publish import SendPlan
from producer.run import run
from stack.launcher import Stack, running_stack
from tasks import connections
from tasks.workloads import WORKLOADS, efficiency

DEMO_CONCURRENCY = 4
DEMO_TASKS = {"square": 150, "sleep": 200}
# ~25 ms of CPU per square: long enough that Celery's own per-task work does not hide the GIL's effect.
DEMO_PARAMS: dict[str, dict[str, Any]] = {"square": {"work": 300_000}, "sleep": WORKLOADS["sleep"].defaults()}

Column = Literal["pool", "workload", "concurrency", "tasks", "completed", "failed", "lost", "throughput_per_s",
                 "ideal_per_s", "efficiency", "worker_memory_mb"]  # the DemoRun fields the table shows
TABLE_COLUMNS: tuple[Column, ...] = get_args(Column)


def run_demo(settings: Settings, out: Path) -> DemoSummary:
    console = Console(width=None if sys.stdout.isatty() else 160)
    settings = settings.replace(concurrency={**settings.concurrency,
                                             **{pool: DEMO_CONCURRENCY for pool in DEFAULT_POOLS}})
    with running_stack(settings, out / "stack", flower_port=0 if settings.flower_port == 5555 else None) as stack:
        s = stack.settings
        console.print(f"Flower: {s.flower_url}  user={s.flower_user}, password in {s.state_dir / STATE_FILE}")
        runs = [measure(stack, pool, workload, console)
                for workload in DEMO_TASKS for pool in DEFAULT_POOLS]
        with connections.redis_client(s.require_broker()) as client:
            environment = describe(s, client)
    summary: DemoSummary = {"environment": environment, "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(demo_table(runs))
    console.print(f"wrote {out / 'summary.json'}")
    return summary


def measure(stack: Stack, pool: str, workload: str, console: Console) -> DemoRun:
    """Send one burst to one pool, wait for it, and compare its drain rate with the ideal.

    The CPU ideal uses the CPU time the burst's own tasks took in the worker: this machine's
    speed drifts too much for a figure measured a minute earlier (experiments/summary.py).
    """
    plan = SendPlan(workload, DEMO_TASKS[workload], (pool,), DEMO_PARAMS[workload])
    console.print(f"[bold]{workload} on {pool}[/bold] ({plan.count} tasks)")
    report = run(stack.settings, plan, wait=True, timeout=300, console=console)
    worker = stack.workers[pool]
    ideal = plan.task.ideal_per_s(plan.params, pool, worker.concurrency, report.task_cpu_s) or 0.0
    acc = report.accounting
    assert acc is not None
    throughput = report.drain_per_s or 0.0
    measured_vs_ideal = efficiency(throughput, ideal)
    return {
        "pool": pool, "workload": workload, "concurrency": worker.concurrency, "tasks": plan.total,
        "completed": acc.completed, "failed": acc.failed, "lost": acc.lost,
        "throughput_per_s": round(throughput, 2), "ideal_per_s": round(ideal, 2),
        "efficiency": None if measured_vs_ideal is None else round(measured_vs_ideal, 3),
        "worker_memory_mb": round(worker.memory_mb(), 1),
        "task_cpu_ms": round(1000 * (report.task_cpu_s or 0.0), 2),
    }  # fmt: skip


def demo_table(runs: list[DemoRun]) -> Table:
    table = Table(title="threads vs prefork (drain rate of a prefilled burst)")
    for column in TABLE_COLUMNS:
        table.add_column(column.replace("_per_s", "/s").replace("_", " "), justify="right")
    for row in runs:
        table.add_row(*(str(row[c]) for c in TABLE_COLUMNS))
    return table
