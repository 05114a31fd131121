"""Progress of a run: "cell i of n" with an ETA, and the tasks of the current repetition.

The ETA weighs each cell by an estimate of its length (tasks over the ideal rate,
times repetitions, plus start-up), so one slow cell does not make rich's
estimate swing wildly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from experiments.schema import CellResult
from experiments.spec import Cell

STARTUP_ESTIMATE_S = 2.0
FALLBACK_RATE = 500.0


def estimate_s(cell: Cell, ideal: float | None) -> float:
    """A rough length of one cell, for the ETA only."""
    rate = cell.arrival.rate or (ideal * cell.arrival.load if ideal and cell.arrival.load else ideal)
    per_rep = cell.tasks / (rate or FALLBACK_RATE)
    if cell.needs_measured_cpu and cell.pool != "prefork":
        per_rep *= max(1, min(cell.concurrency, 2))  # threads share one core's worth of GIL
    repetitions = cell.repetitions * (2 if cell.paired_untimed else 1)
    return STARTUP_ESTIMATE_S + 0.02 * cell.concurrency + repetitions * (per_rep + 0.3)


class CellProgress:
    def __init__(self, console: Console, cells: Sequence[Cell], todo: Sequence[Cell],
                 ideal: Callable[[Cell, int], float | None]) -> None:
        self.total = len(cells)
        self.numbers = {cell.id: number for number, cell in enumerate(cells, 1)}
        self.estimates = {cell.id: estimate_s(cell, ideal(cell, cell.concurrency)) for cell in todo}
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
        )  # fmt: skip
        self.overall = self.progress.add_task("cells", total=sum(self.estimates.values()) or 1, count="")
        self.reps = self.progress.add_task("tasks", total=1, visible=False, count="")

    def __enter__(self) -> CellProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.__exit__(kind, value, tb)

    def start(self, cell: Cell) -> None:
        self.progress.update(self.overall, description=f"cell {self.numbers[cell.id]} of {self.total}")
        self.progress.reset(self.reps, total=cell.tasks, visible=True, description=f"  {cell.title()}")

    def tasks_done(self, done: int, total: int) -> None:
        self.progress.update(self.reps, completed=done, total=total, count=f"{done}/{total}")

    def finish(self, cell: Cell, result: CellResult) -> None:
        self.progress.advance(self.overall, self.estimates.get(cell.id, 0.0))
        flag = "" if result.get("healthy") else f"  [red]lost {result['lost']} dup {result['duplicated']}[/red]"
        eff = result.get("efficiency")
        self.console.print(
            f"{cell.id}: {result['throughput_per_s']}/s"
            f" (min {result['throughput_min']}, max {result['throughput_max']})"
            f" ideal {result['ideal_per_s']} eff {eff if eff is not None else '-'}"
            f" mem {result['worker_memory_mb']} MB{flag}"
        )
