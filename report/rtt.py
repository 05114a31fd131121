"""Broker latency: throughput and p99 against the RTT between the workers and Redis, beside the model.

The model (tasks.workloads.broker_bound_per_s) has two measured inputs per pool: the consumer's
time per task with Redis direct (the same pool and prefetch on `noop` at RTT 0), and the serial
round trips on its path per task: the consumer's cycle per task in the MONITOR census behind the
largest RTT (experiments.round_trips), less its time per task direct, divided by that RTT.
A `square` cell is also held to its CPU bound (model_per_s, from its own tasks' CPU time): the
model is the smaller of the two. Efficiency = measured / model; a cell further than the lab's
tolerance (report.verdicts.MODEL_TOLERANCE) from it is said, with the figure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from experiments.schema import CellResult, Results
from report.document import Block, Bullets, Heading, Image, Paragraph, Table
from report.plots import COLOURS, label_of
from report.verdicts import MODEL_TOLERANCE, misses_model
from tasks.workloads import broker_bound_per_s, call_label, efficiency

PLOT = "rtt-throughput.png"
PREFETCH_STYLES = {1: ":", 4: "-", 16: "-."}
PREFETCH_MARKERS = {1: "v", 4: "o", 16: "^"}
Row = dict[str, Any]


def delayed(results: Results) -> bool:
    return "delay" in results and any("rtt_ms" in cell for cell in results["cells"])


def _key(cell: CellResult) -> tuple[str, int | None]:
    return label_of(cell), cell.get("prefetch_multiplier")


def direct_rates(cells: list[CellResult]) -> dict[tuple[str, int | None], float]:
    """(pool, prefetch) -> noop tasks/s with Redis direct: the consumer's own time per task is its inverse."""
    return {_key(c): float(c["throughput_per_s"]) for c in cells
            if c["workload"] == "noop" and not c.get("rtt_ms") and c["throughput_per_s"]}  # fmt: skip


def serial_round_trips(results: Results, direct: Mapping[tuple[str, int | None], float]) -> dict[str, float]:
    """Pool -> round trips per task the consumer waits for in series: (its cycle - its own time) / RTT."""
    census = results.get("delay", {}).get("round_trips", {})
    serial = {}
    for pool, row in census.items():
        own = direct.get((pool, row.get("prefetch_multiplier")))
        if row.get("cycle_ms") and own:
            serial[pool] = (row["cycle_ms"] / 1000 - 1 / own) / (row["rtt_ms"] / 1000)
    return serial


def model_per_s(cell: CellResult, direct: Mapping[tuple[str, int | None], float],
                serial: Mapping[str, float]) -> float | None:
    """The smaller of the broker bound and, for a workload with a CPU model, the cell's CPU ideal."""
    base = direct.get(_key(cell))
    trips = serial.get(cell["pool"])
    if base is None or trips is None:
        return None
    broker = broker_bound_per_s(base, trips, float(cell.get("rtt_ms") or 0.0) / 1000)
    cpu = cell["ideal_per_s"] if cell["workload"] != "noop" else None
    return min(broker, cpu) if cpu else broker


def rows(results: Results) -> list[Row]:
    """One row per cell with an RTT: measured (median, range), model, efficiency, p99, the relay's CPU."""
    cells = [c for c in results["cells"] if "rtt_ms" in c]
    direct = direct_rates(cells)
    serial = serial_round_trips(results, direct)
    out = []
    for cell in cells:
        model = model_per_s(cell, direct, serial)
        measured = cell["throughput_per_s"]
        measured_vs_model = efficiency(measured, model)
        out.append({
            "workload": call_label(cell["workload"], cell["params"]), "pool": label_of(cell),
            "prefetch": cell.get("prefetch_multiplier"), "rtt_ms": cell.get("rtt_ms") or 0.0,
            "concurrency": cell["concurrency"], "tasks_per_s": measured, "min": cell["throughput_min"],
            "max": cell["throughput_max"], "model_per_s": model, "efficiency": measured_vs_model,
            "miss": misses_model(measured_vs_model), "p99_s": cell["p99_s"],
            "relay_cpu_us_per_task": cell.get("relay_cpu_us_per_task"),
            "redis_cpu_us_per_task": cell.get("redis_cpu_us_per_task"), "healthy": cell["healthy"],
        })  # fmt: skip
    return out


