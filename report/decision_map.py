"""The decision map as pictures and map.md: which pool wins for a task of a given CPU share, and by how much.

Three heatmaps over (CPU share of the task, concurrency), each square naming the winning pool with
its number, its ratio to the runner-up and its memory (PSS of the worker's tree): capacity (tasks/s from a full
queue), p99 end to end (tasks arriving at one fixed rate for every pool), and tasks/s per MB of
worker memory. Then the convoy figure (experiments.convoy). Everything is computed from
results.json and convoy.json, so `lab report` can draw it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from experiments.schema import CellResult, ConvoyPoint, Results
from report import findings, html, markdown, verdicts
from report.document import Block, Bullets, Heading, Image, Paragraph, Table
from report.plots import COLOURS

Key = tuple[float, int]  # (CPU share, concurrency)


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    value: Callable[[CellResult], float | None]
    higher_is_better: bool
    unit: str
    latency: bool  # measured on the fixed-rate cells, not the capacity (full-queue) ones


def _per_mb(cell: CellResult) -> float | None:
    if not cell["throughput_per_s"] or not cell["worker_memory_mb"]:
        return None
    return cell["throughput_per_s"] / cell["worker_memory_mb"]


METRICS = (
    Metric("capacity", "Capacity: tasks/s with a full queue", lambda c: c["throughput_per_s"], True, "/s", False),
    Metric("latency", "p99 end to end at one fixed arrival rate per concurrency", lambda c: c["p99_s"], False, "s",
           True),
    Metric("per_mb", "Tasks/s per MB of worker memory (PSS)", _per_mb, True, "/s/MB", False),
)


def cpu_share(cell: CellResult) -> float:
    cpu, io = float(cell["params"]["cpu_ms"]), float(cell["params"]["io_ms"])
    return cpu / (cpu + io) if cpu + io else 0.0


def grid(cells: Sequence[CellResult], latency: bool) -> dict[Key, dict[str, CellResult]]:
    """The map's cells by (CPU share, concurrency), then by pool."""
    squares: dict[Key, dict[str, CellResult]] = {}
    for cell in cells:
        if cell["workload"] == "mixed" and (cell["arrival"] == "rate") == latency:
            squares.setdefault((cpu_share(cell), cell["concurrency"]), {})[cell["pool"]] = cell
    return squares


@dataclass(frozen=True)
class Ranking:
    winner: str
    value: float
    runner_up: str | None
    ratio: float | None  # how much better than the runner-up (>= 1)
    memory_mb: float | None


def rank(square: dict[str, CellResult], metric: Metric) -> Ranking | None:
    values = {pool: v for pool, cell in square.items() if (v := metric.value(cell)) is not None and v > 0}
    if not values:
        return None
    order = sorted(values, key=lambda pool: values[pool], reverse=metric.higher_is_better)
    best = order[0]
    second = order[1] if len(order) > 1 else None
    ratio = None
    if second is not None:
        ratio = values[best] / values[second] if metric.higher_is_better else values[second] / values[best]
    return Ranking(best, values[best], second, ratio, square[best]["worker_memory_mb"])


def heatmap(cells: Sequence[CellResult], metric: Metric) -> Figure | None:
    squares = grid(cells, metric.latency)
    if not squares:
        return None
    shares = sorted({share for share, _ in squares})
    levels = sorted({c for _, c in squares})
    pools = sorted({pool for square in squares.values() for pool in square})
    figure = Figure(figsize=(2.3 * len(levels) + 1.5, 0.95 * len(shares) + 1.4), layout="constrained")
    axes = figure.add_subplot()
    winners = [[-1] * len(levels) for _ in shares]
    for (share, level), square in squares.items():
        ranking = rank(square, metric)
        if ranking is None:
            continue
        row, col = shares.index(share), levels.index(level)
        winners[row][col] = pools.index(ranking.winner)
        axes.text(col, row, _label(ranking, metric), ha="center", va="center", fontsize=7.5)
    colours = ListedColormap([COLOURS.get(pool, "tab:gray") for pool in pools])
    axes.imshow(winners, cmap=colours, vmin=0, vmax=max(len(pools) - 1, 1), alpha=0.35, aspect="auto")
    axes.set_xticks(range(len(levels)), [f"c={level}" for level in levels])
    axes.set_yticks(range(len(shares)), [f"{share:.0%} CPU" for share in shares])
    axes.set_title(metric.title, fontsize=10)
    return figure


