"""`lab claims`: the claim sweep (a normal experiment file) and the side experiments, measured.

Writes `results/<experiment>/<timestamp>/`: the sweep's results.json and `side.json` (in-process
patterns, runaway, shared state, crashes, mixed workload). The verdicts and claims.md are
`report.claims`' job: they are computed from these two files alone, so they can be redone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rich.console import Console

from config import Settings
from config.pools import DEFAULT_POOLS
from experiments import inprocess, runner
from experiments.claims import isolation, killability, routing
from experiments.schema import Results, SideResults
from stack.redis_server import RedisServer

SIDE_FILE = "side.json"
INPROCESS = ([1, 2, 4], 60, 400_000)  # the in-process patterns: workers, square calls, work per call
T = TypeVar("T")


def run_claims(settings: Settings, path: Path, base: Path, console: Console) -> tuple[Results, SideResults, Path]:
    experiment = runner.load(path, settings)
    run_dir = runner.new_run_dir(base, experiment)
    console.print(f"claims [bold]{experiment.name}[/bold]: {len(experiment.cells)} sweep cells -> {run_dir}")
    results = runner.run_experiment(experiment, settings, run_dir, False, console)
    side = side_experiments(experiment.apply_settings(settings), run_dir, console)
    (run_dir / SIDE_FILE).write_text(json.dumps(side, indent=2) + "\n")
    return results, side, run_dir


def side_experiments(settings: Settings, run_dir: Path, console: Console) -> SideResults:
    """Claims 5 and 6, the in-process patterns and the mixed workload, on a private Redis.

    The probe tasks (tasks.probes: spin, bump, crash_once) are turned on for these workers only.
    """
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    python = str(settings.freethreaded_python) if settings.freethreaded_python.is_file() else None
    step = _Steps(console, 7 if python else 5)
    with RedisServer(run_dir / "side-redis") as server:
        s = settings.replace(broker_url=server.url, probes=True)
        patterns = step("inprocess", lambda: inprocess.sweep(*INPROCESS))
        if python:  # claim 1's in-process patterns without the GIL too
            patterns_ft = step("inprocess_ft", lambda: inprocess.sweep_on(python, *INPROCESS))
            label = step("freethreaded_python", lambda: inprocess.python_label(python))
        side: SideResults = {
            "cores": os.cpu_count() or 1,
            "inprocess": patterns,
            "runaway": step("runaway", lambda: [attempt for pool in DEFAULT_POOLS for attempt in
                                                killability.stop_runaway(s.replace(results=True), logs, pool)]),
            "shared_state": step("shared_state", lambda: [isolation.shared_state(s.replace(results=True), logs, pool)
                                                          for pool in DEFAULT_POOLS]),
            "crash": step("crash", lambda: [isolation.crash_loss(s, logs, pool, late)
                                            for pool in DEFAULT_POOLS for late in (True, False)]),
            "mixed": step("mixed", lambda: routing.run_mixed(s, logs)),
        }
    if python:
        side["inprocess_ft"], side["freethreaded_python"] = patterns_ft, label
    return side


class _Steps:
    """Runs the side experiments in order, saying which (`side experiment 2 of 5: runaway`)."""

    def __init__(self, console: Console, total: int) -> None:
        self.console, self.total, self.done = console, total, 0

    def __call__(self, name: str, run: Callable[[], T]) -> T:
        self.done += 1
        self.console.print(f"side experiment {self.done} of {self.total}: {name}")
        return run()


def load_run(run_dir: Path) -> tuple[Results, SideResults]:
    """A finished claims run's two files, to judge or report again without measuring."""
    results: Results = json.loads((run_dir / "results.json").read_text())
    side: SideResults = json.loads((run_dir / SIDE_FILE).read_text())
    return results, side
