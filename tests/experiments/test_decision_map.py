"""The decision map end to end on a tiny grid, and the convoy on one pool: real workers, real sockets."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from config import Settings
from experiments import runner
from experiments.convoy import run_convoy
from experiments.spec import parse
from report.decision_map import METRICS, grid, rank, write_map_report

TINY_MAP = """
name = "tinymap"
description = "two CPU shares, two pools"
repetitions = 1
reuse_workers = true
enqueue = false
redis_benchmark = false
[[cells]]
label = "cap-io"
pools = ["threads", "prefork"]
concurrency = ["cores"]
workload = "mixed"
params = { cpu_ms = 0.0, io_ms = 20.0 }
duration = 0.4
[[cells]]
label = "cap-cpu"
pools = ["threads", "prefork"]
concurrency = ["cores"]
workload = "mixed"
params = { cpu_ms = 10.0, io_ms = 10.0 }
duration = 0.4
[[cells]]
label = "lat-cpu"
pools = ["threads", "prefork"]
concurrency = ["cores"]
workload = "mixed"
params = { cpu_ms = 10.0, io_ms = 10.0 }
arrival = "rate"
load = 0.5
load_base = "slowest"
duration = 1.0
"""


def test_a_fixed_rate_is_shared_by_every_pool_and_durations_size_the_cells() -> None:
    cells = parse(TINY_MAP).cells
    latency = [c for c in cells if c.arrival.mode == "rate"]
    assert len({c.arrival.rate for c in latency}) == 1, "one rate for every pool at a concurrency"
    io_cell = next(c for c in cells if c.label == "cap-io" and c.pool == "threads")
    assert io_cell.tasks >= 2 * io_cell.concurrency


@pytest.mark.slow
def test_the_map_runs_reuses_workers_and_draws_every_picture(settings: Settings, tmp_path: Path) -> None:
    console = Console(file=io.StringIO(), width=200)
    results = runner.run_experiment(parse(TINY_MAP), settings, tmp_path, console=console)
    assert all(c["lost"] == 0 and c["healthy"] for c in results["cells"])
    assert len({c["startup_s"] for c in results["cells"] if c["pool"] == "prefork"}) == 1, "one prefork worker"
    assert all(c["io_inflation"] is not None and c["io_inflation"] >= 0.99 for c in results["cells"])
    capacity = grid(results["cells"], latency=False)
    assert len(capacity) == 2 and all(rank(square, METRICS[0]) for square in capacity.values())
    convoy = run_convoy(settings, tmp_path, console, pools=("threads",), shares=(0.0, 0.5), seconds=2.0)
    assert [p["cpu_share"] for p in convoy] == [0.0, 0.5]
    assert all(p["lost"] == 0 and (p["io_p50_s"] or 0) >= 0.005 for p in convoy)
    report = write_map_report(results, convoy, tmp_path).read_text()
    assert "## Every square" in report and "## The convoy" in report and "lost 0" in report
    for name in ("map-capacity", "map-latency", "map-per_mb", "convoy"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
