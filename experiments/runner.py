"""Run an experiment file: every cell, then the producer and Redis benchmarks, then results.json.

Everything lands in `results/<experiment>/<timestamp>/`: a copy of the file, one JSON per
finished cell (`cells/`), worker logs and `results.json` (the report is written from it by
`report.build`). An interrupted run resumes from that directory: finished cells are skipped,
the embedded Redis starts empty, and the same file must be given again.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from config import Settings
from config.pools import POOLS
from experiments import delay, enqueue_bench, inprocess, redis_stats, spec
from experiments.environment import describe, interpreters_used, task_cpu_seconds
from experiments.flower_check import FlowerCheck
from experiments.measure import Context, cell_settings, measure_cell, worker_for
from experiments.progress import CellProgress
from experiments.schema import CellResult, Delay, RedisCeiling, Results, SingleThreadCost
from experiments.spec import Cell, Experiment, SpecError
from experiments.summary import cell_result
from experiments.targets import Target
from stack.latency_server import LatencyServer
from stack.processes import python_for
from stack.redis_server import RedisServer, free_port
from stack.workers import Flower
from tasks import connections
from tasks.work import DEFAULT_SQUARE_WORK
from tasks.workloads import call_label

SPEC_COPY = "experiment.toml"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def cells(self) -> Path:
        return self.root / "cells"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def cell(self, cell: Cell) -> Path:
        return self.cells / f"{cell.id}.json"

    def part(self, name: str) -> Path:
        return self.root / f"{name}.json"


def load(path: Path, settings: Settings) -> Experiment:
    """An experiment file, checked whole and checked runnable here, before anything starts."""
    experiment = spec.load(path)
    check_interpreters(experiment, settings)
    return experiment


def check_interpreters(experiment: Experiment, settings: Settings) -> None:
    """Every interpreter the file's pools run on exists, or one line (SettingsError) naming it.

    Without this a fresh clone met the missing free-threaded venv (`make freethreaded` not run) as
    a FileNotFoundError traceback once the run measured the single-thread cost or started the first
    threads-ft worker, after an embedded Redis and other workers had already been started.
    """
    for pool in dict.fromkeys(cell.pool for cell in experiment.cells):
        python_for(settings, pool)


def new_run_dir(base: Path, experiment: Experiment) -> Path:
    return base / experiment.name / time.strftime("%Y%m%d-%H%M%S")


def check_resumable(run_dir: Path, experiment: Experiment) -> None:
    """Refuse to resume a directory that another experiment file started."""
    try:
        previous = (run_dir / SPEC_COPY).read_text()
    except OSError:
        raise SpecError(f"{run_dir} is not an experiment run directory (no {SPEC_COPY})") from None
    if previous != experiment.source:
        raise SpecError(f"{run_dir} was started from a different experiment file; give the same file")


def run_experiment(experiment: Experiment, settings: Settings, run_dir: Path, attach: bool = False,
                   console: Console | None = None) -> Results:
    """Measure every unfinished cell, then write and return results.json."""
    check_interpreters(experiment, settings)
    console = console or Console()
    paths = RunPaths(run_dir)
    for directory in (paths.root, paths.cells, paths.logs):
        directory.mkdir(parents=True, exist_ok=True)
    (run_dir / SPEC_COPY).write_text(experiment.source)
    settings = _run_settings(experiment, settings, paths, attach)
    broker = "attached" if attach else "external" if settings.broker_url else "embedded"
    with (_broker(settings, paths, attach) as settings,
          _latency_server(experiment, settings, paths) as (settings, latency),
          _flower(experiment, settings, paths, attach) as flower,
          delay.relays(experiment, settings, paths.logs, attach) as relays,
          connections.redis_client(settings.require_broker(), timeout=30) as client):
        environment = _cached(paths.part("environment"), lambda: _environment(experiment, settings, client, broker))
        if relays:
            _cached(paths.part("delay"), lambda: delay.describe(settings, relays, experiment.calibration_pings))
        ctx = Context(settings, client, paths.logs, _ideal_from(environment), attach,
                      FlowerCheck(flower) if flower else None, latency=latency, relays=relays)
        if relays:
            _cached(paths.part("round_trips"), lambda: delay.census(ctx, experiment))
        _run_cells(experiment, ctx, paths, console)
        if experiment.enqueue:
            bench = experiment.enqueue
            _cached(paths.part("enqueue"), lambda: enqueue_bench.run(settings, client, bench))
        if experiment.redis_benchmark:
            _cached(paths.part("redis_server"), lambda: redis_stats.server_ops_per_s(settings.require_broker()))
    results = assemble(experiment, paths)
    _write_json(paths.part("results"), results)
    return results


def _run_cells(experiment: Experiment, ctx: Context, paths: RunPaths, console: Console) -> None:
    todo = [cell for cell in experiment.cells if not paths.cell(cell).exists()]
    if len(todo) < len(experiment.cells):
        console.print(f"resuming: {len(experiment.cells) - len(todo)} of {len(experiment.cells)} cells already done")
    with CellProgress(console, experiment.cells, todo, ctx.ideal) as progress:
        ctx.on_progress = progress.tasks_done
        for group in worker_groups(todo, experiment.reuse_workers):
            with _shared_worker(ctx, group) as shared:
                for cell in group:
                    progress.start(cell)
                    result = cell_result(measure_cell(ctx, cell, shared))
                    _write_json(paths.cell(cell), result)
                    progress.finish(cell, result)


def worker_groups(cells: list[Cell], reuse: bool) -> list[list[Cell]]:
    """Cells in runs that can share one worker (same pool, concurrency, arguments, settings, broker RTT).

    Without reuse every cell is its own group (a fresh worker per cell, as start-up is measured).
    """
    if not reuse:
        return [[cell] for cell in cells]
    groups: dict[tuple[Any, ...], list[Cell]] = {}
    for cell in cells:
        key = (cell.pool, cell.concurrency, cell.worker_args, cell.overrides, cell.rtt_ms)
        groups.setdefault(key, []).append(cell)
    return list(groups.values())


def _shared_worker(ctx: Context, group: list[Cell]) -> contextlib.AbstractContextManager[Target | None]:
    if len(group) == 1 or ctx.attach:
        return contextlib.nullcontext(None)
    return worker_for(ctx, group[0], cell_settings(ctx, group[0]))


def assemble(experiment: Experiment, paths: RunPaths) -> Results:
    """results.json: environment, cells in file order, and the run-wide benchmarks.

    The environment's interpreters are completed here, from what each cell's worker reported.
    """
    cells: list[CellResult] = [json.loads(paths.cell(cell).read_text()) for cell in experiment.cells
                               if paths.cell(cell).exists()]
    environment = _read(paths.part("environment")) or {}
    environment["interpreters"] = interpreters_used(environment.get("interpreters", []), cells)
    results: Results = {
        "experiment": {"name": experiment.name, "description": experiment.description,
                       "digest": experiment.digest, "cells_planned": len(experiment.cells)},
        "environment": environment,
        "cells": cells,
        "enqueue": _read(paths.part("enqueue")),
        "redis": _redis_ceiling(_read(paths.part("redis_server")), cells),
    }  # fmt: skip
    delayed = _delay(paths)
    if delayed is not None:
        results["delay"] = delayed
    return results


def _delay(paths: RunPaths) -> Delay | None:
    """The delay mechanism, the relays' calibration and the round-trip census, for runs with an RTT."""
    described = _read(paths.part("delay"))
    if not described:
        return None
    return {"mechanism": described["mechanism"], "netem_available": described["netem_available"],
            "why": described["why"], "calibration": described["calibration"],
            "round_trips": _read(paths.part("round_trips")) or {}}