def _label(ranking: Ranking, metric: Metric) -> str:
    value = f"{ranking.value * 1000:.0f} ms" if metric.unit == "s" else f"{ranking.value:.3g}{metric.unit}"
    versus = f"x{ranking.ratio:.2f} vs {ranking.runner_up}" if ranking.ratio else "alone"
    memory = f"{ranking.memory_mb:.0f} MB" if ranking.memory_mb else ""
    return f"{ranking.winner}\n{value}\n{versus}\n{memory}"


def convoy_figure(points: Sequence[ConvoyPoint]) -> Figure | None:
    if not points:
        return None
    figure = Figure(figsize=(11, 4), layout="constrained")
    observed, end_to_end = figure.subplots(1, 2)
    for pool in sorted({p["pool"] for p in points}):
        series = sorted((p for p in points if p["pool"] == pool), key=lambda p: p["cpu_share"])
        shares = [p["cpu_share"] * 100 for p in series]
        colour = COLOURS.get(pool)
        observed.plot(shares, [_ms(p["io_p50_s"]) for p in series], marker="o", color=colour, label=f"{pool} p50")
        observed.plot(shares, [_ms(p["io_p99_s"]) for p in series], marker="^", linestyle="--", color=colour,
                      label=f"{pool} p99")
        end_to_end.plot(shares, [_ms(p["io_tasks_p99_s"]) for p in series], marker="o", color=colour, label=pool)
    asked = points[0]["io_requested_s"] * 1000
    observed.axhline(asked, color="black", linestyle=":", label=f"asked {asked:g} ms")
    observed.set(title="socket tasks: I/O time they observed", xlabel="% of tasks that are 50 ms CPU", ylabel="ms")
    end_to_end.set(title="socket tasks: p99 end to end", xlabel="% of tasks that are 50 ms CPU", ylabel="ms")
    for axes in (observed, end_to_end):
        axes.set_yscale("log")
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
    return figure


def _ms(seconds: float | None) -> float:
    return (seconds or 0.0) * 1000


def write_map_report(results: Results, convoy: list[ConvoyPoint], out: Path) -> Path:
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    images: dict[str, str] = {}
    figures = {f"map-{metric.name}.png": heatmap(results["cells"], metric) for metric in METRICS}
    figures["convoy.png"] = convoy_figure(convoy)
    for name, figure in figures.items():
        if figure is not None:
            figure.savefig(plot_dir / name, dpi=110, bbox_inches="tight")
            images[name] = f"plots/{name}"
    blocks = map_blocks(results, convoy, images)
    (out / "map.md").write_text(markdown.render(blocks))
    (out / "map.html").write_text(html.render(blocks, "The decision map"))
    return out / "map.md"


def map_blocks(results: Results, convoy: list[ConvoyPoint], images: dict[str, str]) -> list[Block]:
    cells = results["cells"]
    out: list[Block] = [Heading("The decision map: threads, processes or greenlets for a task like yours", 1),
                        Paragraph(results["experiment"]["description"])]
    out += [Image(images[f"map-{m.name}.png"], m.title) for m in METRICS if f"map-{m.name}.png" in images]
    out += [Heading("Every square"), _squares_table(cells), Paragraph(_legend())]
    out += _convoy_section(convoy, images)
    misses = verdicts.model_misses([c for c in cells if c["arrival"] != "rate"])
    out += [Heading("Where the model misses"), Bullets(tuple(
        f"`{c['id']}`: {c['efficiency']:.0%} of the model ({c['throughput_per_s']}/s against {c['ideal_per_s']}/s)"
        + (f", I/O inflated {c['io_inflation']:.2f}x" if c.get("io_inflation") else "") + _cores_text(c)
        for c in misses)
        or ("every cell within the tolerance",))]
    totals = findings.accounting(cells)
    out.append(Paragraph(f"Accounting over all cells: sent {totals['sent']}, completed {totals['completed']}, "
                         f"failed {totals['failed']}, lost {totals['lost']}, duplicated {totals['duplicated']}."))
    return out


