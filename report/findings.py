"""Facts computed from results.json: accounting totals, harness overhead, producer margin, Flower.

Each function returns plain numbers or None when the experiment did not measure that thing; the
wording lives in `report.content`, and the verdicts in `report.verdicts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from experiments.schema import Results

Cell = Mapping[str, Any]  # a CellResult, or a part of one in tests


def accounting(cells: Sequence[Cell]) -> dict[str, int]:
    keys = ("sent", "completed", "failed", "queued", "lost", "duplicated")
    totals = {key: sum(c[key] for c in cells) for key in keys}
    totals["unhealthy_cells"] = sum(not c.get("healthy", True) for c in cells)
    return totals


def overheads(cells: Sequence[Cell]) -> list[dict[str, Any]]:
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


def producer_margin(results: Results) -> dict[str, Any] | None:
    enqueue = results.get("enqueue")
    if not enqueue:
        return None
    used = enqueue["methods"][enqueue["used"]]["min_per_s"]
    drains = [c["throughput_max"] for c in results["cells"] if c["throughput_max"]]
    fastest = max(drains) if drains else None
    return {"used": enqueue["used"], "enqueue_min_per_s": used, "fastest_drain_per_s": fastest,
            "margin": used / fastest if fastest else None}  # fmt: skip


def flower_checks(cells: Sequence[Cell]) -> dict[str, int] | None:
    checked = [c["flower"] for c in cells if c.get("flower")]
    if not checked:
        return None
    return {"runs": sum(f["checked"] for f in checked), "mismatches": sum(f["mismatches"] for f in checked)}