def _redis_ceiling(server: dict[str, Any] | None, cells: list[CellResult]) -> RedisCeiling | None:
    if not server:
        return None
    per_task = [c["redis"]["celery_commands_per_task"] for c in cells if c["redis"]["celery_commands_per_task"]]
    worst = max(per_task) if per_task else None
    ceiling = round(redis_stats.ceiling(server["ops_per_s"], worst), 1) if worst else None
    return {"method": server["method"], "ops_per_s": server["ops_per_s"], "per_command": server["per_command"],
            "celery_commands_per_task": worst, "ceiling_tasks_per_s": ceiling}


def _run_settings(experiment: Experiment, settings: Settings, paths: RunPaths, attach: bool) -> Settings:
    """The file's settings and a queue prefix of this run's own (attached: the stack's queues)."""
    meta = _cached(paths.part("run"), lambda: {"queue_prefix": f"x{int(time.time() * 1000) % 10**9:x}"})
    settings = experiment.apply_settings(settings)
    return settings if attach else settings.replace(queue_prefix=meta["queue_prefix"], state_dir=paths.root / ".lab")


@contextlib.contextmanager
def _broker(settings: Settings, paths: RunPaths, attach: bool) -> Iterator[Settings]:
    """The configured broker, or a fresh embedded Redis private to this run."""
    if settings.broker_url or attach:
        connections.check_broker(settings.require_broker())
        yield settings
        return
    shutil.rmtree(paths.root / "redis", ignore_errors=True)  # a resumed run starts from an empty server
    with RedisServer(paths.root / "redis") as server:
        yield settings.replace(broker_url=server.url)


