"""The facts a reader wants first, computed from results.json: verdicts, overhead, producer margin.

Each function returns plain numbers or None when the experiment did not measure
that thing; the wording lives in `report.content`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Cell = dict[str, Any]


def _capacity(cells: Iterable[Cell]) -> list[Cell]:
    """Capacity cells on the run's common settings (no per-cell knob)."""
    return [c for c in cells if c["arrival"] != "rate" and c["timing"] and c["throughput_per_s"]
            and not c.get("settings") and not c.get("worker_args")]


def _pair(cells: list[Cell], workload: str, cores: int) -> tuple[Cell, Cell] | None:
    """The prefork and threads cells of one workload at the concurrency where prefork can use every core."""
    by_pool: dict[str, dict[int, Cell]] = {"prefork": {}, "threads": {}}
    for cell in _capacity(cells):
        if cell["workload"] == workload and cell["pool"] in by_pool:
            by_pool[cell["pool"]][cell["concurrency"]] = cell
    common = sorted(set(by_pool["prefork"]) & set(by_pool["threads"]))
    if not common:
        return None
    fitting = [level for level in common if level <= cores]
    level = fitting[-1] if fitting else common[0]
    return by_pool["prefork"][level], by_pool["threads"][level]


def cpu_verdict(cells: list[Cell], cores: int) -> dict[str, Any] | None:
    pair = _pair(cells, "square", cores)
    if pair is None:
        return None
    prefork, threads = pair
    return {
        "concurrency": prefork["concurrency"],
        "prefork_per_s": prefork["throughput_per_s"],
        "threads_per_s": threads["throughput_per_s"],
        "ratio": prefork["throughput_per_s"] / threads["throughput_per_s"],
        "prefork_efficiency": prefork["efficiency"],
        "threads_efficiency": threads["efficiency"],
    }


def io_verdict(cells: list[Cell]) -> dict[str, Any] | None:
    sleeps = [c for c in _capacity(cells) if c["workload"] == "sleep"]
    if not sleeps:
        return None
    slowest = max(c["params"].get("seconds", 0) for c in sleeps)  # the I/O-bound curve, not Celery's ceiling
    group = [c for c in sleeps if c["params"].get("seconds", 0) == slowest]
    threads = [c for c in group if c["pool"] == "threads"]
    if not threads:
        return None
    preforks = {c["concurrency"]: c for c in group if c["pool"] == "prefork"}
    both = [c for c in threads if c["concurrency"] in preforks]
    top = max(both or threads, key=lambda c: c["concurrency"])
    threads = [c for c in threads if c["concurrency"] <= top["concurrency"]]
    prefork = preforks.get(top["concurrency"])
    worst = min(threads, key=lambda c: c["efficiency"] or 0)
    return {
        "concurrency": top["concurrency"],
        "threads_per_s": top["throughput_per_s"],
        "threads_efficiency": top["efficiency"],
        "min_threads_efficiency": worst["efficiency"],
        "min_at": worst["concurrency"],
        "threads_memory_mb": top["worker_memory_mb"],
        "prefork_memory_mb": prefork["worker_memory_mb"] if prefork else None,
        "prefork_efficiency": prefork["efficiency"] if prefork else None,
    }


def accounting(cells: list[Cell]) -> dict[str, int]:
    keys = ("sent", "completed", "failed", "queued", "lost", "duplicated")
    totals = {key: sum(c[key] for c in cells) for key in keys}
    totals["unhealthy_cells"] = sum(not c.get("healthy", True) for c in cells)
    return totals


def overheads(cells: list[Cell]) -> list[dict[str, Any]]:
    """Timing on vs off by wall-clock rate: paired cells (`timing = "paired"`), or twin cells.

    A paired cell alternates timed and untimed repetitions on one worker; its overhead is the
    median of the pairs' differences, `runs` their spread. Twin cells (one with `timing = false`)
    ran minutes apart and compare medians.
    """
    def shape(c: Cell) -> tuple[Any, ...]:
        return (c["label"], c["pool"], c["workload"], c["concurrency"], c["tasks"], str(c["params"]), c["arrival"])

    off = {shape(c): c for c in cells if not c["timing"]}
    rows = []
    for on in cells:
        if on.get("untimed"):
            rows.append({"on": on, "off": on["untimed"], "overhead": on["overhead"], "runs": on["overhead_runs"]})
            continue
        twin = off.get(shape(on)) if on["timing"] else None
        if twin and on["wall_per_s"] and twin["wall_per_s"]:
            rows.append({"on": on, "off": twin, "overhead": 1 - on["wall_per_s"] / twin["wall_per_s"], "runs": []})
    return rows


def producer_margin(results: dict[str, Any]) -> dict[str, Any] | None:
    enqueue = results.get("enqueue")
    if not enqueue:
        return None
    used = enqueue["methods"][enqueue["used"]]["min_per_s"]
    drains = [c["throughput_max"] for c in results["cells"] if c["throughput_max"]]
    fastest = max(drains) if drains else None
    return {"used": enqueue["used"], "enqueue_min_per_s": used, "fastest_drain_per_s": fastest,
            "margin": used / fastest if fastest else None}  # fmt: skip


def flower_checks(cells: list[Cell]) -> dict[str, int] | None:
    checked = [c["flower"] for c in cells if c.get("flower")]
    if not checked:
        return None
    return {"runs": sum(f["checked"] for f in checked), "mismatches": sum(f["mismatches"] for f in checked)}


def headline(results: dict[str, Any]) -> str:
    """One line for the first plot's title and the report's opening."""
    parts = []
    cpu = cpu_verdict(results["cells"], cores(results))
    if cpu:
        parts.append(f"CPU: prefork {cpu['ratio']:.2f}x threads at c={cpu['concurrency']}"
                     f" ({_pct(cpu['prefork_efficiency'])} of ideal)")
    io = io_verdict(results["cells"])
    if io:
        memory = f", {io['threads_memory_mb']:.0f} MB vs prefork {io['prefork_memory_mb']:.0f} MB" \
            if io["threads_memory_mb"] and io["prefork_memory_mb"] else ""
        parts.append(f"I/O: threads {_pct(io['threads_efficiency'])} of ideal at c={io['concurrency']}{memory}")
    totals = accounting(results["cells"])
    parts.append(f"{totals['lost']} lost, {totals['duplicated']} duplicated")
    return "; ".join(parts)


def cores(results: dict[str, Any]) -> int:
    return int(results.get("environment", {}).get("cpu_count") or 1)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
