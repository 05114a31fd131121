"""One cell's measurement: for each repetition, feed the queue, wait for the drain, account.

Throughput is the drain rate from the ledger's timestamps (first task started to
last task finished), so worker start-up and the producer's speed stay out of it.
With the timing instrumentation off only counts exist, so the wall-clock rate
(resume to the poll that saw the last task end) is kept for every repetition too:
the harness-overhead comparison uses it on both sides.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from config import Settings
from experiments import redis_stats, targets
from experiments.flower_check import FlowerCheck
from experiments.schema import FlowerRun
from experiments.spec import Cell
from producer.publish import SendPlan, publish
from stack import processes
from stack.latency_server import LatencyServer
from stack.relay import DelayRelay
from tasks.connections import client_app
from tasks.ledger import Accounting, RunLedger, Timings

POLL_S = 0.02
LEDGER_ERROR = "record_end at"  # Celery logs "Signal handler <function ...record_end at 0x..> raised"

Progress = Callable[[int, int], None]


@dataclass
class Context:
    """What every cell of a run shares."""

    settings: Settings
    client: redis.Redis
    log_dir: Path
    ideal: Callable[[Cell, int], float | None]
    attach: bool = False
    flower: FlowerCheck | None = None
    on_progress: Progress | None = None
    stall_s: float = 10.0  # no task ended and none pending for this long: the rest are lost
    latency: LatencyServer | None = None  # the run's latency server, whose own CPU each repetition reports
    relays: dict[float, DelayRelay] = field(default_factory=dict)  # RTT (ms) -> the relay the workers use


@dataclass
class Repetition:
    accounting: Accounting
    timings: Timings
    drain_per_s: float
    wall_per_s: float
    cpu_cores: float | None
    memory_mb: float | None
    calls: dict[str, int]
    flower: FlowerRun | None = None
    latency_cpu_s: float | None = None  # the latency server's CPU during the repetition
    wall_s: float | None = None  # resume (prefill) or first send -> last task ended: the drain's wall time
    others_cores: float | None = None  # cores busy outside the worker while it drained
    relay_cpu_s: float | None = None  # the delaying relay's CPU during the repetition (cells with an RTT)
    redis_cpu_s: float | None = None  # Redis' own CPU during the repetition (INFO cpu), the harness's share included
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellRun:
    cell: Cell
    target: targets.Target
    ideal_per_s: float | None
    rate_per_s: float | None
    repetitions: list[Repetition]
    ledger_errors: int = 0  # failed ledger writes in the worker log: those tasks ran but look lost
    untimed: list[Repetition] = field(default_factory=list)  # the timing-off half of a paired cell


def cell_settings(ctx: Context, cell: Cell) -> Settings:
    return ctx.settings.replace(**cell.setting_overrides) if cell.overrides else ctx.settings


def measure_cell(ctx: Context, cell: Cell, shared: targets.Target | None = None) -> CellRun:
    """Start (or attach to) the cell's worker, run every repetition, stop the worker.

    With `shared`, the cell runs on that worker (already started for cells that need the same one).
    """
    settings = cell_settings(ctx, cell)
    if not ctx.attach:  # never empty a queue of a stack we only visit
        purge(ctx.client, settings.queue_for(cell.pool))
    worker = contextlib.nullcontext(shared) if shared is not None else worker_for(ctx, cell, settings)
    with worker as target:
        ideal = ctx.ideal(cell, target.concurrency)
        rate = _arrival_rate(cell, ideal)
        reps: list[Repetition] = []
        untimed: list[Repetition] = []
        for i in range(cell.repetitions):
            if not cell.paired_untimed:
                reps.append(run_repetition(ctx, cell, settings, target, rate))
                continue
            for timing in pair_order(i):
                (reps if timing else untimed).append(run_repetition(ctx, cell, settings, target, rate, timing=timing))
    return CellRun(cell, target, _capped(ideal, rate), rate, reps, _ledger_errors(ctx, cell), untimed)


def pair_order(i: int) -> tuple[bool, bool]:
    """Timing on/off, then off/on, ...: on one worker, minutes apart at most, neither always first.

    The harness overhead is a few percent while this machine's speed drifts by more within
    minutes: only repetitions paired in time compare the instrumentation and not the drift.
    """
    return (True, False) if i % 2 == 0 else (False, True)


def worker_for(ctx: Context, cell: Cell, settings: Settings) -> contextlib.AbstractContextManager[targets.Target]:
    if ctx.attach:
        return targets.attached(settings, cell.pool)
    log = ctx.log_dir / f"worker-{cell.id}.log"
    return targets.started(settings, cell.pool, cell.concurrency, cell.worker_args, log,
                           worker_settings=through_relay(ctx, cell, settings))


def through_relay(ctx: Context, cell: Cell, settings: Settings) -> Settings:
    """The worker's settings: its broker behind the cell's relay, its ledger records still direct.

    Only the worker pays the RTT: the runner's producer, control commands and ledger reads stay
    direct, and so do the worker's ledger writes (harness traffic a real deployment does not have).
    """
    if not cell.rtt_ms:
        return settings
    broker = settings.require_broker()
    return settings.replace(broker_url=ctx.relays[cell.rtt_ms].url_through(broker), ledger_url=broker)


def run_repetition(ctx: Context, cell: Cell, settings: Settings, target: targets.Target,
                   rate: float | None = None, between: Callable[[], None] | None = None,
                   timing: bool | None = None) -> Repetition:
    """Send the cell's tasks, wait until all ended (or the run stalls), and account for every one.

    `between` runs after a prefilled queue is filled and before the worker resumes
    (the accounting tests use it to lose a message on purpose).
    """
    plan = plan_for(cell, target.pool, rate, cell.timing if timing is None else timing)
    ledger = RunLedger(ctx.client, plan.run_id)
    queue = settings.queue_for(target.pool)
    calls_before = redis_stats.command_calls(ctx.client)
    redis_cpu_before = redis_stats.server_cpu_seconds(ctx.client)
    cpu_before = target.cpu_seconds()
    machine_before = processes.machine_busy_seconds()
    server_before = ctx.latency.cpu_seconds() if ctx.latency else None
    relay = ctx.relays.get(cell.rtt_ms) if cell.rtt_ms else None
    relay_before = relay.cpu_seconds() if relay else None
    flower = ctx.flower if settings.events else None  # Flower only sees workers that send task events
    flower_before = flower.succeeded(target.name) if flower else None
    started = _feed(cell, settings, target, plan, between)
    on_progress = ctx.on_progress
    ended = ledger.wait(plan.total, timeout=3600.0, queues=[queue], stall_s=ctx.stall_s, poll_s=POLL_S,
                        on_progress=(lambda done: on_progress(done, plan.total)) if on_progress else None).at
    cpu_after = target.cpu_seconds()
    machine_after = processes.machine_busy_seconds()
    calls = redis_stats.delta(calls_before, redis_stats.command_calls(ctx.client))
    redis_cpu = redis_stats.server_cpu_seconds(ctx.client) - redis_cpu_before
    ledger.drain_timings()
    accounting = ledger.account(plan.total, [queue])
    rep = Repetition(
        accounting=accounting,
        timings=ledger.timings,
        drain_per_s=ledger.timings.drain_rate(),
        wall_per_s=accounting.completed / (ended - started) if ended > started else math.nan,
        cpu_cores=_cores(cpu_before, cpu_after, ledger.timings, ended - started),
        memory_mb=target.memory_mb(),
        calls=calls,
        latency_cpu_s=ctx.latency.cpu_seconds() - server_before if ctx.latency and server_before is not None else None,
        wall_s=ended - started,
        others_cores=_others_cores(machine_after - machine_before, cpu_before, cpu_after, ended - started),
        relay_cpu_s=relay.cpu_seconds() - relay_before if relay and relay_before is not None else None,
        redis_cpu_s=redis_cpu,
    )
    if flower and flower_before is not None:
        rep.flower = flower.compare(target.name, flower_before, accounting.completed)
    ledger.delete()
    return rep


def _feed(cell: Cell, settings: Settings, target: targets.Target, plan: SendPlan,
          between: Callable[[], None] | None) -> float:
    """Put the plan's tasks in the queue as the arrival mode says; return when the drain may start."""
    with client_app(settings) as app:
        if cell.arrival.mode != "prefill":
            started = time.monotonic()
            publish(app, settings, plan)
            return started
        target.pause()
        try:
            publish(app, settings, plan)
            if between:
                between()
        finally:
            target.resume()  # an attached worker must not stay paused, whatever happened
        return time.monotonic()


