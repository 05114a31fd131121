"""The lab across hosts under four faults in one long run: does every task still end, and what does each cost?

    .venv/bin/python -m benchmarks.compose_faults [--tasks 100000] [--out results/compose-faults]
        [--cpu-ms 2] [--io-ms 20] [--io socket|sleep] [--rate PER_S] [--replicas 2]
        [--visibility-timeout 10] [--at 0.1,0.3,0.5,0.7]

(`make compose-faults`, `COMPOSE_FAULTS_TASKS=...`). It brings the compose stack up on the engine
stack/compose/engine.py picks, with compose/faults.yml (Redis published on 127.0.0.1 for this
harness only), `--replicas` containers of each worker and a short visibility timeout; runs the
producer service in the compose network (`mixed` tasks, both pools, a burst unless `--rate`);
and, while the run goes, strikes the four faults of stack/compose/faults.py one after the other at
the fractions of tasks ended given by `--at`, each only once the previous one has recovered:

1. partition of a threads worker past the visibility timeout;
2. host loss of a prefork worker (its processes SIGKILLed; its restart policy brings it back);
3. broker restart (`compose restart redis`, AOF on its volume);
4. rolling restart of every worker replica, one at a time, warm shutdown (`stop_grace_period`).

A progress bar shows tasks ended, the rate over the last seconds and the ETA, with a line per
fault event. At the end every task is accounted for by id (tasks.ledger) and the summary goes to
OUT/summary.json: sent, done, failed, lost, duplicated, elapsed; per fault: when it struck, what
the workers it hit held, how long the fault lasted, the time to recover, and its duplicates with
what explains them. Then `down -v`. Exit 1 if a task was lost or failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from config.constants import EXIT_FAILURE
from producer.live import RecentRate
from stack.compose import engine as en
from stack.compose.faults import Fault, FaultStack, Harness, attribute, producer_summary, safely, settle
from stack.processes import wait_until
from tasks.ledger import RunLedger

FAULTS = ("partition", "host loss", "broker restart", "rolling restart")
DEFAULT_AT = (0.1, 0.3, 0.5, 0.7)
PRODUCER_TIMEOUT_S = 6 * 3600
PLAIN_PROGRESS_EVERY_S = 30.0


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line and exit 2 (the lab's rule for bad input)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def fractions(text: str) -> tuple[float, ...]:
    values = tuple(float(part) for part in text.split(","))
    increasing = all(a < b for a, b in itertools.pairwise(values))
    if len(values) != len(FAULTS) or not increasing or not 0 < values[0] <= values[-1] < 1:
        raise ValueError(text)
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(prog="compose_faults", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in all, half per pool (>= 400)")
    parser.add_argument("--out", type=Path, default=Path("results/compose-faults"))
    parser.add_argument("--cpu-ms", type=float, default=2.0)
    parser.add_argument("--io-ms", type=float, default=20.0)
    parser.add_argument("--io", choices=("socket", "sleep"), default="socket")
    parser.add_argument("--rate", type=float, default=None, help="tasks/s to send at (default: a burst)")
    parser.add_argument("--replicas", type=int, default=2, help="containers per pool (>= 2)")
    parser.add_argument("--visibility-timeout", type=int, default=10, help="seconds (5..600)")
    parser.add_argument("--at", type=fractions, default=DEFAULT_AT,
                        help="fractions of tasks ended at which the four faults strike, increasing, in (0, 1)")
    args = parser.parse_args(argv)
    if args.tasks < 400 or args.replicas < 2 or not 5 <= args.visibility_timeout <= 600:
        parser.error("--tasks must be >= 400, --replicas >= 2, --visibility-timeout in 5..600")
    return args


def workload(args: argparse.Namespace) -> list[str]:
    rate = ["--rate", str(args.rate)] if args.rate else []
    return ["--task", "mixed", "--cpu-ms", str(args.cpu_ms), "--io-ms", str(args.io_ms), "--io", args.io, *rate]


@dataclass
class Schedule:
    """The four faults, struck in order from their own thread; the main thread keeps the display."""

    stack: FaultStack
    run_id: str
    total: int
    at: tuple[float, ...]
    say: Callable[[str], None]
    faults: list[Fault] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def strike_all(self) -> None:
        try:
            with self.stack.clients() as (app, client):
                harness = Harness(self.stack, app, client, RunLedger(client, self.run_id), on_event=self.say)
                for name, fraction in zip(FAULTS, self.at, strict=True):
                    self.wait_for(harness.ledger, fraction)
                    self.faults.append(self.strike(harness, name))
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.done.set()

    def wait_for(self, ledger: RunLedger, fraction: float) -> None:
        wait_until(safely(lambda: ledger.distinct_finished() >= fraction * self.total), PRODUCER_TIMEOUT_S,
                   f"{fraction:.0%} of the run ended", interval=1.0)

    def strike(self, harness: Harness, name: str) -> Fault:
        containers = {pool: self.stack.project.containers(f"worker-{pool}") for pool in ("threads", "prefork")}
        if name == "partition":
            return harness.partition(containers["threads"][0])
        if name == "host loss":
            return harness.host_loss(containers["prefork"][0])
        if name == "broker restart":
            return harness.broker_restart()
        return harness.rolling_restart()


def follow(stack: FaultStack, run_id: str, total: int, schedule: Schedule, console: Console) -> None:
    """Tasks ended, the rate now and the ETA, until the faults are done and every task has ended."""
    rate = RecentRate(window_s=10.0)
    columns = (TextColumn("ended"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress, stack.clients() as (_, client):
        bar = progress.add_task("ended", total=total, rate="-/s")
        ledger = RunLedger(client, run_id)
        done, last_line = 0, time.monotonic()
        while (done < total or not schedule.done.is_set()) and schedule.error is None:
            done = ended(ledger, done)
            rate.add(time.monotonic(), done)
            per_s = rate.per_s()
            progress.update(bar, completed=done, rate=f"{per_s:,.0f}/s" if per_s is not None else "-/s")
            if not console.is_terminal and time.monotonic() - last_line > PLAIN_PROGRESS_EVERY_S:
                console.print(plain_progress(progress.tasks[bar].completed, total, per_s,
                                             progress.tasks[bar].time_remaining))
                last_line = time.monotonic()
            time.sleep(0.5)


def plain_progress(done: float, total: int, per_s: float | None, eta_s: float | None) -> str:
    """The bar as one line, for a log file (rich draws no live bar where stdout is not a terminal)."""
    rate = f"{per_s:,.0f}/s" if per_s is not None else "-/s"
    eta = f"{eta_s / 60:.1f} min" if eta_s is not None else "-"
    return f"ended {done:,.0f}/{total:,} ({done / total:.0%}), {rate}, ETA {eta}"


def ended(ledger: RunLedger, last: int) -> int:
    """Distinct tasks ended; the last count while Redis restarts."""
    try:
        return ledger.distinct_finished()
    except (redis.ConnectionError, redis.TimeoutError):
        return last


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    engine = en.choose_engine()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as private:  # the env file holds the stack's passwords
        stack = FaultStack.create(engine, Path(private), args.replicas, args.visibility_timeout)
        return run_on(stack, args, console)


def run_on(stack: FaultStack, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    engine = stack.engine
    per_pool, run_id = args.tasks // 2, f"faults-{uuid.uuid4().hex[:8]}"
    total = 2 * per_pool
    try:
        with stack.clients() as (app, _):
            console.print(f"compose on {engine.name}: " + "; ".join(f"{k}: {v}" for k, v in engine.versions().items()))
            started = time.monotonic()
            stack.up(app)
            console.print(f"stack up in {time.monotonic() - started:.0f} s: {', '.join(stack.workers.values())}")
            schedule = Schedule(stack, run_id, total, args.at, console.print)
            started = time.monotonic()
            producer = stack.start_producer(run_id, per_pool, workload(args), args.out / "producer.log",
                                            PRODUCER_TIMEOUT_S)
            threading.Thread(target=schedule.strike_all, daemon=True).start()
            follow(stack, run_id, total, schedule, console)
            if schedule.error is not None:
                raise schedule.error
            summary = producer_summary(producer, PRODUCER_TIMEOUT_S)
            return account(stack, args, run_id, schedule, summary, time.monotonic() - started)
    finally:
        stack.save_logs(args.out / "logs")
        stack.down()


def account(stack: FaultStack, args: argparse.Namespace, run_id: str, schedule: Schedule,
            producer: dict[str, Any], elapsed_s: float) -> dict[str, Any]:
    """Settle, then every task by id, and every fault with its duplicates."""
    with stack.clients() as (app, client):
        ledger = RunLedger(client, run_id)
        harness = Harness(stack, app, client, ledger, schedule.faults)
        settle(harness)
        acc = ledger.account(args.tasks // 2 * 2, stack.queues)
        per_fault, unexplained = attribute(schedule.faults, ledger.duplicates())
    return {"sent": acc.sent, "done": acc.completed, "failed": acc.failed, "lost": acc.lost,
            "duplicated": acc.duplicated, "queued": acc.queued, "elapsed_s": round(elapsed_s, 1),
            "tasks_per_s": round(acc.sent / elapsed_s, 1),
            "faults": [fault.summary(mine) for fault, mine in zip(schedule.faults, per_fault, strict=True)],
            "duplicates_no_fault_explains": [d.task_id for d in unexplained],
            "producer": producer, "workload": workload(args), "replicas_per_pool": args.replicas,
            "workers": list(stack.workers.values()), "visibility_timeout_s": stack.visibility_timeout,
            "engine": stack.engine.versions(), "run_id": run_id,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def table(summary: dict[str, Any]) -> str:
    """The fault table as markdown (docs/faults.md)."""
    rows = ["| fault | struck at (ended) | workers hit | in flight | fault lasted | recovered after | duplicated "
            "| of them in flight when struck | first on a hit worker | again on a hit worker |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for fault in summary["faults"]:
        rows.append(f"| {fault['fault']} | {fault['done_at']:,} | {len(fault['workers'])} | {fault['in_flight']} "
                    f"| {fault['fault_s']} s | {fault['recovered_s']} s | {fault['duplicated']} "
                    f"| {fault['in_flight_when_struck']} | {fault['first_on_hit_worker']} "
                    f"| {fault['again_on_hit_worker']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console(soft_wrap=True)  # long event lines and the table stay whole in a log file
    summary = run(args, console)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(table(summary))
    console.print({key: summary[key] for key in ("sent", "done", "failed", "lost", "duplicated", "elapsed_s")})
    console.print(f"wrote {args.out / 'summary.json'}")
    if summary["lost"] or summary["failed"]:
        sys.exit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