@contextlib.contextmanager
def _latency_server(experiment: Experiment, settings: Settings,
                    paths: RunPaths) -> Iterator[tuple[Settings, LatencyServer | None]]:
    """A latency server of the run's own when a cell's tasks do socket I/O and none is configured."""
    if settings.latency_server or not any(cell.task.socket_io(cell.param) for cell in experiment.cells):
        yield settings, None
        return
    with LatencyServer(paths.logs / "latency-server.log") as server:
        yield settings.replace(latency_server=f"{server.host}:{server.port}"), server


@contextlib.contextmanager
def _flower(experiment: Experiment, settings: Settings, paths: RunPaths, attach: bool) -> Iterator[Flower | None]:
    if not experiment.flower:
        yield None
        return
    flower = Flower(settings if attach else settings.replace(flower_port=free_port()), paths.logs / "flower.log")
    if attach:
        if not flower.healthy():
            raise SpecError(f"experiment asks for Flower but none answers at {settings.flower_url}")
        yield flower
        return
    try:
        yield flower.start()
    finally:
        flower.stop()


def _environment(experiment: Experiment, settings: Settings, client: Any, broker: str) -> dict[str, Any]:
    """The machine and versions, and the CPU time of one task of each measured-cost workload."""
    env = describe(settings, client)
    measured = {call_label(c.workload, c.param): c for c in experiment.cells if c.needs_measured_cpu}
    env["task_cpu_s_before_run"] = {name: task_cpu_seconds(c.workload, c.param) for name, c in sorted(measured.items())}
    env.update({"loglevel": settings.loglevel, "visibility_timeout": settings.visibility_timeout,
                "flower": experiment.flower, "broker": broker, "enqueue_method": enqueue_bench.USED_BY_RUNNER})
    if any(POOLS[cell.pool].free_threaded for cell in experiment.cells):
        env["single_thread_square"] = _single_thread_costs(experiment, settings)
    return env


def _single_thread_costs(experiment: Experiment, settings: Settings) -> SingleThreadCost:
    """One square's CPU time alone on one thread, on each interpreter the run's pools use, in-process."""
    work = next((int(c.param["work"]) for c in experiment.cells if c.workload == "square"), DEFAULT_SQUARE_WORK)
    pythons = dict.fromkeys([sys.executable, *(python_for(settings, cell.pool) for cell in experiment.cells)])
    costs = [inprocess.single_thread_cost(python, work) for python in pythons]
    return {"work": work, "cpu_ms": {str(cost["python"]): round(float(cost["cpu_s"]) * 1000, 3) for cost in costs}}


def _ideal_from(environment: dict[str, Any]) -> Callable[[Cell, int], float | None]:
    """The model's ideal before the run (the summary recomputes it from the run's own task CPU)."""
    cpu = environment["task_cpu_s_before_run"]

    def ideal(cell: Cell, concurrency: int) -> float | None:
        return cell.task.ideal_per_s(cell.param, cell.pool, concurrency, cpu.get(call_label(cell.workload, cell.param)))

    return ideal


def _cached(path: Path, compute: Any) -> Any:
    """Compute once per run directory (a resumed run reuses what was measured)."""
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    _write_json(path, value)
    return value


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)
