"""`lab map`: the decision map (config/experiments/map.toml) and the convoy experiment, measured.

The map is a normal experiment file run by the normal runner (results.json); the convoy figure's
points come from `experiments.convoy` on a Redis and latency server of their own (convoy.json).
The pictures and map.md are `report.decision_map`'s job, from these two files alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from config import Settings
from experiments import runner
from experiments.convoy import run_convoy
from experiments.schema import ConvoyPoint, Results
from stack.latency_server import LatencyServer
from stack.redis_server import RedisServer

CONVOY_FILE = "convoy.json"


def run_map(settings: Settings, path: Path, base: Path, console: Console) -> tuple[Results, list[ConvoyPoint], Path]:
    experiment = runner.load(path, settings)
    run_dir = runner.new_run_dir(base, experiment)
    console.print(f"map [bold]{experiment.name}[/bold]: {len(experiment.cells)} cells, then the convoy -> {run_dir}")
    results = runner.run_experiment(experiment, settings, run_dir, False, console)
    logs = run_dir / "logs"
    with RedisServer(run_dir / "convoy-redis") as redis, LatencyServer(logs / "convoy-latency.log") as latency:
        convoy_settings = experiment.apply_settings(settings).replace(
            broker_url=redis.url, latency_server=f"{latency.host}:{latency.port}", queue_prefix="convoy")
        convoy = run_convoy(convoy_settings, logs, console)
    (run_dir / CONVOY_FILE).write_text(json.dumps(convoy, indent=2) + "\n")
    return results, convoy, run_dir


def load_map(run_dir: Path) -> tuple[Results, list[ConvoyPoint]]:
    """A finished map's two files, to draw again without measuring."""
    results: Results = json.loads((run_dir / "results.json").read_text())
    convoy: list[ConvoyPoint] = json.loads((run_dir / CONVOY_FILE).read_text())
    return results, convoy
