"""`lab`: the stack's entry points. Compose, the native launcher and tests all use these."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from config import Settings, SettingsError, redact
from config.constants import DEFAULT_POOLS, EXIT_USAGE, POOLS
from stack import processes
from stack.prometheus import PrometheusError
from tasks.connections import BrokerUnreachable, wait_for_broker

BROKER_WAIT_S = 60.0


@click.group()
def cli() -> None:
    """Run the parts of the concurrency lab."""


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("pool", type=click.Choice(POOLS))
@click.option("--concurrency", "-c", type=click.IntRange(1, 10_000), default=None)
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
def worker(pool: str, concurrency: int | None, extra: tuple[str, ...]) -> None:
    """Exec a Celery worker for POOL on its own queue (waits for Redis first).

    Any further options go to `celery worker` unchanged (e.g. `--max-tasks-per-child 1`).
    """
    settings = Settings.from_env()
    wait_for_broker(settings.require_broker(), BROKER_WAIT_S)
    command = processes.worker_command(settings, pool, concurrency, extra)
    os.execve(command[0], command, processes.child_env(settings))


@cli.command()
def flower() -> None:
    """Exec Flower with basic auth on the configured address (waits for Redis first)."""
    settings = Settings.from_env()
    wait_for_broker(settings.require_broker(), BROKER_WAIT_S)
    command = processes.flower_command(settings)
    os.execve(command[0], command, processes.child_env(settings, processes.flower_env(settings)))


@cli.command()
@click.option("--pools", default=",".join(DEFAULT_POOLS), help="Comma-separated pools to run.")
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("results/stack"))
@click.option("--monitoring", is_flag=True, help="Also start Prometheus (Debian package) scraping Flower.")
def up(pools: str, run_dir: Path, monitoring: bool) -> None:
    """Start Redis (embedded unless LAB_BROKER_URL is set), the workers and Flower; Ctrl-C stops all."""
    from stack.foreground import run_foreground

    run_foreground(Settings.from_env(), [p for p in pools.split(",") if p], run_dir, monitoring)


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/demo"))
def demo(out: Path) -> None:
    """Start the stack, compare square and sleep on both pools, write summary.json, stop."""
    from experiments.demo import run_demo

    run_demo(Settings.from_env(), out)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"lab: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except (SettingsError, BrokerUnreachable, TimeoutError, PrometheusError) as exc:
        click.echo(f"lab: error: {redact(str(exc))}", err=True)
        sys.exit(EXIT_USAGE)
