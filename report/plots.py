"""The report's PNG plots, from results.json cells (matplotlib, no display needed).

The first plot carries the verdict: throughput against concurrency for each pool,
with the ideal line, one panel per workload. Cells that lost or duplicated tasks
are drawn with a red cross, never left out.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from experiments.schema import CellResult
from report.findings import overheads
from report.verdicts import MODEL_TOLERANCE
from tasks.workloads import WORKLOADS, call_label

Cell = CellResult
COLOURS = {"prefork": "tab:blue", "threads": "tab:orange", "gevent": "tab:green", "eventlet": "tab:purple",
           "threads-ft": "tab:red", "prefork-ft": "tab:cyan",
           "solo": "tab:gray"}  # fmt: skip
MARKERS = dict(zip(WORKLOADS, itertools.cycle("os^DvP*X"), strict=False))  # one per workload of the catalogue


Measure = Literal["throughput_per_s", "throughput_min", "throughput_max", "ideal_per_s", "efficiency",
                  "worker_memory_mb", "startup_s"]  # the cell figures plots draw


def num(cell: Cell, field: Measure) -> float:
    """A numeric field of a cell as a float (None, for a cell that did not measure it, as 0)."""
    return float(cell[field] or 0.0)


def label_of(cell: Cell) -> str:
    """The pool as reports name it: `threads@3.13t` for one that ran on a free-threaded Python."""
    return str(cell.get("pool_label") or cell["pool"])


def workload_key(cell: Cell) -> str:
    return call_label(cell["workload"], cell["params"])


def baseline(cell: Cell) -> bool:
    """A cell on the run's common settings (no per-cell knob), so its points belong on one curve."""
    return not cell.get("settings") and not cell.get("worker_args")


def throughput_cells(cells: Iterable[Cell]) -> list[Cell]:
    """Baseline cells that measure capacity against an ideal: prefilled or burst queue, instrumentation on."""
    return [c for c in cells if c["arrival"] != "rate" and c["timing"] and c["throughput_per_s"] is not None
            and c["ideal_per_s"] is not None and baseline(c)]


def write_all(cells: list[Cell], out: Path, verdict: str) -> list[tuple[str, str]]:
    """Write every plot that has data; return (file name, caption) pairs in reading order."""
    out.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str]] = []
    for name, caption, draw in (
        ("throughput.png", "Throughput vs concurrency per pool, with the ideal (dashed)", _throughput),
        ("efficiency.png", f"Efficiency (measured / ideal) vs concurrency; the model's tolerance "
                           f"(±{MODEL_TOLERANCE:.0%}) dotted", _efficiency),
        ("memory.png", "Worker memory (PSS of parent + children) vs concurrency", _memory),
        ("latency.png", "End-to-end and run-time latency percentiles per cell", _latency),
        ("overhead.png", "Harness overhead: the same cell with the timing instrumentation on and off", _overhead),
    ):
        figure = draw(cells, verdict)
        if figure is not None:
            figure.savefig(out / name, dpi=110, bbox_inches="tight")
            made.append((name, caption))
    return made


def _by_group(cells: Iterable[Cell]) -> dict[str, list[Cell]]:
    groups: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        groups[workload_key(cell)].append(cell)
    return dict(groups)


def _series(cells: Iterable[Cell], field: Measure) -> dict[str, list[Cell]]:
    series: dict[str, list[Cell]] = defaultdict(list)
    for cell in sorted(cells, key=lambda c: c["concurrency"]):
        if cell.get(field) is not None:
            series[cell["pool"]].append(cell)
    return dict(series)


def _log_x(axes: Axes, cells: list[Cell]) -> None:
    levels = sorted({c["concurrency"] for c in cells})
    if levels and levels[-1] / levels[0] >= 8:
        axes.set_xscale("log", base=2)
    axes.set_xticks(levels, [str(level) for level in levels])
    axes.set_xlabel("concurrency")


