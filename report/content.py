"""What the report says, section by section, as blocks (see `report.document`)."""

from __future__ import annotations

from typing import Any

from experiments.schema import CellResult, ExperimentInfo, Interpreter, Results, SingleThreadCost
from report import findings, rtt, verdicts
from report.document import Block, Bullets, Heading, Image, Paragraph, Table
from report.plots import label_of
from tasks.workloads import WORKLOADS, call_label

WARN = "⚠"


def blocks(results: Results, plots: list[tuple[str, str]]) -> list[Block]:
    cells = results["cells"]
    experiment = results["experiment"]
    out: list[Block] = [Heading(f"Experiment `{experiment['name']}`: threads or processes?", 1)]
    if experiment.get("description"):
        out.append(Paragraph(experiment["description"]))
    out.append(Paragraph(f"**Verdict:** {verdicts.headline(results)}."))
    out += _verdict_bullets(results)
    images = {name: Image(f"plots/{name}", caption) for name, caption in plots}

    def image(*names: str) -> list[Block]:
        return [images[name] for name in names if name in images]

    out += image("throughput.png")
    out += [Heading("Summary"), _summary_table(cells), Paragraph(_legend(experiment, cells))]
    out += rtt.section(results)
    out += _model_section(cells)
    out += image("efficiency.png", "memory.png")
    out += _latency_section(cells) + image("latency.png") + _latency_server_section(cells)
    out += _overhead_section(cells) + image("overhead.png")
    out += _producer_section(results)
    out += _redis_section(results) + _flower_section(cells) + _interpreter_section(results["environment"])
    out += _environment_section(results["environment"])
    return out


def _verdict_bullets(results: Results) -> list[Block]:
    cells, items = results["cells"], []
    cpu = verdicts.cpu_verdict(cells, verdicts.cores(results))
    if cpu:
        items.append(f"CPU-bound `square` at concurrency {cpu['concurrency']}: prefork {cpu['prefork_per_s']:.1f}/s "
                     f"({_pct(cpu['prefork_efficiency'])} of ideal) vs threads {cpu['threads_per_s']:.1f}/s "
                     f"({_pct(cpu['threads_efficiency'])}): **{cpu['ratio']:.2f}x** the cores kept busy with tasks"
                     + (" (under the GIL one thread runs Python at a time)." if cpu["ratio"] > 1 else "."))
    io = verdicts.io_verdict(cells)
    if io:
        memory = (f", with {_num(io['threads_memory_mb'])} MB against prefork's {_num(io['prefork_memory_mb'])} MB "
                  f"at the same concurrency") if io["prefork_memory_mb"] else ""
        items.append(f"I/O-bound `sleep`: threads reach {_pct(io['threads_efficiency'])} of ideal at concurrency "
                     f"{io['concurrency']} (lowest {_pct(io['min_threads_efficiency'])} at {io['min_at']}){memory}.")
    totals = findings.accounting(cells)
    status = "every task accounted for" if not totals["unhealthy_cells"] else \
        f"{WARN} {totals['unhealthy_cells']} cell(s) with lost, duplicated or unfinished tasks (marked {WARN})"
    items.append(f"Accounting over all cells: sent {totals['sent']}, completed {totals['completed']}, failed "
                 f"{totals['failed']}, lost {totals['lost']}, duplicated {totals['duplicated']}: {status}.")
    write_errors = sum(c.get("ledger_write_errors") or 0 for c in cells)
    if write_errors:
        items.append(f"{WARN} The workers logged {write_errors} failed ledger write(s): those tasks ran but could "
                     "not be recorded, so they count as lost (see the cells' worker logs).")
    return [Bullets(tuple(items))]


SUMMARY_HEADERS = ("cell", "pool", "workload", "c", "arrival", "tasks×reps", "done", "lost", "dup",
                   "tasks/s (min–max)", "ideal/s", "eff.", "mem MB", "start s", "cores", "p50 s", "p95 s", "p99 s")