def section(results: Results) -> list[Block]:
    if not delayed(results):
        return []
    table = rows(results)
    out: list[Block] = [Heading("Broker latency"), Paragraph(_method(results)), Image(f"plots/{PLOT}", _caption())]
    out += [_table(table), Paragraph(_legend())]
    misses = [r for r in table if r["miss"]]
    if misses:
        out.append(Paragraph(f"{len(misses)} of {len(table)} cells are further than {MODEL_TOLERANCE:.0%} from the "
                             "model:"))
        out.append(Bullets(tuple(_miss(r) for r in misses)))
    out += [Heading("The relay's calibration", 3), _calibration_table(results), Paragraph(_calibration_legend()),
            Heading("Round trips per task (MONITOR census)", 3), _census_table(results)]
    return out


def _method(results: Results) -> str:
    delay = results["delay"]
    return (f"Delay between the workers and Redis: **{delay['mechanism']}** ({delay['why']}; netem available: "
            f"{'yes' if delay['netem_available'] else 'no'}). The producer, the runner's control commands and "
            "ledger reads, and the workers' ledger writes go to Redis directly; only Celery's own broker traffic "
            "pays the RTT.")


def _caption() -> str:
    return "Tasks/s against the RTT between workers and Redis, per pool and prefetch multiplier; the model dashed"


def _num(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _table(table: list[Row]) -> Table:
    headers = ("workload", "RTT ms", "pool", "prefetch", "tasks/s (min–max)", "model/s", "eff.", "p99 s",
               "relay CPU µs/task", "Redis CPU µs/task")
    body = tuple((r["workload"], f"{r['rtt_ms']:g}", r["pool"], str(r["prefetch"]),
                  f"{_num(r['tasks_per_s'])} ({_num(r['min'])}–{_num(r['max'])})" + ("" if r["healthy"] else " ⚠"),
                  _num(r["model_per_s"]), _pct(r["efficiency"]) + (" ✗" if r["miss"] else ""), _num(r["p99_s"], ".3f"),
                  _num(r["relay_cpu_us_per_task"], ".0f"), _num(r["redis_cpu_us_per_task"], ".0f"))
                 for r in sorted(table, key=lambda r: (r["workload"], r["rtt_ms"], r["pool"], r["prefetch"] or 0)))
    return Table(headers, body)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _legend() -> str:
    return ("model = 1 / (1/direct + S × RTT), direct = the same pool and prefetch on noop at RTT 0, S = the serial "
            "round trips per task on the consumer's path (census below: its cycle per task behind the largest RTT, "
            "less 1/direct, over that RTT); for square also at most its CPU ideal (model_per_s). "
            f"✗ = more than {MODEL_TOLERANCE:.0%} from the model. p99 is end to end (sent → finished) over every "
            "task of the cell. Redis CPU includes the ledger's record (one script call per task).")


def _miss(row: Row) -> str:
    side = "below" if row["efficiency"] < 1 else "above"
    return (f"{row['workload']} on {row['pool']}, prefetch {row['prefetch']}, RTT {row['rtt_ms']:g} ms: "
            f"{_num(row['tasks_per_s'])}/s vs model {_num(row['model_per_s'])}/s ({row['efficiency']:.0%}, {side})")


def _calibration_table(results: Results) -> Table:
    headers = ("set RTT ms", "PINGs", "relayed median ms", "added vs back-to-back ms", "error", "pass",
               "added vs idle-matched ms", "error", "pass", "relay CPU µs/PING")
    body = tuple((f"{c['rtt_ms']:g}", str(c["pings"]), f"{c['relayed_median_ms']:.3f}",
                  f"{c['added_median_ms']:.3f}", f"{c['error_ms']:+.3f}", _yes(_passes(c)[0]),
                  f"{c['added_vs_idle_median_ms']:.3f}", f"{c['error_vs_idle_ms']:+.3f}", _yes(_passes(c)[1]),
                  _num(c.get("relay_cpu_us_per_ping"), ".0f"))
                 for c in results["delay"]["calibration"])  # fmt: skip
    return Table(headers, body)


def _passes(calibration: dict[str, Any]) -> tuple[bool, bool]:
    """(back to back, idle-matched); runs before 2026-11-27 called them `passed_back_to_back` and `passed`."""
    if "passed_idle_matched" in calibration:
        return calibration["passed"], calibration["passed_idle_matched"]
    return calibration["passed_back_to_back"], calibration["passed"]


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


def _calibration_legend() -> str:
    return ("Tolerance: 0.1 ms, or 5 % of the RTT above 2 ms. PINGs over a lean RESP client (stack/relay.py: "
            "Pinger). The back-to-back baseline is a direct PING right after the last; the idle-matched one a "
            "direct PING after a pause as long as the RTT (this VM's Redis and client wake up slowly after "
            "idling, and would over a real network of that RTT too).")


def _census_table(results: Results) -> Table:
    serial = serial_round_trips(results, direct_rates([c for c in results["cells"] if "rtt_ms" in c]))
    headers = ("pool", "RTT ms", "prefetch", "c", "commands/task", "round trips/task", "on the consumer's connection",
               "on others", "consumer's cycle ms", "serial round trips (S)", "commands")
    body = tuple((pool, f"{r['rtt_ms']:g}", str(r["prefetch_multiplier"]), str(r["concurrency"]),
                  _num(r["commands_per_task"], ".2f"), _num(r["round_trips_per_task"], ".2f"),
                  _num(r["consumer_round_trips_per_task"], ".2f"), _num(r["other_round_trips_per_task"], ".2f"),
                  _num(r.get("cycle_ms"), ".1f"), _num(serial.get(pool), ".2f"),
                  ", ".join(f"{name} {count / r['tasks']:.2f}" for name, count in r["commands"].items()))
                 for pool, r in results["delay"]["round_trips"].items())  # fmt: skip
    return Table(headers, body)


# -- the plot --------------------------------------------------------------------------------------

def figure(results: Results) -> Figure | None:
    """Tasks/s against RTT, one panel per workload, a line per pool x prefetch, the model dashed."""
    table = rows(results)
    if not table:
        return None
    panels: dict[str, list[Row]] = defaultdict(list)
    for row in table:
        panels[row["workload"]].append(row)
    fig = Figure(figsize=(6.5 * len(panels), 5), layout="constrained")
    for axes, (workload, members) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels.items(),
                                         strict=True):
        _panel(axes, workload, members)
    fig.suptitle("Broker latency: Celery workers behind a delaying relay to Redis (median of repetitions, "
                 "min–max bars)", fontsize=10)
    return fig


