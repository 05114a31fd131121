"""`lab`: the lab's front door. Every command parses its arguments and delegates.

The experiment and report packages are imported inside the commands that use them: they bring
matplotlib and add ~2 s to every start, and `lab worker` (what compose, the launcher and the
experiments start, and claim 4 times) must reach `exec celery` quickly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from cli import errors
from cli.send import send
from config import Settings
from config.pools import DEFAULT_POOLS, POOL_NAMES
from stack import processes
from tasks.latency import DEFAULT_PORT

RESULTS = Path("results")
ExistingDir = click.Path(path_type=Path, file_okay=False, exists=True)


@click.group()
def cli() -> None:
    """Threads or processes? Run the stack, send tasks, measure, report."""


cli.add_command(send)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("pool", type=click.Choice(POOL_NAMES))
@click.option("--concurrency", "-c", type=click.IntRange(1, 10_000), default=None)
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
def worker(pool: str, concurrency: int | None, extra: tuple[str, ...]) -> None:
    """Exec a Celery worker for POOL on its own queue (waits for Redis first).

    Any further options go to `celery worker` unchanged (e.g. `--max-tasks-per-child 1`).
    """
    processes.exec_worker(Settings.from_env(), pool, concurrency, extra)


@cli.command()
def flower() -> None:
    """Exec Flower with basic auth on the configured address (waits for Redis first)."""
    processes.exec_flower(Settings.from_env())


@cli.command()
@click.option("--pools", default=",".join(DEFAULT_POOLS), help="Comma-separated pools to run.")
@click.option("--run-dir", type=click.Path(path_type=Path), default=RESULTS / "stack")
@click.option("--monitoring", is_flag=True, help="Also start Prometheus (Debian package) scraping Flower.")
def up(pools: str, run_dir: Path, monitoring: bool) -> None:
    """Start Redis (embedded unless LAB_BROKER_URL is set), the workers and Flower; Ctrl-C stops all."""
    from stack.foreground import run_foreground

    run_foreground(Settings.from_env(), [p for p in pools.split(",") if p], run_dir, monitoring)


@cli.command("latency-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 in a container).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
def latency_server(host: str, port: int) -> None:
    """Answer each request after the delay it asks for (the socket I/O of `mixed` tasks)."""
    from stack.latency_server import run

    run(host, port)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), required=True)
@click.option("--target-host", default="127.0.0.1", show_default=True)
@click.option("--target-port", type=click.IntRange(1, 65535), required=True)
@click.option("--rtt-ms", type=click.FloatRange(0, 10_000), required=True, help="Round trip to add, in ms.")
def relay(host: str, port: int, target_host: str, target_port: int, rtt_ms: float) -> None:
    """Relay TCP to a target (Redis), adding a round-trip delay: a remote broker on one machine."""
    from stack.relay import run

    run(host, port, (target_host, target_port), rtt_ms)


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS / "demo")
def demo(out: Path) -> None:
    """Start the stack, compare square and sleep on both pools, write summary.json, stop."""
    from experiments.demo import run_demo

    run_demo(Settings.from_env(), out)


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), default=Path("config/experiments/quick.toml"))
@click.option("--attach", is_flag=True, help="Measure the running stack's workers instead of starting them.")
@click.option("--resume", type=ExistingDir, default=None, help="Continue an interrupted run in this directory.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=RESULTS)
def bench(file: Path, attach: bool, resume: Path | None, out: Path) -> None:
    """Run the experiment FILE and write results.json and its report (exit 1 if a task was lost)."""
    from experiments import entry
    from report import build

    console = Console()
    results, run_dir = entry.run_file(Settings.from_env(), file, attach, resume, out, console)
    console.print(f"wrote {run_dir / 'results.json'} and {build.write_report(results, run_dir)}")
    sys.exit(entry.exit_code(results, console))


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), default=Path("config/experiments/claims.toml"))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=RESULTS)
def claims(file: Path, out: Path) -> None:
    """Measure every claim of the article: the FILE sweep plus the side experiments, then verdicts."""
    from experiments.claims.run import run_claims
    from report.claims import judge_and_write

    console = Console()
    results, side, run_dir = run_claims(Settings.from_env(), file, out, console)
    judge_and_write(results, side, run_dir, console)


@cli.command("map")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), default=Path("config/experiments/map.toml"))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=RESULTS)
def decision_map(file: Path, out: Path) -> None:
    """The decision map: which pool wins as a task's CPU share grows, and the convoy figure -> map.md."""
    from experiments.decision_map import run_map
    from report.decision_map import write_map_report

    console = Console()
    results, convoy, run_dir = run_map(Settings.from_env(), file, out, console)
    console.print(f"wrote {write_map_report(results, convoy, run_dir)}")


@cli.command()
@click.option("--tasks", type=click.IntRange(4, 10_000_000), default=100_000, help="Tasks in all.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=RESULTS / "soak")
def soak(tasks: int, out: Path) -> None:
    """Mixed tasks through both pools while a worker is SIGKILLed and Redis restarted: 0 lost?"""
    from experiments.soak import run_soak

    run_soak(Settings.from_env(), tasks, out)


@cli.command()
@click.argument("target")
@click.option("--args", "args_json", default="[]", show_default=True, help="Positional arguments, a JSON list.")
@click.option("--kwargs", "kwargs_json", default="{}", show_default=True, help="Keyword arguments, a JSON object.")
@click.option("--calls", type=click.IntRange(5, 100_000), default=50, show_default=True, help="Calls to profile.")
@click.option("--max-memory-mb", type=click.FloatRange(min=1), default=None,
              help="Worker memory allowed (PSS summed over its process tree).")
@click.option("--p95-ms", type=click.FloatRange(min=0.001), default=None, help="p95 run time of a task allowed.")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Seconds one call may take before advise stops it.")
@click.option("--prove-seconds", type=click.FloatRange(0.5, 600), default=10.0, show_default=True,
              help="Seconds of draining per proved configuration, at its predicted rate.")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=RESULTS / "advise")
def advise(target: str, args_json: str, kwargs_json: str, calls: int, max_memory_mb: float | None,
           p95_ms: float | None, timeout: float, prove_seconds: float, json_out: Path | None, out: Path) -> None:
    """Profile TARGET (module:name, any callable or Celery task), predict, prove the top 3 on real workers."""
    from experiments.advise import parse_request, run_advice, run_dir_for
    from experiments.advise_model import Constraints
    from report.advise import finish

    constraints = Constraints(max_memory_mb, p95_ms / 1000 if p95_ms else None)
    request = parse_request(target, args_json, kwargs_json, calls=calls, constraints=constraints,
                            timeout_s=timeout, prove_s=prove_seconds)
    run_dir = run_dir_for(out, target)
    console = Console()
    finish(run_advice(Settings.from_env(), request, run_dir, console), run_dir, json_out, console)


@cli.command()
@click.argument("run_dir", type=ExistingDir)
def report(run_dir: Path) -> None:
    """Re-render a finished run's report (and claims, if it has them) from its files, without measuring."""
    from report.build import rerender

    try:
        written = rerender(run_dir)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for path in written:
        click.echo(f"wrote {path}")


def main() -> None:
    errors.run(cli, "lab")


if __name__ == "__main__":
    main()