def _cores_text(cell: CellResult) -> str:
    """The worker's busy cores against the model's U, and what else kept the machine busy meanwhile."""
    if cell.get("cpu_cores") is None:
        return ""
    others = cell.get("others_cores")
    return (f", worker {cell['cpu_cores']:.2f} of {cell.get('usable_cores')} cores busy"
            + (f" ({others:.2f} busy outside it)" if others is not None else ""))


def _squares_table(cells: Sequence[CellResult]) -> Table:
    capacity, latency = grid(cells, False), grid(cells, True)
    pools = sorted({pool for square in capacity.values() for pool in square})
    rows = []
    for key in sorted(capacity):
        square = capacity[key]
        ranking = rank(square, METRICS[0])
        fast = rank(latency.get(key, {}), METRICS[1])
        rows.append((f"{key[0]:.0%}", str(key[1]),
                     *(_cell_text(square.get(pool)) for pool in pools),
                     f"{ranking.winner} x{ranking.ratio:.2f}" if ranking and ranking.ratio else "-",
                     f"{fast.winner} ({fast.value * 1000:.0f} ms)" if fast else "-"))
    headers = ("CPU share", "c", *(f"{pool} /s (eff., MB)" for pool in pools), "capacity winner", "p99 winner")
    return Table(headers, tuple(rows))


def _cell_text(cell: CellResult | None) -> str:
    if cell is None or cell["throughput_per_s"] is None:
        return "-"
    eff = f"{cell['efficiency']:.0%}" if cell["efficiency"] is not None else "-"
    memory = f"{cell['worker_memory_mb']:.0f}" if cell["worker_memory_mb"] else "-"
    return f"{cell['throughput_per_s']:.1f} ({eff}, {memory})"


def _legend() -> str:
    return ("A task of 50 ms: cpu_ms of pure Python (the thread's own CPU time), the rest a real request to the "
            "latency server. Capacity is the median drain rate over the repetitions of a queue kept full (sent in one "
            "burst, or prefilled); eff. is measured / the "
            "model min(c / 50 ms, U / cpu); MB is the worker's PSS. The p99 squares ran every pool at one rate per "
            "concurrency, half the slowest pool's model capacity there.")


def _convoy_section(convoy: list[ConvoyPoint], images: dict[str, str]) -> list[Block]:
    if not convoy:
        return []
    rows = tuple((p["pool"], str(p["concurrency"]), f"{p['cpu_share']:.0%}", f"{_ms(p['io_p50_s']):.1f}",
                  f"{_ms(p['io_p99_s']):.1f}", f"{_ms(p['io_tasks_p99_s']):.1f}", f"{_ms(p['cpu_tasks_p99_s']):.1f}",
                  str(p["lost"])) for p in convoy)
    text = ("5 ms socket tasks and 50 ms CPU tasks in one queue, arriving at a fixed total rate, on a threads and a "
            "prefork worker at the same concurrency. Under the GIL, a thread whose socket answered waits for the GIL "
            "held by CPU-bound threads (the convoy effect, bpo-7946); processes are preempted by the kernel.")
    blocks: list[Block] = [Heading("The convoy: what CPU tasks do to I/O tasks on the same worker"), Paragraph(text),
                           Table(("pool", "c", "CPU tasks", "I/O p50 ms", "I/O p99 ms", "socket tasks p99 ms",
                                  "CPU tasks p99 ms", "lost"), rows)]
    if "convoy.png" in images:
        blocks.append(Image(images["convoy.png"], "socket tasks' observed I/O and p99 against the CPU share"))
    return blocks