def _summary_table(cells: list[CellResult]) -> Table:
    rows = []
    for c in cells:
        mark = "" if c.get("healthy", True) else f" {WARN}"
        timing = "" if c["timing"] else " (timing off)"
        rows.append((
            f"{c['id']}{mark}", label_of(c), _workload(c) + timing, str(c["concurrency"]),
            c["arrival"] + (f" {c['arrival_rate_per_s']:g}/s" if c.get("arrival_rate_per_s") else ""),
            f"{c['tasks']}×{c['repetitions']}" + (f"+{n} untimed" if (n := c.get("untimed_repetitions")) else ""),
            str(c["completed"]), str(c["lost"]), str(c["duplicated"]),
            f"{_num(c['throughput_per_s'])} ({_num(c['throughput_min'])}–{_num(c['throughput_max'])})",
            _num(c["ideal_per_s"]), _pct(c["efficiency"]), _num(c["worker_memory_mb"]), _num(c["startup_s"], 2),
            _num(c["cpu_cores"], 2), _num(c["p50_s"], 3), _num(c["p95_s"], 3), _num(c["p99_s"], 3),
        ))  # fmt: skip
    return Table(SUMMARY_HEADERS, tuple(rows))


def _legend(experiment: ExperimentInfo, cells: list[CellResult]) -> str:
    partial = "" if len(cells) == experiment.get("cells_planned", len(cells)) else \
        f" {WARN} Only {len(cells)} of {experiment['cells_planned']} cells were measured."
    return ("tasks/s is the median over repetitions of the drain rate (first task started to last finished; "
            "counts-only cells use the wall clock); ideal is concurrency / sleep seconds, or min(concurrency, cores) "
            "/ the mean CPU time of one task, measured in the worker in the same repetition (eff. is the median of "
            "the repetitions' throughput / ideal); mem is the worker's PSS (parent + children) after a repetition; "
            "cores is the worker's CPU time over the drain time; p50–p99 are end to end (sent → finished)." + partial)


def _model_section(cells: list[CellResult]) -> list[Block]:
    """The model beside every cell, and plainly where it is wrong by more than the tolerance."""
    modelled = [c for c in cells if c["ideal_per_s"] is not None and c["arrival"] != "rate"]
    if not modelled:
        return []
    rows = tuple((c["id"], str(c["concurrency"]), str(c.get("usable_cores", "-")), _num(c.get("task_cpu_s"), 4),
                  _io_requested(c), _num(c["ideal_per_s"]), _num(c["throughput_per_s"]), _pct(c["efficiency"]),
                  _inflation(c)) for c in modelled)
    misses = verdicts.model_misses(modelled)
    text = (f"Each cell beside the model: throughput <= c / (cpu + io) and <= U / cpu, where U is the cores the "
            f"pool can keep busy with Python code (1 for threads and green pools under the GIL, min(c, cores) for "
            f"prefork) and cpu is a task's CPU time measured in the worker. I/O inflation is the waiting tasks "
            f"observed over what they asked for. A cell further than {verdicts.MODEL_TOLERANCE:.0%} from its model "
            f"is a finding, not noise.")
    found = [f"{WARN} `{c['id']}`: {_pct(c['efficiency'])} of the model ({_num(c['throughput_per_s'])}/s against "
             f"{_num(c['ideal_per_s'])}/s): {verdicts.miss_reason(c)}" for c in misses] or \
        [f"Every cell is within {verdicts.MODEL_TOLERANCE:.0%} of its model."]
    return [Heading("The model beside every measurement"), Paragraph(text),
            Table(("cell", "c", "U", "cpu s", "io s", "model /s", "measured /s", "eff.", "I/O inflation"), rows),
            Bullets(tuple(found))]


def _io_requested(cell: CellResult) -> str:
    params = cell["params"]
    if "io_ms" in params:
        return _num(float(params["io_ms"]) / 1000, 3)
    return _num(params.get("seconds"), 3) if "seconds" in params else "0"


def _inflation(cell: CellResult) -> str:
    value = cell.get("io_inflation")
    return "-" if value is None else f"{value:.2f}x"


def _latency_section(cells: list[CellResult]) -> list[Block]:
    rows = tuple((c["id"], *(_num(c[part][q], 4) for part in ("queue_wait", "run_time") for q in ("p50_s", "p95_s",
                 "p99_s"))) for c in cells if c["p50_s"] is not None)  # fmt: skip
    headers = ("cell", "wait p50", "wait p95", "wait p99", "run p50", "run p95", "run p99")
    note = Paragraph("Seconds, from the ledger's timestamps (sent, started, finished), kept in log-bucket histograms "
                     "(about 1 % resolution, bounded memory). With a prefilled queue the wait is mostly the backlog.")
    return [Heading("Latency: queue wait and run time"), note, Table(headers, rows)]