def _panel(axes: Axes, workload: str, members: list[Row]) -> None:
    series: dict[tuple[str, int | None], list[Row]] = defaultdict(list)
    for row in sorted(members, key=lambda r: r["rtt_ms"]):
        series[(row["pool"], row["prefetch"])].append(row)
    for (pool, prefetch), points in sorted(series.items(), key=lambda item: (item[0][0], item[0][1] or 0)):
        colour = COLOURS.get(pool.split("@")[0])
        x = [p["rtt_ms"] for p in points]
        y = [p["tasks_per_s"] or 0.0 for p in points]
        low = [max(0.0, v - (p["min"] or v)) for v, p in zip(y, points, strict=True)]
        high = [max(0.0, (p["max"] or v) - v) for v, p in zip(y, points, strict=True)]
        axes.errorbar(x, y, yerr=[low, high], color=colour, linestyle=PREFETCH_STYLES.get(prefetch or 0, "-"),
                      marker=PREFETCH_MARKERS.get(prefetch or 0, "o"), capsize=2, label=f"{pool}, prefetch {prefetch}")
        model = [(p["rtt_ms"], p["model_per_s"]) for p in points if p["model_per_s"]]
        if model:
            axes.plot(*zip(*model, strict=True), color=colour, linestyle="--", linewidth=0.8, alpha=0.6)
    axes.plot([], [], color="black", linestyle="--", linewidth=0.8, label="model (per pool × prefetch)")
    axes.set_xscale("symlog", linthresh=0.5)
    ticks = sorted({r["rtt_ms"] for r in members})
    axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes.set_yscale("log")
    axes.set_xlabel("RTT added between workers and Redis (ms)")
    axes.set_ylabel("tasks / s")
    axes.set_title(workload)
    axes.legend(fontsize=7, ncol=2)
