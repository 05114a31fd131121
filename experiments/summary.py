"""A measured cell as one JSON object: the `results.json` schema, plus the detail behind it.

Repetitions are reduced to median and min–max (`Spread`); latency histograms of
all repetitions are merged before taking percentiles, so p99 is over every task
of the cell, in bounded memory.

The CPU ideal of a `square` repetition comes from the CPU time its own tasks took in the
worker (the ledger's `cpu`), not from a measurement made minutes earlier: this machine's
CPU speed drifts by up to ±20 % within minutes, which moved the efficiency of the same
prefork cell between 82 % and 115 %. Efficiency is taken per repetition, then the median.
The ideal measured before the run is kept beside it (`ideal_before_run_per_s`).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from config.pools import POOLS, pool_label
from experiments import redis_stats
from experiments.measure import CellRun, Repetition
from experiments.schema import CellResult, FlowerChecks, Percentiles, RedisCalls
from experiments.stats import Spread
from tasks.histogram import Histogram
from tasks.ledger import Timings
from tasks.workloads import efficiency


def cell_result(run: CellRun) -> CellResult:
    cell, reps = run.cell, run.repetitions
    throughput = Spread.of([_throughput(rep) for rep in reps])
    ideals = [_ideal(run, rep) for rep in reps]
    efficiencies = [efficiency(_throughput(rep), ideal) for rep, ideal in zip(reps, ideals, strict=True) if ideal]
    wall = Spread.of([rep.wall_per_s for rep in reps])
    timings = merged(rep.timings for rep in reps)
    everything = [*reps, *run.untimed]
    result: CellResult = {
        "id": cell.id,
        "label": cell.label,
        "pool": cell.pool,
        "python": run.target.python,
        "pool_label": pool_label(cell.pool, run.target.python),
        "gil_enabled": run.target.gil_enabled,
        "workload": cell.workload,
        "concurrency": run.target.concurrency,
        "tasks": cell.tasks,
        "repetitions": len(reps),
        "untimed_repetitions": len(run.untimed),
        "sent": sum(rep.accounting.sent for rep in everything),
        "completed": sum(rep.accounting.completed for rep in everything),
        "failed": sum(rep.accounting.failed for rep in everything),
        "queued": sum(rep.accounting.queued for rep in everything),
        "lost": sum(rep.accounting.lost for rep in everything),
        "duplicated": sum(rep.accounting.duplicated for rep in everything),
        "throughput_per_s": _round(throughput.median),
        "throughput_min": _round(throughput.low),
        "throughput_max": _round(throughput.high),
        "ideal_per_s": _round(_median(ideals)),
        "efficiency": _round(_median(efficiencies), 4),
        "usable_cores": POOLS[cell.pool].usable_cores(run.target.concurrency),
        "worker_memory_mb": _round(_max(rep.memory_mb for rep in reps), 1),
        "startup_s": _round(run.target.startup_s, 3),
        "p50_s": _percentile(timings.end_to_end, 0.5),
        "p95_s": _percentile(timings.end_to_end, 0.95),
        "p99_s": _percentile(timings.end_to_end, 0.99),
        "params": cell.param,
        "arrival": cell.arrival.mode,
        "arrival_rate_per_s": _round(run.rate_per_s),
        "timing": cell.timing,
        "worker_args": list(cell.worker_args),
        "settings": cell.setting_overrides,
        "attached": run.target.attached,
        "wall_per_s": _round(wall.median),
        "wall_min": _round(wall.low),
        "wall_max": _round(wall.high),
        "cpu_cores": _round(_median(rep.cpu_cores for rep in reps), 3),
        "others_cores": _round(_median(rep.others_cores for rep in reps), 3),
        "task_cpu_s": _round(_median(rep.timings.mean_task_cpu_s() for rep in reps), 6),
        "ideal_before_run_per_s": _round(run.ideal_per_s),
        "efficiency_before_run": _round(efficiency(throughput.median, run.ideal_per_s), 4),
        "efficiency_runs": [_round(e, 4) for e in efficiencies],
        "queue_wait": _percentiles(timings.queue_wait),
        "run_time": _percentiles(timings.run_time),
        "io_observed": _percentiles(timings.io_observed),
        "io_inflation": _io_inflation(run, timings),
        "latency_server_cpu_s": _round(_sum(rep.latency_cpu_s for rep in everything), 3),
        "latency_server_cores": _round(_latency_server_cores(everything), 3),
        "rtt_ms": cell.rtt_ms,
        "prefetch_multiplier": cell.setting_overrides.get("prefetch_multiplier"),
        "relay_cpu_s": _round(relay_cpu := _sum(rep.relay_cpu_s for rep in everything), 3),
        "relay_cpu_us_per_task": _round(_per_task_us(relay_cpu, everything), 1),
        "redis_cpu_us_per_task": _round(_per_task_us(_sum(rep.redis_cpu_s for rep in everything), everything), 1),
        "redis": _redis(reps),
        "flower": _flower(reps),
        "throughput_runs": [_round(_throughput(rep)) for rep in reps],
        "ledger_write_errors": run.ledger_errors,
        "healthy": all(rep.accounting.lost == rep.accounting.duplicated == rep.accounting.queued == 0
                       for rep in everything),
    }
    _add_paired_overhead(result, run)
    return result


def merged(parts: Any) -> Timings:
    total = Timings()
    for part in parts:
        total.merge(part)
    return total


def _add_paired_overhead(result: CellResult, run: CellRun) -> None:
    """A paired cell: the untimed twin's wall rate, and the overhead per pair, then the median."""
    if not run.untimed:
        return
    untimed = Spread.of([rep.wall_per_s for rep in run.untimed])
    runs = [1 - on.wall_per_s / off.wall_per_s for on, off in zip(run.repetitions, run.untimed, strict=True)]
    result["untimed"] = {"wall_per_s": _round(untimed.median), "wall_min": _round(untimed.low),
                         "wall_max": _round(untimed.high)}
    result["overhead"] = _round(statistics.median(runs), 4)
    result["overhead_runs"] = [_round(r, 4) for r in runs]


