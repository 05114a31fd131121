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
from typing import Any

from rich.console import Console

from config import Settings
from config.pools import DEFAULT_POOLS
from experiments import inprocess, runner, spec
from experiments.claims import isolation, killability, routing
from experiments.schema import Results, SideResults
from stack.redis_server import RedisServer

SIDE_FILE = "side.json"


def run_claims(settings: Settings, path: Path, base: Path, console: Console) -> tuple[Results, SideResults, Path]:
    experiment = spec.load(path)
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
    steps: list[tuple[str, Callable[[Settings], Any]]] = [
        ("inprocess", lambda s: [r.as_dict() for r in inprocess.sweep([1, 2, 4], 60, 400_000)]),
        ("runaway", lambda s: [a.as_dict() for pool in DEFAULT_POOLS
                               for a in killability.stop_runaway(s.replace(results=True), logs, pool)]),
        ("shared_state", lambda s: [isolation.shared_state(s.replace(results=True), logs, pool).as_dict()
                                    for pool in DEFAULT_POOLS]),
        ("crash", lambda s: [isolation.crash_loss(s, logs, pool, late).as_dict()
                             for pool in DEFAULT_POOLS for late in (True, False)]),
        ("mixed", lambda s: [m.as_dict() for m in routing.run_mixed(s, logs)]),
    ]
    if settings.freethreaded_python.is_file():  # claim 1's in-process patterns without the GIL too
        python = str(settings.freethreaded_python)
        steps.insert(1, ("inprocess_ft", lambda s: inprocess.sweep_on(python, [1, 2, 4], 60, 400_000)))
        steps.insert(2, ("freethreaded_python", lambda s: inprocess.python_label(python)))
    side: dict[str, Any] = {"cores": os.cpu_count() or 1}
    with RedisServer(run_dir / "side-redis") as server:
        side_settings = settings.replace(broker_url=server.url, probes=True)
        for index, (name, step) in enumerate(steps, 1):
            console.print(f"side experiment {index} of {len(steps)}: {name}")
            side[name] = step(side_settings)
    return side  # type: ignore[return-value]


def load_run(run_dir: Path) -> tuple[Results, SideResults]:
    """A finished claims run's two files, to judge or report again without measuring."""
    results: Results = json.loads((run_dir / "results.json").read_text())
    side: SideResults = json.loads((run_dir / SIDE_FILE).read_text())
    return results, side
