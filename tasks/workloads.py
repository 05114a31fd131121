"""The workload catalogue: one entry per workload, all the lab knows about it in one place.

An entry holds the task's name and function, its parameters (type, default, limits; each is
also a `producer send` option and an experiment file's `params` key), how the producer builds
the arguments of the n-th task, and the costs the throughput model needs. Adding a workload is
one entry here plus its function in `tasks.work`: the worker registers it (`tasks.celery_app`),
`producer send --task` and experiment files accept it, and reports print its ideal.

The model beside every measurement: a pool at concurrency `c` that can keep `U` cores busy
with Python code (`config.pools`) cannot do better than

    throughput <= c / (cpu + io)    every slot is busy for cpu + io per task
    throughput <= U / cpu           the usable cores are busy for cpu per task

where `cpu` is a task's own CPU time and `io` its waiting. `square`'s cpu is not known in
advance (it depends on the machine's speed, which drifts by +-20 % within minutes here), so it
is measured in the worker during the run; `noop` has no model: what it measures is Celery's cost.

`U` need not be a whole number: `lab advise` measures how much of a task's CPU holds the GIL
(C code such as hashlib releases it) and gives the threads pool `1 / (g + (1 - g) / n)` cores
(`config.pools.Pool.usable_cores_for_task`). Its tasks are not in the catalogue: `advised()`
builds their entry from the user's arguments and the costs the profile measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from config.pools import POOLS
from tasks import advised as advised_task
from tasks import work

Arguments = tuple[list[Any], dict[str, Any]]


@dataclass(frozen=True)
class Param:
    """One parameter of a workload: its type, default and limits."""

    name: str
    kind: type
    default: Any
    low: float = 0.0
    high: float = math.inf
    help: str = ""
    choices: tuple[str, ...] = ()  # for a str parameter

    @property
    def option(self) -> str:
        """The `producer send` option that sets it."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: object) -> Any:
        """The value if valid; TypeError/ValueError with one line naming the parameter otherwise."""
        if self.kind is int:
            return work.check_int(self.name, value, int(self.low), int(self.high))
        if self.kind is str:
            return work.check_choice(self.name, value, self.choices)
        return work.check_number(self.name, value, self.low, self.high)


@dataclass(frozen=True)
class Costs:
    """What one task costs, for the model: CPU seconds (None: measured in the run) and waiting."""

    cpu_s: float | None
    io_s: float


@dataclass(frozen=True)
class Workload:
    name: str
    function: Callable[..., Any]
    summary: str
    params: tuple[Param, ...] = ()
    arguments: Callable[[int, Mapping[str, Any]], Arguments] = lambda _index, params: ([], dict(params))
    costs: Callable[[Mapping[str, Any]], Costs] | None = None  # None: no model (noop)
    socket_io: Callable[[Mapping[str, Any]], bool] = lambda _params: False  # needs the latency server

    @property
    def task_name(self) -> str:
        return f"tasks.{self.name}"

    def defaults(self) -> dict[str, Any]:
        return {param.name: param.default for param in self.params}

    def validate(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The full parameters (defaults filled in); ValueError on an unknown or invalid one."""
        known = {param.name: param for param in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            allowed = ", ".join(known) or "none"
            raise ValueError(f"{self.name} has no parameter {unknown[0]!r} (its parameters: {allowed})")
        values = self.defaults()
        for name, value in given.items():
            try:
                values[name] = known[name].check(value)
            except TypeError as exc:
                raise ValueError(str(exc)) from None
        return values

    def ideal_per_s(self, params: Mapping[str, Any], pool: str, concurrency: int,
                    task_cpu_s: float | None = None) -> float | None:
        """The model's best throughput on `pool` (its usable cores: config.pools); None without a model
        or without the CPU time it needs."""
        if self.costs is None:
            return None
        costs = self.costs(params)
        cpu = costs.cpu_s if costs.cpu_s is not None else task_cpu_s
        if cpu is None:
            return None
        return model_per_s(concurrency, POOLS[pool].usable_cores(concurrency), cpu, costs.io_s)


def model_per_s(concurrency: int, usable_cores: float, cpu_s: float, io_s: float, overhead_s: float = 0.0) -> float:
    """min(c / (cpu + io), U / cpu): the slots bound and the cores bound (U may be fractional).

    `overhead_s` is the worker's own serial work per task (lab advise; config.pools.Pool.task_overhead_s:
    the consumer thread under the GIL for threads, the parent dispatching to its children for prefork).
    A slot waits for it too, so the bounds become c / (cpu + io + overhead) and 1 / (cpu / U + overhead).
    The experiments leave it at 0: their ideal is the task's own.
    """
    busy = cpu_s + io_s + overhead_s
    bounds = [concurrency / busy] if busy > 0 else []
    if cpu_s > 0 or overhead_s > 0:
        bounds.append(1 / (cpu_s / usable_cores + overhead_s))
    return min(bounds) if bounds else math.inf


def efficiency(measured_per_s: float | None, model_per_s: float | None) -> float | None:
    """Measured over the model's ideal (1: the model exactly); None without both, or with a zero model."""
    if measured_per_s is None or not model_per_s:
        return None
    return measured_per_s / model_per_s