def _mark_unhealthy(axes: Axes, cells: list[Cell], field: Measure) -> None:
    bad = [c for c in cells if not c.get("healthy", True) and c.get(field) is not None]
    if bad:
        axes.scatter([c["concurrency"] for c in bad], [num(c, field) for c in bad], marker="x", s=120,
                     color="red", zorder=5, label="lost/duplicated tasks")  # fmt: skip


def _throughput(cells: list[Cell], verdict: str) -> Figure | None:
    groups = _by_group(throughput_cells(cells))
    if not groups:
        return None
    figure = Figure(figsize=(6 * len(groups), 4.6), layout="constrained")
    for axes, (group, members) in zip(figure.subplots(1, len(groups), squeeze=False)[0], groups.items(), strict=True):
        for pool, series in _series(members, "throughput_per_s").items():
            x = [c["concurrency"] for c in series]
            y = [num(c, "throughput_per_s") for c in series]
            low = [max(0.0, v - num(c, "throughput_min")) for v, c in zip(y, series, strict=True)]
            high = [max(0.0, num(c, "throughput_max") - v) for v, c in zip(y, series, strict=True)]
            axes.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, color=COLOURS.get(pool),
                          label=label_of(series[0]))
            for cell in series:
                _annotate(axes, cell)
        ideal = _ideal_line(members)
        if ideal:
            axes.plot(*zip(*ideal, strict=True), linestyle="--", marker="_", markersize=24, color="black",
                      label="ideal")
        _mark_unhealthy(axes, members, "throughput_per_s")
        _log_x(axes, members)
        axes.set_ylabel("tasks / s (median, min–max)")
        axes.set_title(group)
        top = max([num(c, "throughput_max") for c in members] + [num(c, "ideal_per_s") for c in members])
        axes.set_ylim(0, top * 1.25)
        axes.legend(loc="upper left", fontsize=8)
    figure.suptitle(verdict, fontsize=10)
    return figure


def _ideal_line(members: list[Cell]) -> list[tuple[int, float]]:
    """One ideal per concurrency: the median over pools (a CPU ideal is measured in each cell)."""
    by_concurrency: dict[int, list[float]] = {}
    for cell in members:
        if cell["ideal_per_s"]:
            by_concurrency.setdefault(cell["concurrency"], []).append(num(cell, "ideal_per_s"))
    return [(c, statistics.median(ideals)) for c, ideals in sorted(by_concurrency.items())]


def _annotate(axes: Axes, cell: Cell) -> None:
    """The number itself next to its point, with the efficiency when there is an ideal."""
    text = f"{cell['throughput_per_s']:.0f}/s"
    if cell["efficiency"] is not None:
        text += f" ({cell['efficiency']:.0%})"
    if cell["worker_memory_mb"] is not None:
        text += f", {cell['worker_memory_mb']:.0f} MB"
    above = cell["pool"] != "prefork"
    axes.annotate(text, (cell["concurrency"], cell["throughput_per_s"]), textcoords="offset points",
                  xytext=(6, 5 if above else -12), fontsize=8, color=COLOURS.get(cell["pool"], "black"))


def _efficiency(cells: list[Cell], _verdict: str) -> Figure | None:
    members = [c for c in throughput_cells(cells) if c["efficiency"] is not None]
    if not members:
        return None
    figure = Figure(figsize=(7, 4.4), layout="constrained")
    axes = figure.add_subplot()
    for group, group_cells in _by_group(members).items():
        for pool, series in _series(group_cells, "efficiency").items():
            axes.plot([c["concurrency"] for c in series], [num(c, "efficiency") for c in series],
                      marker=MARKERS.get(series[0]["workload"], "o"), color=COLOURS.get(pool),
                      label=f"{label_of(series[0])} · {group}")  # fmt: skip
    _mark_unhealthy(axes, members, "efficiency")
    for bound in (1 - MODEL_TOLERANCE, 1 + MODEL_TOLERANCE):  # a cell outside is a finding (report.verdicts)
        axes.axhline(bound, linestyle=":", color="gray",
                     label=f"model tolerance (±{MODEL_TOLERANCE:.0%})" if bound < 1 else None)
    axes.set_ylim(0, max(1 + MODEL_TOLERANCE, *(num(c, "efficiency") for c in members)) * 1.1)
    axes.set_ylabel("measured / ideal")
    _log_x(axes, members)
    axes.legend(fontsize=8)
    return figure


