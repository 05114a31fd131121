"""Broker latency for an experiment: one delaying relay per RTT between the workers and Redis.

Cells with `rtt_ms` > 0 run their worker with its broker behind a relay (stack.relay) that adds
that round trip to every Redis command; the runner's producer and ledger reads, and the worker's
own ledger writes, stay direct (experiments.measure.through_relay). netem would be the usual
tool, but it is not in this kernel (stack.relay says how that is checked); the run records which
mechanism it used, and the relay's calibration: Redis PINGs through it against the set RTT,
against both baselines (an idle-matched direct PING, and a back-to-back one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from config import Settings
from experiments import round_trips
from experiments.measure import Context, cell_settings, run_repetition, worker_for
from experiments.spec import Arrival, Cell, Experiment, SpecError
from stack.relay import DelayRelay, calibrate, netem_available

MECHANISM = "relay"
CENSUS_TASKS = 60
CENSUS_PREFETCH = 4  # Celery's default multiplier


def rtts(experiment: Experiment) -> list[float]:
    """The RTTs (ms) the experiment's cells put between their workers and Redis; 0 is direct."""
    return sorted({cell.rtt_ms for cell in experiment.cells if cell.rtt_ms})


@contextlib.contextmanager
def relays(experiment: Experiment, settings: Settings, log_dir: Path,
           attach: bool) -> Iterator[dict[float, DelayRelay]]:
    """Start one relay per RTT in front of the broker, yield them by RTT, stop them all."""
    wanted = rtts(experiment)
    if not wanted:
        yield {}
        return
    if attach:
        raise SpecError("cells with rtt_ms need workers the runner starts; drop --attach")
    broker = settings.require_broker()
    if broker.startswith("unix:"):
        raise SpecError("cells with rtt_ms need a TCP broker (redis://), not a unix socket")
    started: dict[float, DelayRelay] = {}
    try:
        for rtt in wanted:
            started[rtt] = DelayRelay.for_url(broker, rtt, log_dir / f"relay-{rtt:g}ms.log").start()
        yield started
    finally:
        for relay in started.values():
            relay.stop()


def describe(settings: Settings, started: dict[float, DelayRelay], pings: int) -> dict[str, Any]:
    """Which mechanism delayed the workers, and each relay's calibration (once per experiment)."""
    broker = settings.require_broker()
    netem = netem_available()
    return {
        "mechanism": MECHANISM,
        "netem_available": netem,
        "why": ("netem is in this kernel, but on one machine it would delay the producer and the ledger "
                "on loopback too; the relay delays the workers only") if netem else
               "netem is not in this kernel (CONFIG_NET_SCH_NETEM unset): a delaying TCP relay in user space",
        "calibration": [calibrate(relay.url_through(broker), broker, rtt, pings=pings, relay=relay)
                        for rtt, relay in sorted(started.items())],
    }  # fmt: skip


def census(ctx: Context, experiment: Experiment) -> dict[str, Any]:
    """Per pool: Redis round trips per noop task behind the largest RTT (experiments.round_trips)."""
    top = max(rtts(experiment), default=0.0)
    chosen: dict[str, Cell] = {}
    for cell in experiment.cells:
        if cell.rtt_ms == top and (cell.pool not in chosen or cell.prefetch == CENSUS_PREFETCH):
            chosen[cell.pool] = cell
    return {pool: _census_of(ctx, replace(cell, label="census", workload="noop", params=(), tasks=CENSUS_TASKS,
                                          repetitions=1, arrival=Arrival("burst")))
            for pool, cell in chosen.items()}  # fmt: skip


def _census_of(ctx: Context, cell: Cell) -> dict[str, Any]:
    settings = cell_settings(ctx, cell)
    relay = ctx.relays[cell.rtt_ms]
    with worker_for(ctx, cell, settings) as target, round_trips.Recorder(settings.require_broker()) as recorder:
        rep = run_repetition(ctx, cell, settings, target)
        ports = round_trips.relay_ports(relay)
    ended = rep.accounting.completed + rep.accounting.failed
    return {"prefetch_multiplier": cell.prefetch, "concurrency": target.concurrency,
            **round_trips.summarise(recorder.commands, ports, ended, cell.rtt_ms)}
