"""The live terminal view of a run: per pool, tasks/s now, done/total, p95 run time, a bar.

It reads what the report reads: the run ledger in Redis. Counts come from the
ledger's count hash; per-pool progress and run times come from the timing lines,
drained into the ledger's histograms as the run goes (so the final drain has less
to do, and memory stays bounded). A pool is the part of a worker name before '@'.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from tasks.ledger import RunLedger

RATE_WINDOW_S = 3.0  # "now" = over the last few seconds
DRAIN_EVERY_S = 0.5  # fold new timing lines into the histograms at most this often
REFRESH_PER_S = 4


@dataclass
class RecentRate:
    """Tasks per second over the last `window_s`, from (time, done so far) samples."""

    window_s: float = RATE_WINDOW_S
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, done: int) -> None:
        self.samples.append((now, done))
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window_s:
            self.samples.popleft()

    def per_s(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None


@dataclass(frozen=True)
class Row:
    """One line of the view."""

    name: str
    done: int
    total: int
    per_s: float | None
    p95_s: float | None


class LiveRun:
    """A run's progress as read from its ledger; a rich renderable (`Live(view)`, or inside a Group).

    `update(done)` is `RunLedger.wait`'s progress callback.
    """

    def __init__(self, ledger: RunLedger, totals: Mapping[str, int],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self.totals = dict(totals)
        self.clock = clock
        self.rates = {pool: RecentRate() for pool in self.totals}
        self.all_rate = RecentRate()
        self.rows: list[Row] = []
        self._last_drain = -math.inf

    def update(self, done: int | None = None, *, drain: bool = False) -> None:
        """Read the ledger (`done` = tasks ended, if the caller has just counted them)."""
        now = self.clock()
        if drain or now - self._last_drain >= DRAIN_EVERY_S:
            self.ledger.drain_timings()
            self._last_drain = now
        finished = self.ledger.finished() if done is None else done
        self.rows = self._rows(now, finished, sum(self.totals.values()))

    def _rows(self, now: float, finished: int, total: int) -> list[Row]:
        timings = self.ledger.timings
        per_pool = timings.done_per_pool()
        single = len(self.totals) == 1  # then the counts are this pool's, and fresher than the timings
        rows = []
        for pool, pool_total in self.totals.items():
            done = finished if single else per_pool[pool]
            self.rates[pool].add(now, done)
            histogram = timings.per_pool_run_time.get(pool)
            rows.append(Row(pool, done, pool_total, self.rates[pool].per_s(),
                            histogram.percentile(0.95) if histogram else None))
        if not single:
            self.all_rate.add(now, finished)
            rows.append(Row("all", finished, total, self.all_rate.per_s(), timings.run_time.percentile(0.95)))
        return rows

    def table(self) -> Table:
        table = Table(title=f"run {self.ledger.run_id}", title_justify="left", expand=False)
        table.add_column("pool")
        table.add_column("progress", width=32)
        table.add_column("done/total", justify="right")
        table.add_column(f"tasks/s (last {RATE_WINDOW_S:.0f} s)", justify="right")
        table.add_column("p95 run time", justify="right")
        for row in self.rows:
            table.add_row(row.name, ProgressBar(total=max(row.total, 1), completed=row.done, width=30),
                          f"{row.done:,}/{row.total:,}", _rate(row.per_s), _seconds(row.p95_s))
        return table

    def __rich__(self) -> Table:
        return self.table()


def watch(ledger: RunLedger, totals: Mapping[str, int], timeout: float, console: Console,
          broker_patience_s: float = 60.0) -> bool:
    """Show the live view until every task has ended or `timeout` passes; True if all ended."""
    view = LiveRun(ledger, totals)
    view.update()
    with Live(view, console=console, refresh_per_second=REFRESH_PER_S, transient=False):
        result = ledger.wait(sum(totals.values()), timeout, view.update, poll_s=0.1,
                             broker_patience_s=broker_patience_s)
        view.update(drain=True)  # the last frame shows every timing line written so far
    return result.ended


def _rate(per_s: float | None) -> str:
    return "-" if per_s is None else f"{per_s:,.1f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:,.1f} ms" if value < 1 else f"{value:,.2f} s"