def _latency_server_section(cells: list[CellResult]) -> list[Block]:
    """The latency server's own CPU beside each cell whose tasks asked it: it shares the worker's cores."""
    asked = [c for c in cells if c.get("latency_server_cpu_s") is not None and c["workload"] in WORKLOADS
             and WORKLOADS[c["workload"]].socket_io(c["params"])]
    if not asked:
        return []
    limit = verdicts.LATENCY_SERVER_MAX_CORES
    rows = tuple((c["id"], label_of(c), _workload(c), _num(c["latency_server_cpu_s"], 2),
                  _num(cores, 2) if (cores := c.get("latency_server_cores")) is not None else "-",
                  f"{WARN} above {limit:g}" if cores is not None and cores > limit else "ok") for c in asked)
    busy = [row[0] for row in rows if row[-1] != "ok"]
    verdict = (f"{WARN} Above {limit:g} core in {', '.join(f'`{cell}`' for cell in busy)}: the server competed with "
               "the worker for the machine's cores there, so those cells' socket waits and throughput are partly its "
               "cost, not the pool's." if busy else
               f"It stayed at or below {limit:g} core in every cell: the pool, not the server, set the pace.")
    text = ("The run's latency server answers the tasks' socket requests on this machine, so its CPU is taken from "
            "the cores the worker could use. CPU seconds over the cell (every repetition), and as cores: that CPU "
            "over the repetitions' drain time.")
    return [Heading("The latency server's own CPU"), Paragraph(text),
            Table(("cell", "pool", "workload", "server CPU s", "server cores", f"≤ {limit:g} core"), rows),
            Paragraph(verdict)]


def _overhead_section(cells: list[CellResult]) -> list[Block]:
    pairs = findings.overheads(cells)
    if not pairs:
        return [Heading("Harness overhead"), Paragraph("Not measured: no cell has a twin with timing off.")]
    rows = tuple((p["on"]["id"], _num(p["on"]["wall_per_s"]), _num(p["off"]["wall_per_s"]), f"{p['overhead']:+.1%}",
                  _pair_spread(p["runs"]), "yes" if verdicts.within_overhead_goal(p["overhead"]) else f"{WARN} no")
                 for p in pairs)
    goal = f"{verdicts.HARNESS_OVERHEAD_GOAL * 100:g} %"
    text = ("The same cell with the timing instrumentation on (ledger: counts, per-task id, timing line) and off "
            "(counts only), compared by wall-clock rate (resume → last task seen ended). A paired cell alternates "
            "on and off repetitions on one worker (on-off, off-on, ...), so the machine's drift cancels: the "
            f"overhead is the median of the pairs, with their range. Goal: at most {goal}.")
    return [Heading("Harness overhead"), Paragraph(text),
            Table(("cell", "timing on /s", "timing off /s", "overhead", "pairs (min–max)", f"≤ {goal}"), rows)]


def _pair_spread(runs: list[float | None]) -> str:
    values = [run for run in runs if run is not None]
    return f"{min(values):+.1%} – {max(values):+.1%} ({len(runs)})" if values else "-"


def _producer_section(results: Results) -> list[Block]:
    enqueue = results.get("enqueue")
    if not enqueue:
        return []
    rows = tuple((name + (" (used)" if name == enqueue["used"] else ""), _num(m["median_per_s"]),
                  f"{_num(m['min_per_s'])}–{_num(m['max_per_s'])}") for name, m in enqueue["methods"].items())
    margin = findings.producer_margin(results) or {}
    ok = (margin.get("margin") or 0) > 1
    verdict = (f"The runner enqueues with `{enqueue['used']}` (kombu `Producer.batch()`): its slowest repetition, "
               f"{_num(margin.get('enqueue_min_per_s'))}/s, is {_num(margin.get('margin'), 1)}x the fastest drain "
               f"measured ({_num(margin.get('fastest_drain_per_s'))}/s), so "
               + ("the producer was never the bottleneck." if ok else f"{WARN} the producer may have limited a cell."))
    return [Heading("Producer enqueue rate"),
            Paragraph(f"{enqueue['tasks']} noop messages per method into an unconsumed queue, "
                      f"{enqueue['repetitions']} repetitions."),
            Table(("method", "median msgs/s", "min–max"), rows), Paragraph(verdict)]


