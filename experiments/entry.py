"""Running an experiment file: load and check it, choose the run directory, run it.

Bad input (unreadable or invalid file, a run directory of another file) raises SpecError
before anything starts; the CLI turns it into one line and exit 2.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from config import Settings
from config.constants import EXIT_FAILURE, EXIT_OK
from experiments import runner, spec
from experiments.schema import Results


def run_file(settings: Settings, path: Path, attach: bool, resume: Path | None, base: Path,
             console: Console) -> tuple[Results, Path]:
    """Run (or resume) an experiment; return its results and the run directory."""
    experiment = runner.load(path, settings)
    if attach and not settings.broker_url:
        raise spec.SpecError("--attach needs a running stack (make up) or LAB_BROKER_URL")
    if resume is not None:
        runner.check_resumable(resume, experiment)
        run_dir = resume
    else:
        run_dir = runner.new_run_dir(base, experiment)
    console.print(f"experiment [bold]{experiment.name}[/bold]: {len(experiment.cells)} cells -> {run_dir}")
    try:
        return runner.run_experiment(experiment, settings, run_dir, attach, console), run_dir
    except KeyboardInterrupt:
        console.print(f"interrupted: continue with --resume {run_dir}")
        raise


def exit_code(results: Results, console: Console) -> int:
    """1 if any cell lost, duplicated or left tasks (and say which), else 0."""
    unhealthy = [cell["id"] for cell in results["cells"] if not cell["healthy"]]
    if unhealthy:
        console.print(f"[red]cells with lost, duplicated or unfinished tasks: {', '.join(unhealthy)}[/red]")
        return EXIT_FAILURE
    return EXIT_OK