def broker_bound_per_s(direct_per_s: float, serial_round_trips: float, rtt_s: float) -> float:
    """The broker-latency model: the consumer's time per task direct, plus its serial round trips x RTT.

    A worker's consumer fetches one message at a time (kombu's Redis transport keeps one BLMOVE in
    flight per worker, whatever the prefetch multiplier and the concurrency), so the round trips on
    its path add up instead of overlapping: per task it spends 1/direct (Celery's own work, measured
    at RTT 0) plus `serial_round_trips` x RTT waiting. Prefetch lets the fetches overlap the tasks'
    execution, not each other: the pool's slots divide the CPU bound (model_per_s), never this one.
    """
    if direct_per_s <= 0:
        return 0.0
    return 1 / (1 / direct_per_s + serial_round_trips * rtt_s)


WORKLOADS: Final = {
    workload.name: workload
    for workload in (
        Workload(
            "square", work.square, "CPU-bound: x*x after a pure-Python loop that holds the GIL",
            (Param("work", int, work.DEFAULT_SQUARE_WORK, 0, work.MAX_SQUARE_WORK, "loop iterations (CPU cost)"),),
            arguments=lambda index, params: ([index], dict(params)),
            costs=lambda params: Costs(cpu_s=None, io_s=0.0),
        ),
        Workload(
            "sleep", work.sleep, "I/O-bound: time.sleep, which releases the GIL",
            (Param("seconds", float, work.DEFAULT_SLEEP_SECONDS, 0.0, work.MAX_SLEEP_SECONDS, "seconds to wait"),),
            costs=lambda params: Costs(cpu_s=0.0, io_s=float(params["seconds"])),
        ),
        Workload("noop", work.noop, "nothing: what is left is Celery's own cost per task"),
        Workload(
            "mixed", work.mixed, "CPU then I/O, like a real task: cpu_ms of pure Python, io_ms of waiting",
            (Param("cpu_ms", float, 5.0, 0.0, work.MAX_TASK_MS, "milliseconds of the thread's own CPU"),
             Param("io_ms", float, 45.0, 0.0, work.MAX_TASK_MS, "milliseconds of waiting"),
             Param("io", str, "socket", help="socket (the latency server) or sleep", choices=work.IO_KINDS),
             Param("order", str, "cpu-io", help="cpu-io or io-cpu", choices=work.ORDERS)),
            costs=lambda params: Costs(cpu_s=float(params["cpu_ms"]) / 1000, io_s=float(params["io_ms"]) / 1000),
            socket_io=lambda params: params["io"] == "socket",
        ),
    )
}


def advised(args: list[Any], kwargs: dict[str, Any], costs: Costs) -> Workload:
    """The entry of `lab advise`'s generic task: every message carries the user's own JSON arguments."""
    return Workload(
        "advised", advised_task.run, "the user's own callable (lab advise), from LAB_ADVISE_TARGET",
        arguments=lambda _index, _params: (list(args), dict(kwargs)),
        costs=lambda _params: costs,
    )


def call_label(name: str, params: Mapping[str, Any]) -> str:
    """How a workload with its parameters is named in tables and plots: `sleep(seconds=0.5)`."""
    shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))
    return f"{name}({shown})" if shown else name


def workload(name: object) -> Workload:
    """The catalogue entry; ValueError with the known names otherwise."""
    if not isinstance(name, str) or name not in WORKLOADS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(WORKLOADS)}")
    return WORKLOADS[name]
