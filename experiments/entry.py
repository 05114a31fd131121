"""`producer experiment run FILE`: load and check the file, choose the run directory, run, report.

Bad input (unreadable or invalid file, a run directory of another file) raises
SpecError before anything starts; the CLI turns it into one line and exit 2.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from config import Settings
from config.constants import EXIT_FAILURE, EXIT_OK
from experiments import runner, spec


def run_file(settings: Settings, path: Path, attach: bool, resume: Path | None, base: Path,
             console: Console) -> int:
    """Run (or resume) an experiment; exit code 1 if any cell lost, duplicated or left tasks."""
    experiment = spec.load(path)
    if attach and not settings.broker_url:
        raise spec.SpecError("--attach needs a running stack (make up) or LAB_BROKER_URL")
    if resume is not None:
        runner.check_resumable(resume, experiment)
        run_dir = resume
    else:
        run_dir = runner.new_run_dir(base, experiment)
    console.print(f"experiment [bold]{experiment.name}[/bold]: {len(experiment.cells)} cells -> {run_dir}")
    try:
        results = runner.run_experiment(experiment, settings, run_dir, attach, console)
    except KeyboardInterrupt:
        console.print(f"interrupted: continue with --resume {run_dir}")
        raise
    unhealthy = [cell["id"] for cell in results["cells"] if not cell["healthy"]]
    if unhealthy:
        console.print(f"[red]cells with lost, duplicated or unfinished tasks: {', '.join(unhealthy)}[/red]")
        return EXIT_FAILURE
    return EXIT_OK
