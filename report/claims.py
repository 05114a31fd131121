"""claims.md / claims.html: one section per claim of the article, each with its plot, number and verdict."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure
from rich.console import Console

from experiments.claims.run import load_run
from experiments.schema import CellResult, Results, SideResults, Verdict
from report import html, markdown, verdicts
from report.document import Block, Bullets, Heading, Image, Paragraph, Table
from report.plots import COLOURS, Measure, label_of, num

Cells = list[CellResult]
STATEMENTS = {
    1: "The GIL lets one thread run Python at a time: CPU-bound threads stay at one core, processes scale.",
    2: "Threads are fine for I/O-bound work: their throughput tracks concurrency / wait time.",
    3: "Processes cost more memory than threads.",
    4: "Processes are heavier to create: start-up grows with their number; recycling them costs throughput.",
    5: "Threads cannot be killed from outside; processes can.",
    6: "Threads share memory, processes do not; a crash takes down everything that shares the process.",
}


def _series_plot(cells: Cells, label: str, field: Measure, title: str, ylabel: str, ideal: bool = False) -> Figure:
    figure = Figure(figsize=(6.5, 4))
    axes = figure.subplots()
    pools = sorted({c["pool"] for c in cells if c["label"] == label})
    for pool in pools:
        series = sorted((c for c in cells if c["label"] == label and c["pool"] == pool), key=lambda c: c["concurrency"])
        xs = [c["concurrency"] for c in series]
        axes.plot(xs, [num(c, field) for c in series], marker="o", color=COLOURS.get(pool), label=label_of(series[0]))
        if ideal:
            axes.plot(xs, [num(c, "ideal_per_s") for c in series], linestyle="--", color=COLOURS.get(pool), alpha=0.5,
                      label=f"{pool} ideal")
    axes.set_xscale("log", base=2)
    axes.set(title=title, xlabel="concurrency", ylabel=ylabel)
    axes.legend()
    axes.grid(alpha=0.3)
    return figure


def _bars(labels: list[str], values: list[float], title: str, ylabel: str) -> Figure:
    figure = Figure(figsize=(6.5, 4))
    axes = figure.subplots()
    bars = axes.bar(labels, values, color=[COLOURS.get(label.split()[0], "tab:gray") for label in labels])
    axes.bar_label(bars, fmt="%.1f")
    axes.set(title=title, ylabel=ylabel)
    axes.tick_params(axis="x", labelrotation=20)
    return figure


def _plots(results: Results, side: SideResults) -> dict[int | str, Figure]:
    cells: Cells = results["cells"]
    inproc = side["inprocess"]
    runaway = side["runaway"]
    crash = side["crash"]
    free_threaded = _free_threaded_plots(cells, side)
    return free_threaded | {
        1: _series_plot(cells, "claim1", "throughput_per_s", "square: throughput vs concurrency", "tasks/s", True),
        "1b": _bars([f"{r['pattern']} x{r['workers']}" for r in inproc], [r["throughput_per_s"] for r in inproc],
                    "square without a queue (article's patterns)", "tasks/s"),
        2: _series_plot(cells, "claim2", "throughput_per_s", "sleep: throughput vs concurrency", "tasks/s", True),
        3: _series_plot(cells, "claim3", "worker_memory_mb", "worker memory (PSS of its tree) vs concurrency", "MB"),
        4: _series_plot(cells, "claim3", "startup_s", "worker start-up to ready vs concurrency", "seconds"),
        5: _bars([f"{a['pool']} {a['method']}" for a in runaway],
                 [a["ran_s"] or 0.0 for a in runaway], "runaway task: seconds it ran (0 = never returned)", "s"),
        6: _bars([f"{c['pool']} acks_late={c['acks_late']}" for c in crash], [float(c["lost"]) for c in crash],
                 "tasks lost when the interpreter crashed mid-run", "tasks"),
        "mixed": _bars([m["scenario"] for m in side["mixed"]], [m["throughput_per_s"] for m in side["mixed"]],
                       "mixed 80 % sleep / 20 % square", "tasks/s"),
    }


def _free_threaded_plots(cells: Cells, side: SideResults) -> dict[int | str, Figure]:
    """Claim 1 on the free-threaded interpreter, when the run measured it."""
    if not any(c["label"] == "claim1-ft" for c in cells):
        return {}
    inproc = side.get("inprocess_ft", [])
    plots: dict[int | str, Figure] = {"1ft": _series_plot(cells, "claim1-ft", "throughput_per_s",
                                                        "square without the GIL: throughput vs concurrency",
                                                        "tasks/s", True)}
    if inproc:
        plots["1ftb"] = _bars([f"{r['pattern']} x{r['workers']}" for r in inproc],
                              [r["throughput_per_s"] for r in inproc],
                              "square without a queue, free-threaded (article's patterns)", "tasks/s")
    return plots


PLAINLY_WITHOUT_GIL = {
    "does not hold": " Without the GIL the claim **does not hold**: threads keep several cores busy.",
    "partly": (" Without the GIL the claim **only partly holds**: threads went past one core but stayed short of "
               "processes (the cores busy above say by how much; a machine shared with other work shows as fewer)."),
    "holds": " Even without the GIL the claim held here: threads stayed at one core (see the figure).",
}


def _claim_blocks(verdict: Verdict, images: dict[int | str, Image]) -> list[Block]:
    claim = verdict["claim"]
    free_threaded = verdict.get("free_threaded", False)
    key: int | str = "1ft" if free_threaded else claim
    heading = f"Claim {claim}: {STATEMENTS[claim]}"
    if free_threaded:
        heading = f"Claim 1 without the GIL (Python {verdict['interpreter']}): does one thread still run at a time?"
    plainly = PLAINLY_WITHOUT_GIL[verdict["verdict"]] if free_threaded else ""
    blocks: list[Block] = [Heading(heading), Paragraph(f"**{verdict['verdict']}**: {verdict['figure']} "
                                                       f"{verdict['unit']}. {verdict['detail']}.{plainly}")]
    blocks += [images[k] for k in (key, f"{key}b") if k in images]
    return blocks


def _knob_table(cells: Cells) -> Table:
    rows = [(c["label"].removeprefix("knob-"), c["pool"], f"{c['throughput_per_s']:.1f}",
             f"{c.get('p99_s') or 0:.3f}", str(c["lost"]))
            for c in sorted(cells, key=lambda c: (c["pool"], c["label"])) if c["label"].startswith("knob-")]
    return Table(("knob", "pool", "tasks/s (median)", "p99 end to end (s)", "lost"), tuple(rows))


def _blocks(results: Results, side: SideResults, found: list[Verdict], images: dict[int | str, Image]) -> list[Block]:
    python = verdicts.gil_python(results)
    blocks: list[Block] = [
        Heading("Every claim of the article, measured", 1),
        Table(("claim", "Python", "verdict", "figure", "unit"),
              tuple((str(v["claim"]), v.get("interpreter", python), v["verdict"], str(v["figure"]), v["unit"])
                    for v in found)),
    ]
    for verdict in found:
        blocks += _claim_blocks(verdict, images)
    mixed = side["mixed"]
    blocks += [Heading("Routing a mixed workload"),
               Paragraph("80 % sleep, 20 % square: one pool alone, both pools on one queue, or CPU tasks routed "
                         "to prefork and I/O tasks to threads."),
               Bullets(tuple(f"{m['scenario']}: {m['throughput_per_s']:.1f} tasks/s, lost {m['lost']}" for m in mixed)),
               images["mixed"],
               Heading("Tuning knobs"), _knob_table(results["cells"])]
    return blocks


def judge_and_write(results: Results, side: SideResults, run_dir: Path, console: Console) -> Path:
    """The verdicts (verdicts.json), then claims.md/.html; say each verdict on the console."""
    found = verdicts.judge(results, side)
    (run_dir / "verdicts.json").write_text(json.dumps(found, indent=2) + "\n")
    for verdict in found:
        console.print(f"claim {verdict['claim']}: [bold]{verdict['verdict']}[/bold] "
                      f"({verdict['figure']} {verdict['unit']})")
    report = write_claims_report(results, side, found, run_dir)
    console.print(f"wrote {run_dir / 'verdicts.json'} and {report}")
    return report


def rejudge(run_dir: Path) -> Path:
    """Judge and write a finished claims run again from its files (no measuring)."""
    results, side = load_run(run_dir)
    return judge_and_write(results, side, run_dir, Console(quiet=True))


def write_claims_report(results: Results, side: SideResults, found: list[Verdict], out: Path) -> Path:
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    images: dict[int | str, Image] = {}
    for key, figure in _plots(results, side).items():
        name = f"claim-{key}.png"
        figure.savefig(plot_dir / name, dpi=110, bbox_inches="tight")
        images[key] = Image(f"plots/{name}", figure.axes[0].get_title())  # each plot's caption is its title
    blocks = _blocks(results, side, found, images)
    (out / "claims.md").write_text(markdown.render(blocks))
    (out / "claims.html").write_text(html.render(blocks, "The article's claims, measured"))
    return out / "claims.md"