def plan_for(cell: Cell, pool: str, rate: float | None, timing: bool = True) -> SendPlan:
    return SendPlan(cell.workload, cell.tasks, (pool,), cell.param, rate=rate, timing=timing,
                    definition=cell.definition)


def _ledger_errors(ctx: Context, cell: Cell) -> int:
    """How often the worker logged a failed ledger write (a started worker's log only)."""
    try:
        return (ctx.log_dir / f"worker-{cell.id}.log").read_text(errors="replace").count(LEDGER_ERROR)
    except OSError:
        return 0


def purge(client: redis.Redis, queue: str) -> None:
    """Empty a queue left over by an interrupted run, so it cannot pollute the next cell."""
    client.delete(queue)


def _arrival_rate(cell: Cell, ideal: float | None) -> float | None:
    if cell.arrival.mode != "rate":
        return None
    if cell.arrival.rate:
        return cell.arrival.rate
    if not ideal or not cell.arrival.load:
        raise ValueError(f"cell {cell.id}: load needs a workload with an ideal throughput")
    return cell.arrival.load * ideal


def _capped(ideal: float | None, rate: float | None) -> float | None:
    """At a fixed arrival rate the best possible throughput is that rate."""
    if ideal is None or rate is None:
        return ideal
    return min(ideal, rate)


def _others_cores(machine_s: float, before: float | None, after: float | None, wall: float) -> float | None:
    """Cores busy with anything but the worker during the repetition (harness, Redis, other work)."""
    if before is None or after is None or wall <= 0:
        return None
    return max(0.0, machine_s - (after - before)) / wall


def _cores(before: float | None, after: float | None, timings: Timings, wall: float) -> float | None:
    """Average cores the worker tree used while it drained the repetition."""
    if before is None or after is None:
        return None
    span = timings.last_finished - timings.first_started if timings.count else wall
    return (after - before) / span if span > 0 else None