def _ideal(run: CellRun, rep: Repetition) -> float | None:
    """A repetition's ideal from its own tasks' mean CPU time in the worker (capped by a fixed arrival rate).

    Only workloads whose CPU cost is measured (square) differ from the ideal before the run.
    """
    cpu = rep.timings.mean_task_cpu_s()
    if not run.cell.needs_measured_cpu or not rep.timings.count or not cpu > 0:
        return run.ideal_per_s
    concurrency = run.target.concurrency
    ideal = run.cell.task.ideal_per_s(run.cell.param, run.cell.pool, concurrency, cpu)
    if ideal is None:
        return None
    return min(ideal, run.rate_per_s) if run.rate_per_s else ideal


def _io_inflation(run: CellRun, timings: Timings) -> float | None:
    """Observed over requested waiting for the median task: what the pool adds to a task's I/O."""
    costs = run.cell.task.costs
    requested = costs(run.cell.param).io_s if costs else 0.0
    observed = timings.io_observed.percentile(0.5)
    return _round(observed / requested, 3) if observed is not None and requested > 0 else None


def _throughput(rep: Repetition) -> float:
    """The drain rate from timestamps; counts-only runs (timing off) fall back to the wall rate."""
    return rep.drain_per_s if rep.timings.count and not math.isnan(rep.drain_per_s) else rep.wall_per_s


def _percentile(histogram: Histogram, q: float) -> float | None:
    return _round(histogram.percentile(q), 6)


def _percentiles(histogram: Histogram) -> Percentiles:
    return {"p50_s": _percentile(histogram, 0.5), "p95_s": _percentile(histogram, 0.95),
            "p99_s": _percentile(histogram, 0.99)}


def _redis(reps: list[Repetition]) -> RedisCalls:
    calls: dict[str, int] = {}
    for rep in reps:
        for name, count in rep.calls.items():
            calls[name] = calls.get(name, 0) + count
    ended = sum(rep.accounting.completed + rep.accounting.failed for rep in reps)
    per = redis_stats.per_task(calls, ended)
    return {
        "celery_commands_per_task": _round(per["celery"], 2),
        "harness_commands_per_task": _round(per["harness"], 2),
        "calls": dict(sorted(calls.items(), key=lambda item: -item[1])),
    }


def _flower(reps: list[Repetition]) -> FlowerChecks | None:
    checks = [rep.flower for rep in reps if rep.flower is not None]
    if not checks:
        return None
    return {"checked": len(checks), "mismatches": sum(not c["match"] for c in checks), "runs": checks}


def _per_task_us(cpu_s: float | None, reps: list[Repetition]) -> float | None:
    """The relay's CPU per task that ended: what delaying one task's Redis traffic cost it."""
    ended = sum(rep.accounting.completed + rep.accounting.failed for rep in reps)
    return cpu_s / ended * 1e6 if cpu_s is not None and ended else None


def _latency_server_cores(reps: list[Repetition]) -> float | None:
    """The latency server's CPU over the repetitions' drain time: the cores it took from the worker's machine."""
    measured = [(rep.latency_cpu_s, rep.wall_s) for rep in reps if rep.latency_cpu_s is not None and rep.wall_s]
    seconds = sum(wall for _, wall in measured)
    return sum(cpu for cpu, _ in measured) / seconds if seconds > 0 else None


def _sum(values: Any) -> float | None:
    items = [v for v in values if v is not None]
    return sum(items) if items else None


def _median(values: Any) -> float | None:
    items = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(items) if items else None


def _max(values: Any) -> float | None:
    items = [v for v in values if v is not None]
    return max(items) if items else None


def _round(value: float | None, digits: int = 2) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits)
