"""Facts computed from results.json: accounting totals, harness overhead, producer margin, Flower.

Each function returns plain numbers or None when the experiment did not measure that thing; the
wording lives in `report.content`, and the verdicts in `report.verdicts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypedDict, get_args

from experiments.schema import CellResult, Results, WallRates

Counted = Literal["sent", "completed", "failed", "queued", "lost", "duplicated"]
COUNTED: tuple[Counted, ...] = get_args(Counted)


class Overhead(TypedDict):
    on: CellResult
    off: CellResult | WallRates  # the twin cell, or a paired cell's untimed repetitions
    overhead: float | None
    runs: list[float | None]


def accounting(cells: Sequence[CellResult]) -> dict[str, int]:
    totals: dict[str, int] = {key: sum(c[key] for c in cells) for key in COUNTED}
    totals["unhealthy_cells"] = sum(not c.get("healthy", True) for c in cells)
    return totals


def overheads(cells: Sequence[CellResult]) -> list[Overhead]:
    """Timing on vs off by wall-clock rate: paired cells (`timing = "paired"`), or twin cells.

    A paired cell alternates timed and untimed repetitions on one worker; its overhead is the
    median of the pairs' differences, `runs` their spread. Twin cells (one with `timing = false`)
    ran minutes apart and compare medians.
    """
    def shape(c: CellResult) -> tuple[Any, ...]:
        return (c["label"], c["pool"], c["workload"], c["concurrency"], c["tasks"], str(c["params"]), c["arrival"])

    off = {shape(c): c for c in cells if not c["timing"]}
    rows: list[Overhead] = []
    for on in cells:
        untimed = on.get("untimed")
        if untimed:
            rows.append({"on": on, "off": untimed, "overhead": on.get("overhead"), "runs": on.get("overhead_runs", [])})
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


def flower_checks(cells: Sequence[CellResult]) -> dict[str, int] | None:
    checked = [flower for c in cells if (flower := c.get("flower"))]
    if not checked:
        return None
    return {"runs": sum(f["checked"] for f in checked), "mismatches": sum(f["mismatches"] for f in checked)}
