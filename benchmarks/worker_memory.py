"""What a worker costs in memory, counted three ways: USS, PSS and RSS summed over its process tree.

A prefork worker is a parent and its forked children, and most of the parent's pages (the
interpreter, Celery, kombu, the lab's tasks, imported before the fork) stay shared with the
children until somebody writes to them. Summed over the tree:
- RSS counts each shared page once per process that maps it: too much;
- USS counts only pages no other process maps, so a page the parent shares with its children is
  counted in *no* process: too little, and the error grows with what the fork shares;
- PSS gives each of the k processes mapping a page 1/k of it, so the sum over the tree counts a
  page shared inside the tree exactly once: what the worker really occupies (pages shared with
  processes outside the tree, e.g. libc, are split with them, a few MB at most).

This starts each pool at each concurrency on the lab's embedded Redis, drains a burst of `square`
tasks through it (so children have touched what a task touches, as in the experiments), then reads
the three sums, `--repetitions` times, and prints medians with their range and the per-slot cost
fitted over the concurrencies (`config/pools.py`'s MemoryCost model: base + per slot x c).

    .venv/bin/python -m benchmarks.worker_memory [--repetitions 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from config import Settings
from config.pools import POOLS
from experiments.stats import Spread
from producer.publish import SendPlan
from producer.run import run
from stack.redis_server import RedisServer, free_port
from stack.workers import Worker

GRID: dict[str, tuple[int, ...]] = {"threads": (2, 8, 64), "prefork": (1, 2, 4, 8), "gevent": (50, 500)}
BURST = 200  # square tasks drained before reading memory
SQUARE = {"work": 20_000}  # ~2 ms each: the burst is about the pages, not the CPU


@dataclass(frozen=True)
class TreeMemory:
    """One reading of a worker's process tree, in MB."""

    processes: int
    uss_mb: float
    pss_mb: float
    rss_mb: float


def read_tree(pid: int) -> TreeMemory:
    root = psutil.Process(pid)
    infos = [proc.memory_full_info() for proc in (root, *root.children(recursive=True))]
    return TreeMemory(len(infos), sum(i.uss for i in infos) / 2**20, sum(i.pss for i in infos) / 2**20,
                      sum(i.rss for i in infos) / 2**20)


def measure(base: Settings, logs: Path, pool: str, concurrency: int) -> TreeMemory:
    settings = base.replace(queue_prefix=f"m{uuid.uuid4().hex[:8]}", concurrency={pool: concurrency})
    worker = Worker(settings=settings, pool=pool, concurrency=concurrency,
                    log_path=logs / f"{pool}-{concurrency}.log").start()
    try:
        report = run(settings, SendPlan("square", BURST, (pool,), SQUARE), wait=True, timeout=120,
                     console=Console(quiet=True))
        if report.accounting is None or report.accounting.completed != BURST:
            raise SystemExit(f"worker_memory: {pool} c={concurrency} did not drain its burst")
        return read_tree(worker.pid)
    finally:
        worker.stop()


def fitted_per_slot(points: dict[int, float]) -> tuple[float, float]:
    """Least-squares base + per-slot MB over the concurrencies measured."""
    fit = statistics.linear_regression(list(points), list(points.values()))
    return fit.intercept, fit.slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=140)
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        base = Settings(broker_url=server.url, flower_port=free_port(), state_dir=Path(tmp) / ".lab")
        table = Table(title=f"worker memory after a {BURST}-task burst, summed over the process tree "
                            f"(median of {args.repetitions}, range)")
        for column in ("pool", "c", "processes", "USS MB", "PSS MB", "RSS MB", "USS/PSS"):
            table.add_column(column, justify="right")
        for pool, concurrencies in GRID.items():
            pss_by_c: dict[int, float] = {}
            for concurrency in concurrencies:
                readings = [measure(base, Path(tmp), pool, concurrency) for _ in range(args.repetitions)]
                uss, pss, rss = (Spread.of([getattr(r, f) for r in readings]) for f in ("uss_mb", "pss_mb", "rss_mb"))
                pss_by_c[concurrency] = pss.median
                table.add_row(pool, str(concurrency), str(readings[0].processes), _cell(uss), _cell(pss), _cell(rss),
                              f"{uss.median / pss.median:.2f}")
                console.print(f"{pool} c={concurrency}: USS {uss.median:.1f}  PSS {pss.median:.1f}  "
                              f"RSS {rss.median:.1f} MB", highlight=False)
            model = POOLS[pool].memory
            base_mb, slope = fitted_per_slot(pss_by_c)
            console.print(f"  {pool}: PSS fit {base_mb:.1f} MB + {slope:.2f} MB x c; config/pools.py model: "
                          + (f"{model.base_mb} + {model.per_slot_mb} x c" if model else "none"), highlight=False)
        console.print(table)


def _cell(spread: Spread) -> str:
    return f"{spread.median:.1f} ({spread.low:.1f}-{spread.high:.1f})"


if __name__ == "__main__":
    main()
