"""`producer`: parse the command line and delegate. Errors are one line and exit 2."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click
from rich.console import Console

from config import Settings, SettingsError
from config.constants import EXIT_FAILURE, EXIT_USAGE, MAX_TASKS_PER_RUN
from experiments.spec import SpecError
from producer.publish import PlanError, SendPlan, parse_pools
from producer.run import run, summary_table
from tasks.connections import BrokerUnreachable


@click.group()
def cli() -> None:
    """Enqueue lab tasks to Redis and watch them drain."""


@cli.command()
@click.option("--task", "workload", default="square", help="square (CPU-bound) or sleep (I/O-bound).")
@click.option("-n", "--count", type=int, default=100, help=f"Tasks per pool (1..{MAX_TASKS_PER_RUN:,}).")
@click.option("--pool", "pools", default="both", help="threads, prefork, both, or a comma-separated list.")
@click.option("--work", type=int, default=None, help="square: loop iterations (CPU cost).")
@click.option("--seconds", type=float, default=0.1, help="sleep: seconds each task waits.")
@click.option("--rate", type=float, default=None, help="Tasks per second (default: one burst).")
@click.option("--wait/--no-wait", default=False, help="Wait until every task has ended, then summarise.")
@click.option("--timeout", type=float, default=600.0, help="Seconds to wait at most.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def send(workload: str, count: int, pools: str, work: int | None, seconds: float, rate: float | None,
         wait: bool, timeout: float, as_json: bool) -> None:
    """Enqueue COUNT tasks to each chosen pool's queue."""
    if not (math.isfinite(timeout) and timeout > 0):
        raise click.BadParameter(f"must be a positive number of seconds, got {timeout}", param_hint="'--timeout'")
    settings = Settings.from_env()
    extra = {"work": work} if work is not None else {}
    plan = SendPlan(workload, count, parse_pools(pools), seconds=seconds, rate=rate, **extra)  # type: ignore[arg-type]
    console = Console(stderr=as_json)
    report = run(settings, plan, wait, timeout, console)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        console.print(summary_table(report))
    if report.sent.interrupted:  # SIGINT/SIGTERM: every batch counted as sent is in Redis, no other
        click.echo(f"producer: interrupted: sent {report.sent.total} of {plan.total} (run {plan.run_id})", err=True)
        sys.exit(130)
    if report.accounting and (report.accounting.lost or report.accounting.failed):
        sys.exit(EXIT_FAILURE)


@cli.group()
def experiment() -> None:
    """Load experiments: pools x concurrency x workloads, measured, with a report."""


@experiment.command("run")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--attach", is_flag=True, help="Measure the running stack's workers instead of starting them.")
@click.option("--resume", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Continue an interrupted run in this results directory, skipping finished cells.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("results"),
              help="Base directory for results/<experiment>/<timestamp>/.")
def experiment_run(file: Path, attach: bool, resume: Path | None, out: Path) -> None:
    """Run the experiment FILE (e.g. config/experiments/quick.toml) and write its report."""
    from experiments.entry import run_file

    sys.exit(run_file(Settings.from_env(), file, attach, resume, out, Console()))


@experiment.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
def experiment_report(run_dir: Path) -> None:
    """Re-render report.md/.html and the plots of RUN_DIR from its results.json (no measuring)."""
    from report.build import rebuild

    if not (run_dir / "results.json").is_file():
        raise click.UsageError(f"{run_dir} has no results.json")
    click.echo(f"wrote {rebuild(run_dir)}")


@experiment.command("claims")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False),
                default=Path("config/experiments/claims.toml"))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("results"))
def experiment_claims(file: Path, out: Path) -> None:
    """Measure every claim of the article: the FILE sweep plus the side experiments -> verdicts.json."""
    from experiments.claims.run import run_claims

    run_claims(Settings.from_env(), file, out, Console())


def main() -> None:
    """Run the CLI, turning every expected error into one line on stderr and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"producer: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except (SettingsError, PlanError, BrokerUnreachable, SpecError) as exc:
        click.echo(f"producer: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