def _memory(cells: list[Cell], _verdict: str) -> Figure | None:
    members = [c for c in cells if c["worker_memory_mb"] is not None and c["timing"] and baseline(c)]
    if not members:
        return None
    figure = Figure(figsize=(7, 4.4), layout="constrained")
    axes = figure.add_subplot()
    for group, group_cells in _by_group(members).items():
        for pool, series in _series(group_cells, "worker_memory_mb").items():
            axes.plot([c["concurrency"] for c in series], [num(c, "worker_memory_mb") for c in series],
                      marker=MARKERS.get(series[0]["workload"], "o"), color=COLOURS.get(pool),
                      label=f"{label_of(series[0])} · {group}")  # fmt: skip
    axes.set_ylabel("MB (PSS, parent + children)")
    axes.set_ylim(bottom=0)
    _log_x(axes, members)
    axes.legend(fontsize=8)
    return figure


def _latency(cells: list[Cell], _verdict: str) -> Figure | None:
    members = [c for c in cells if c["p50_s"] is not None]
    if not members:
        return None
    figure = Figure(figsize=(11, 1.2 + 0.32 * len(members)), layout="constrained")
    panels = figure.subplots(1, 2, sharey=True)
    labels = [f"{c['id']}{'' if c.get('healthy', True) else ' (!)'}" for c in members]
    for axes, (title, pick) in zip(panels, (("end to end (sent → finished)", lambda c: c),
                                            ("run time (started → finished)", lambda c: c["run_time"])), strict=True):
        for offset, (q, colour) in enumerate((("p50_s", "tab:green"), ("p95_s", "tab:orange"), ("p99_s", "tab:red"))):
            positions = [i + (offset - 1) * 0.27 for i in range(len(members))]
            axes.barh(positions, [pick(c)[q] or 0 for c in members], height=0.27, color=colour, label=q[:-2])
        axes.set_xscale("log")
        axes.set_xlabel("seconds (log)")
        axes.set_title(title)
    panels[0].set_yticks(range(len(members)), labels, fontsize=7)
    panels[0].invert_yaxis()
    figure.legend(*panels[1].get_legend_handles_labels(), loc="outside right upper")
    return figure


def _overhead(cells: list[Cell], _verdict: str) -> Figure | None:
    pairs = overheads(cells)
    if not pairs:
        return None
    figure = Figure(figsize=(2.2 + 1.6 * len(pairs), 3.8), layout="constrained")
    axes = figure.add_subplot()
    for i, pair in enumerate(pairs):
        rates = (pair["on"]["wall_per_s"] or 0.0, pair["off"]["wall_per_s"] or 0.0)
        for offset, (side, rate, colour) in enumerate((("on", rates[0], "tab:orange"), ("off", rates[1], "tab:gray"))):
            axes.bar(i + (offset - 0.5) * 0.38, rate, width=0.38, color=colour,
                     label=f"timing {side}" if i == 0 else None)  # fmt: skip
        axes.annotate(f"{pair['overhead']:+.1%}", (i, max(rates)),
                      textcoords="offset points", xytext=(0, 4), ha="center", fontsize=9)
    axes.set_xticks(range(len(pairs)), [p["on"]["id"] for p in pairs], fontsize=7)
    axes.set_ylabel("tasks / s (wall clock, median)")
    axes.legend(fontsize=8, loc="lower right")
    return figure
