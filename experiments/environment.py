"""What a result was measured on: machine, versions, and the settings that shape it."""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import time
from importlib import metadata

import redis

from config import Settings
from config.constants import DEFAULT_SQUARE_WORK
from tasks.work import square

WARM_UP_CPU_S = 1.5


def describe(settings: Settings, client: redis.Redis) -> dict[str, object]:
    server = client.info("server")
    return {
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "celery": metadata.version("celery"),
        "kombu": metadata.version("kombu"),
        "redis_py": metadata.version("redis"),
        "flower": metadata.version("flower"),
        "redis_server": server.get("valkey_version") or server.get("redis_version"),
        "redis_server_kind": "valkey" if "valkey_version" in server else "redis",
        "prefetch_multiplier": settings.prefetch_multiplier,
        "acks_late": settings.acks_late,
        "events": settings.events,
        "results": settings.results,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _square_samples(work: int, repeats: int) -> list[float]:
    warm_until = time.process_time() + WARM_UP_CPU_S  # an idle core starts slow: let its clock rise first
    while time.process_time() < warm_until:
        square(3, work)
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        square(3, work)
        samples.append(time.process_time() - started)
    return samples


def square_cpu_seconds(work: int = DEFAULT_SQUARE_WORK, repeats: int = 15) -> float:
    """Median CPU time of one `square` call with every core busy: the denominator of the CPU ideal.

    One process per core measures at once, as the pool's children run in a CPU cell: on a VM
    whose cores share a physical core or its caches, a core is slower when its neighbours are
    busy, and an ideal measured on an otherwise idle machine would be out of reach.
    """
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        per_core = pool.starmap(_square_samples, [(work, repeats)] * cores)
    return statistics.median(sample for samples in per_core for sample in samples)


def ideal_per_s(workload: str, concurrency: int, *, seconds: float = 0.1,
                task_cpu_s: float | None = None) -> float:
    """The best a pool could do: concurrency / sleep time, or min(concurrency, cores) / CPU time."""
    if workload == "sleep":
        return concurrency / seconds if seconds > 0 else float("inf")
    if workload == "square":
        assert task_cpu_s, "square needs the measured single-task CPU time"
        return min(concurrency, os.cpu_count() or 1) / task_cpu_s
    raise ValueError(f"no ideal for workload {workload!r}")
