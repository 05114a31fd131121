"""`send`: enqueue COUNT tasks of one workload; its parameter options come from the catalogue."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from config import Settings
from config.constants import EXIT_FAILURE, MAX_TASKS_PER_RUN
from producer.publish import SendPlan, parse_pools
from producer.run import run, summary_table
from tasks import workloads
from tasks.workloads import WORKLOADS, Param


class WorkloadChoice(click.Choice):
    """--task: one of the catalogue's workloads (listed in --help); otherwise the catalogue's own one line."""

    def __init__(self) -> None:
        super().__init__(tuple(WORKLOADS))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return workloads.workload(value).name
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _parameter_options() -> dict[str, Param]:
    """One option per parameter name over all workloads (`--work`, `--seconds`, ...)."""
    options: dict[str, Param] = {}
    for workload in WORKLOADS.values():
        for param in workload.params:
            other = options.setdefault(param.name, param)
            if other.kind is not param.kind:
                raise TypeError(f"parameter {param.name!r} has two types in the catalogue")
    return options


PARAMETERS = _parameter_options()


def with_parameter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for name, param in reversed(PARAMETERS.items()):
        users = ", ".join(w.name for w in WORKLOADS.values() if any(p.name == name for p in w.params))
        kind = click.Choice(param.choices) if param.choices else param.kind
        command = click.option(param.option, name, type=kind, default=None,
                               help=f"{users}: {param.help} (default {param.default}).")(command)
    return command


def chosen_parameters(workload: str, given: dict[str, Any]) -> dict[str, Any]:
    """The parameter options given on the command line; those of another workload are an error."""
    values = {name: value for name, value in given.items() if value is not None}
    own = {param.name for param in WORKLOADS[workload].params}
    stray = [PARAMETERS[name].option for name in values if name not in own]
    if stray:
        allowed = ", ".join(PARAMETERS[name].option for name in own) or "none"
        raise click.UsageError(f"{stray[0]} does not apply to --task {workload} (its options: {allowed})")
    return values


@click.command()
@click.option("--task", "workload", type=WorkloadChoice(), default="square", help="The workload.")
@click.option("-n", "--count", type=int, default=100, help=f"Tasks per pool (1..{MAX_TASKS_PER_RUN:,}).")
@click.option("--pool", "pools", default="both", help="threads, prefork, both, all, or a comma-separated list.")
@with_parameter_options
@click.option("--rate", type=float, default=None, help="Tasks per second (default: one burst).")
@click.option("--wait/--no-wait", default=False, help="Wait until every task has ended, then summarise.")
@click.option("--timeout", type=float, default=600.0, help="Seconds to wait at most.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--run-id", default=None, help="The run's id in the ledger (default: a fresh one), to follow it "
                                             "from elsewhere while it runs.")
def send(workload: str, count: int, pools: str, rate: float | None, wait: bool, timeout: float, as_json: bool,
         run_id: str | None, **parameters: Any) -> None:
    """Enqueue COUNT tasks to each chosen pool's queue (nothing is sent if anything is invalid)."""
    if not (math.isfinite(timeout) and timeout > 0):
        raise click.BadParameter(f"must be a positive number of seconds, got {timeout}", param_hint="'--timeout'")
    plan = SendPlan(workload, count, parse_pools(pools), chosen_parameters(workload, parameters), rate=rate)
    if run_id is not None:
        plan = dataclasses.replace(plan, run_id=run_id)
    console = Console(stderr=as_json)
    report = run(Settings.from_env(), plan, wait, timeout, console)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        console.print(summary_table(report))
    if report.sent.interrupted:  # SIGINT/SIGTERM: every batch counted as sent is in Redis, no other
        prog = click.get_current_context().find_root().info_name
        click.echo(f"{prog}: interrupted: sent {report.sent.total} of {plan.total} (run {plan.run_id})", err=True)
        sys.exit(130)
    if report.accounting and (report.accounting.lost or report.accounting.failed):
        sys.exit(EXIT_FAILURE)
