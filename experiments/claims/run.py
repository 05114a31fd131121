"""`make claims`: the claim sweep (a normal experiment file), the side experiments, verdicts, report.

Writes `results/<experiment>/<timestamp>/`: the sweep's own results.json and
report, `side.json` (in-process patterns, runaway, shared state, crashes, mixed
workload), `verdicts.json`, and `claims.md` / `claims.html` with a section and a
plot per claim.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from config import Settings
from experiments import inprocess, runner, spec
from experiments.claims import isolation, killability, routing, verdicts
from stack.redis_server import RedisServer


def run_claims(settings: Settings, path: Path, base: Path, console: Console) -> Path:
    experiment = spec.load(path)
    run_dir = runner.new_run_dir(base, experiment)
    console.print(f"claims [bold]{experiment.name}[/bold]: {len(experiment.cells)} sweep cells -> {run_dir}")
    results = runner.run_experiment(experiment, settings, run_dir, False, console)
    side = side_experiments(experiment.apply_settings(settings), run_dir, console)
    (run_dir / "side.json").write_text(json.dumps(side, indent=2) + "\n")
    found, report = judge_and_report(results, side, run_dir)
    for verdict in found:
        console.print(f"claim {verdict['claim']}: [bold]{verdict['verdict']}[/bold] "
                      f"({verdict['figure']} {verdict['unit']})")
    console.print(f"wrote {run_dir / 'verdicts.json'} and {report}")
    return run_dir


def side_experiments(settings: Settings, run_dir: Path, console: Console) -> dict[str, Any]:
    """Claims 5 and 6, the in-process patterns and the mixed workload, on a private Redis."""
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    steps: list[tuple[str, Callable[[Settings], Any]]] = [
        ("inprocess", lambda s: [r.as_dict() for r in inprocess.sweep([1, 2, 4], 60, 400_000)]),
        ("runaway", lambda s: [a.as_dict() for pool in ("threads", "prefork")
                               for a in killability.stop_runaway(s.replace(results=True), logs, pool)]),
        ("shared_state", lambda s: [{**vars(r), "shared": r.shared}
                                    for r in (isolation.shared_state(s.replace(results=True), logs, pool)
                                              for pool in ("threads", "prefork"))]),
        ("crash", lambda s: [isolation.crash_loss(s, logs, pool, late).as_dict()
                             for pool in ("threads", "prefork") for late in (True, False)]),
        ("mixed", lambda s: [m.as_dict() for m in routing.run_mixed(s, logs)]),
    ]
    side: dict[str, Any] = {"cores": os.cpu_count() or 1}
    with RedisServer(run_dir / "side-redis") as server:
        side_settings = settings.replace(broker_url=server.url)
        for index, (name, step) in enumerate(steps, 1):
            console.print(f"side experiment {index} of {len(steps)}: {name}")
            side[name] = step(side_settings)
    return side


def judge_and_report(results: dict[str, Any], side: dict[str, Any], run_dir: Path) -> tuple[list[dict[str, Any]], Path]:
    """Verdicts from the measurements alone, then claims.md/.html; rerunnable on a finished run."""
    from report.claims import write_claims_report

    found = judge(results, side)
    (run_dir / "verdicts.json").write_text(json.dumps(found, indent=2) + "\n")
    return found, write_claims_report(results, side, found, run_dir)


def rejudge(run_dir: Path) -> Path:
    results = json.loads((run_dir / "results.json").read_text())
    side = json.loads((run_dir / "side.json").read_text())
    return judge_and_report(results, side, run_dir)[1]


def judge(results: dict[str, Any], side: dict[str, Any]) -> list[dict[str, Any]]:
    cells, cores = results["cells"], side["cores"]
    return [
        verdicts.gil(cells, cores, side["inprocess"]),
        verdicts.io(cells),
        verdicts.memory(cells),
        verdicts.startup(cells),
        verdicts.killable(side["runaway"]),
        verdicts.shared(side["shared_state"], side["crash"]),
    ]
