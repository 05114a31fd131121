"""What a result was measured on: machine, versions, and the settings that shape it."""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Iterable
from importlib import metadata
from typing import Any

import redis

from config import Settings
from experiments.schema import CellResult, Interpreter
from tasks import interpreter
from tasks.workloads import WORKLOADS

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
        "interpreters": [harness_interpreter()],
    }


def harness_interpreter() -> Interpreter:
    """This process's interpreter: the producer's, and the in-process measurements' (task CPU time)."""
    return {"python": interpreter.label(), "free_threaded_build": interpreter.free_threaded_build(),
            "gil_enabled": interpreter.gil_enabled(), "used_by": ["harness"]}


def interpreters_used(known: Iterable[Interpreter], cells: Iterable[CellResult]) -> list[Interpreter]:
    """Every interpreter of the run once, with what used it: `known` (the harness), then the cells' workers.

    A worker is taken at its word (`inspect stats`): the same build with its GIL on and off would be
    two rows, so a free-threaded build whose GIL an extension turned back on cannot pass for one
    without it. A worker that did not report its interpreter (an older lab's) adds no row.
    """
    found = {(entry["python"], entry["gil_enabled"]): Interpreter(**{**entry, "used_by": list(entry["used_by"])})
             for entry in known}
    for cell in cells:
        python = cell["python"]
        if python is None:
            continue
        gil = cell.get("gil_enabled")
        entry = found.setdefault((python, gil), {"python": python, "free_threaded_build": python.endswith("t"),
                                                 "gil_enabled": gil, "used_by": []})
        if cell["pool"] not in entry["used_by"]:
            entry["used_by"].append(cell["pool"])
    return list(found.values())


def _cpu_samples(workload: str, params: dict[str, Any], repeats: int) -> list[float]:
    call = WORKLOADS[workload]
    args, kwargs = call.arguments(3, params)
    warm_until = time.process_time() + WARM_UP_CPU_S  # an idle core starts slow: let its clock rise first
    while time.process_time() < warm_until:
        call.function(*args, **kwargs)
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        call.function(*args, **kwargs)
        samples.append(time.process_time() - started)
    return samples


def task_cpu_seconds(workload: str, params: dict[str, Any], repeats: int = 15) -> float:
    """Median CPU time of one call with every core busy: the model's `cpu` before a run.

    One process per core measures at once, as the pool's children run in a CPU cell: on a VM
    whose cores share a physical core or its caches, a core is slower when its neighbours are
    busy, and an ideal measured on an otherwise idle machine would be out of reach.
    """
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        per_core = pool.starmap(_cpu_samples, [(workload, params, repeats)] * cores)
    return statistics.median(sample for samples in per_core for sample in samples)