def _redis_section(results: Results) -> list[Block]:
    redis = results.get("redis")
    rows = tuple((c["id"], _num(c["redis"]["celery_commands_per_task"]), _num(c["redis"]["harness_commands_per_task"]),
                  ", ".join(f"{k} {v}" for k, v in list(c["redis"]["calls"].items())[:6])) for c in results["cells"])
    out: list[Block] = [Heading("Redis: commands per task and the ceiling of one server"),
                        Table(("cell", "Celery cmds/task", "harness cmds/task", "top commands (calls)"), rows)]
    if redis:
        out.append(Paragraph(
            f"Server: {_num(redis['ops_per_s'])} ops/s measured with `{redis['method']}`. At the most expensive "
            f"cell's {_num(redis['celery_commands_per_task'])} Celery commands per task, one Redis could carry about "
            f"**{_num(redis['ceiling_tasks_per_s'])} tasks/s** before it is the bottleneck: the paper plan for "
            f"scaling past one machine (more workers help until then; past it, shard queues over servers)."))
    return out


def _flower_section(cells: list[CellResult]) -> list[Block]:
    checks = findings.flower_checks(cells)
    if checks is None:
        return [Heading("Flower cross-check"), Paragraph("Flower was not running for this experiment; the timing "
                                                         "source (the ledger) does not depend on it.")]
    status = "all match" if not checks["mismatches"] else f"{WARN} {checks['mismatches']} mismatch(es)"
    return [Heading("Flower cross-check"), Paragraph(
        f"Each repetition's completed count was compared with the delta of Flower's "
        f"`flower_events_total{{type=\"task-succeeded\"}}` for the worker: {checks['runs']} runs, {status}.")]


OWN_SECTION = ("interpreters", "single_thread_square")  # shown in sections of their own, not as raw rows


def _interpreter_section(environment: dict[str, Any]) -> list[Block]:
    """Each interpreter the run used, its build, whether its GIL was on while it ran, and its cost per square."""
    used: list[Interpreter] = environment.get("interpreters") or []
    alone = environment.get("single_thread_square") or {}
    cost = _single_thread_ms(alone)
    if not used and not cost:
        return []
    fastest = min(cost.values(), default=0.0)
    rows = [(i["python"], "free-threaded" if i["free_threaded_build"] else "with a GIL", _gil(i),
             ", ".join(i["used_by"]), _alone(cost.get(i["python"]), fastest)) for i in used]
    listed = {i["python"] for i in used}
    rows += [(python, "free-threaded" if python.endswith("t") else "with a GIL", "-", "in-process only",
              _alone(ms, fastest)) for python, ms in cost.items() if python not in listed]
    text = ("As each reported itself while running: the harness in-process, each worker in `inspect stats`. A "
            "`threads-ft` or `prefork-ft` worker refuses to start if its GIL is on, so no number here is labelled "
            "\"no GIL\" while measuring one.")
    if cost:
        text += (f" The last column is one `square(work={alone.get('work')})` alone on one thread (CPU time, median "
                 "of repeated calls in a process of that interpreter) and its multiple of the fastest: what every "
                 "task pays there before any parallelism (a free-threaded 3.13 has no specialising interpreter).")
    return [Heading("Interpreters"), Paragraph(text),
            Table(("Python", "build", "GIL", "used by", "square alone on one thread"), tuple(rows))]


def _single_thread_ms(alone: SingleThreadCost | dict[str, Any]) -> dict[str, float]:
    """Interpreter -> ms; results.json before `cpu_ms` had `{"3.11.2": {"cpu_ms": ...}}` beside `work`."""
    if "cpu_ms" in alone:
        return dict(alone["cpu_ms"])
    return {python: float(value["cpu_ms"]) for python, value in alone.items() if isinstance(value, dict)}


def _alone(ms: float | None, fastest: float) -> str:
    if ms is None:
        return "-"
    return f"{ms:.2f} ms" + (f" ({ms / fastest:.2f}x)" if fastest > 0 else "")


def _gil(entry: Interpreter) -> str:
    if entry["gil_enabled"] is None:
        return "not reported"
    if entry["gil_enabled"] and entry["free_threaded_build"]:
        return f"{WARN} on (turned back on)"
    return "on" if entry["gil_enabled"] else "off"


def _environment_section(environment: dict[str, Any]) -> list[Block]:
    rows = tuple((key, _value(value)) for key, value in environment.items() if key not in OWN_SECTION)
    return [Heading("Environment"), Table(("what", "value"), rows)]


def _workload(cell: CellResult) -> str:
    return call_label(cell["workload"], cell["params"])


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_value(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
