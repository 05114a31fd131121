"""An experiment file (TOML) read into frozen cells, checked whole before anything runs.

A file names the experiment and lists blocks of cells; each block is expanded
over its pools and concurrency levels. A cell is everything one measurement
needs: pool, concurrency, workload and its parameters, task count, repetitions,
arrival mode, whether the timing instrumentation is on, and the worker's extra
command-line arguments and settings overrides. See docs/experiments.md.
"""

from __future__ import annotations

import hashlib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings
from config.constants import MAX_TASKS_PER_RUN
from config.errors import UserError
from config.pools import POOL_NAMES
from tasks.workloads import WORKLOADS, Workload, call_label

ARRIVALS = ("prefill", "burst", "rate")
OVERRIDABLE = ("prefetch_multiplier", "acks_late", "events", "results", "visibility_timeout", "loglevel")
TOP_KEYS = {"name", "description", "repetitions", "flower", "settings", "cells", "enqueue", "redis_benchmark",
            "reuse_workers", "calibration_pings"}
CELL_KEYS = {"label", "pools", "concurrency", "workload", "params", "tasks", "rounds", "duration", "repetitions",
             "arrival", "rate", "load", "load_base", "timing", "worker_args", "settings", "rtt_ms",
             "prefetch"}  # fmt: skip
MAX_RTT_MS = 1000.0
LOAD_BASES = ("own", "slowest")


class SpecError(UserError, ValueError):
    """The experiment file cannot be run; the message is one line naming the place."""


@dataclass(frozen=True)
class Arrival:
    """How tasks reach the queue: all before consuming, all at once while consuming, or at a rate."""

    mode: str = "prefill"
    rate: float | None = None  # tasks per second
    load: float | None = None  # fraction of the cell's ideal throughput

    def describe(self) -> str:
        if self.mode != "rate":
            return self.mode
        return f"rate {self.rate:g}/s" if self.rate else f"rate {self.load:.0%} of ideal"


@dataclass(frozen=True)
class Cell:
    index: int
    label: str
    pool: str
    concurrency: int
    workload: str
    params: tuple[tuple[str, Any], ...]
    tasks: int
    repetitions: int
    arrival: Arrival = Arrival()
    timing: bool = True
    paired_untimed: bool = False  # `timing = "paired"`: each repetition also runs once with timing off
    worker_args: tuple[str, ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()
    rtt_ms: float = 0.0  # round trip added between the worker and Redis by a delaying relay; 0: direct
    prefetch: int | None = None  # the block's `prefetch` level (also in overrides as prefetch_multiplier)
    definition: Workload | None = None  # a workload outside the catalogue (lab advise's generic task)

    @property
    def id(self) -> str:
        rtt = f"-rtt{self.rtt_ms:g}ms" if self.rtt_ms else ""
        prefetch = f"-pf{self.prefetch}" if self.prefetch is not None else ""
        suffix = "" if self.timing else "-notiming"
        return f"{self.index:02d}-{self.label}-{self.workload}-{self.pool}-c{self.concurrency}{rtt}{prefetch}{suffix}"

    @property
    def param(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def task(self) -> Workload:
        return self.definition or WORKLOADS[self.workload]

    @property
    def needs_measured_cpu(self) -> bool:
        """Its model needs a task's CPU time, which only measuring gives (square)."""
        costs = self.task.costs
        return costs is not None and costs(self.param).cpu_s is None

    @property
    def setting_overrides(self) -> dict[str, Any]:
        return dict(self.overrides)

    def title(self) -> str:
        knobs = (f", RTT +{self.rtt_ms:g} ms" if self.rtt_ms else "") + \
            (f", prefetch {self.prefetch}" if self.prefetch is not None else "")
        return (f"{call_label(self.workload, self.param)} on {self.pool} c={self.concurrency}{knobs}, "
                f"{self.arrival.describe()}")


@dataclass(frozen=True)
class EnqueueBench:
    tasks: int = 3000
    processes: int = 2
    repetitions: int = 3


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    cells: tuple[Cell, ...]
    flower: bool = False
    settings: tuple[tuple[str, Any], ...] = ()
    enqueue: EnqueueBench | None = EnqueueBench()
    redis_benchmark: bool = True
    reuse_workers: bool = False  # cells that need the same worker share one, started once
    calibration_pings: int = 600  # PINGs per relay RTT when cells have rtt_ms (experiments.delay)
    source: str = ""
    digest: str = ""

    def apply_settings(self, settings: Settings) -> Settings:
        """The run's base settings: the file's `[settings]` over the environment's."""
        return settings.replace(**dict(self.settings)) if self.settings else settings


def load(path: Path) -> Experiment:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read experiment file {path}: {exc.strerror}") from None
    return parse(text, default_name=path.stem)


def parse(text: str, default_name: str = "experiment") -> Experiment:
    """Parse and validate the whole file; raise SpecError on the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"experiment file is not valid TOML: {exc}") from None
    _no_unknown(data, TOP_KEYS, "experiment")
    name = _name(data.get("name", default_name))
    repetitions = _int(data.get("repetitions", 3), "repetitions", 1, 100)
    overrides = tuple(sorted(_overrides(data.get("settings", {}), "[settings]").items()))
    blocks = data.get("cells")
    if not isinstance(blocks, list) or not blocks:
        raise SpecError("experiment has no [[cells]] blocks")
    cells: list[Cell] = []
    for number, block in enumerate(blocks, 1):
        cells.extend(_expand(block, number, repetitions, start=len(cells)))
    return Experiment(
        name=name,
        description=str(data.get("description", "")),
        cells=tuple(cells),
        flower=_bool(data.get("flower", False), "flower"),
        settings=overrides,
        enqueue=_enqueue(data.get("enqueue", {})),
        redis_benchmark=_bool(data.get("redis_benchmark", True), "redis_benchmark"),
        reuse_workers=_bool(data.get("reuse_workers", False), "reuse_workers"),
        calibration_pings=_int(data.get("calibration_pings", 600), "calibration_pings", 10, 100_000),
        source=text,
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
    )


def _expand(block: object, number: int, repetitions: int, start: int) -> list[Cell]:
    where = f"[[cells]] block {number}"
    if not isinstance(block, dict):
        raise SpecError(f"{where} must be a table")
    _no_unknown(block, CELL_KEYS, where)
    workload = block.get("workload")
    if workload not in WORKLOADS:
        raise SpecError(f"{where}: workload must be one of {', '.join(WORKLOADS)}, got {workload!r}")
    pools = _list(block.get("pools"), f"{where}: pools")
    for pool in pools:
        if pool not in POOL_NAMES:
            raise SpecError(f"{where}: unknown pool {pool!r}; expected one of {', '.join(POOL_NAMES)}")
    what = f"{where}: concurrency"
    levels = [_level(c, what) for c in _list(block.get("concurrency"), what)]
    common = {
        "label": _name(block.get("label", f"b{number}")),
        "workload": workload,
        "params": _params(workload, block.get("params", {}), where),
        "repetitions": _int(block.get("repetitions", repetitions), f"{where}: repetitions", 1, 100),
        "arrival": _arrival(block, where),
        **_timing(block.get("timing", True), f"{where}: timing"),
        "worker_args": tuple(str(a) for a in _list(block.get("worker_args", []), f"{where}: worker_args", empty=True)),
        "overrides": tuple(sorted(_overrides(block.get("settings", {}), f"{where}: settings").items())),
    }
    rtts = [_number(r, f"{where}: rtt_ms", 0, MAX_RTT_MS) for r in _list(block.get("rtt_ms", [0.0]), where)]
    cells: list[Cell] = []
    for rtt_ms in rtts:
        cells += _expand_rtt(block, common, pools, levels, rtt_ms, where, start + len(cells))
    return cells


def _expand_rtt(block: Mapping[str, Any], common: dict[str, Any], pools: list[str], levels: list[int],
                rtt_ms: float, where: str, start: int) -> list[Cell]:
    """One RTT's cells: every pool x prefetch level x concurrency (indexes continue from `start`)."""
    cells: list[Cell] = []
    for pool in pools:
        for prefetch in _prefetches(block, common["overrides"], where):
            overrides = _with_prefetch(common["overrides"], prefetch)
            for concurrency in levels:
                arrival = _arrival_at(block, common["arrival"], pools, concurrency, where)
                tasks = _tasks(block, pool, concurrency, arrival, where)
                cells.append(Cell(index=start + len(cells) + 1, pool=pool, concurrency=concurrency, tasks=tasks,
                                  rtt_ms=rtt_ms, prefetch=prefetch,
                                  **{**common, "arrival": arrival, "overrides": overrides}))
    return cells


def _prefetches(block: Mapping[str, Any], overrides: tuple[tuple[str, Any], ...], where: str) -> list[int | None]:
    """The block's `prefetch` levels (worker_prefetch_multiplier), each a cell of its own; [None] if not given."""
    if "prefetch" not in block:
        return [None]
    if "prefetch_multiplier" in dict(overrides):
        raise SpecError(f"{where}: give prefetch or settings.prefetch_multiplier, not both")
    what = f"{where}: prefetch"
    return [_int(level, what, 1, 10_000) for level in _list(block["prefetch"], what)]


def _with_prefetch(overrides: tuple[tuple[str, Any], ...], prefetch: int | None) -> tuple[tuple[str, Any], ...]:
    if prefetch is None:
        return overrides
    return tuple(sorted({**dict(overrides), "prefetch_multiplier": prefetch}.items()))


def _tasks(block: Mapping[str, Any], pool: str, concurrency: int, arrival: Arrival, where: str) -> int:
    """How many tasks a repetition sends: a fixed count, per slot (`rounds`), or for a `duration`.

    `duration` is seconds of work at the model's ideal (or at the fixed arrival rate): cells whose
    capacities differ 100-fold (a map of CPU shares) then take about as long each.
    """
    given = [key for key in ("tasks", "rounds", "duration") if key in block]
    if len(given) != 1:
        raise SpecError(f"{where}: give exactly one of tasks, rounds or duration")
    if "tasks" in block:
        return _int(block["tasks"], f"{where}: tasks", 1, MAX_TASKS_PER_RUN)
    if "rounds" in block:
        return _int(block["rounds"], f"{where}: rounds", 1, MAX_TASKS_PER_RUN) * concurrency
    seconds = _number(block["duration"], f"{where}: duration", 0.1, 3600)
    per_s = arrival.rate or _model_ideal(block, pool, concurrency, where)
    least = 20 if arrival.rate else 2 * concurrency  # a prefilled queue keeps every slot busy twice at least
    return min(MAX_TASKS_PER_RUN, max(least, math.ceil(per_s * seconds)))


def _model_ideal(block: Mapping[str, Any], pool: str, concurrency: int, where: str) -> float:
    """The model's ideal for a block's workload, known before the run (no measured CPU needed)."""
    workload = WORKLOADS[block["workload"]]
    params = workload.validate(block.get("params", {}))
    ideal = workload.ideal_per_s(params, pool, concurrency)
    if ideal is None or not math.isfinite(ideal):
        raise SpecError(f"{where}: duration and load_base need a workload whose cost the model knows "
                        f"(mixed, sleep), not {workload.name}")
    return ideal


def _arrival_at(block: Mapping[str, Any], arrival: Arrival, pools: list[str], concurrency: int,
                where: str) -> Arrival:
    """`load_base = "slowest"`: one fixed rate for every pool at this concurrency, so their latencies compare."""
    base = block.get("load_base", "own")
    if base not in LOAD_BASES:
        raise SpecError(f"{where}: load_base must be one of {', '.join(LOAD_BASES)}, got {base!r}")
    if base == "own":
        return arrival
    if arrival.load is None:
        raise SpecError(f"{where}: load_base applies to arrival = \"rate\" with a load")
    slowest = min(_model_ideal(block, pool, concurrency, where) for pool in pools)
    return Arrival("rate", rate=round(arrival.load * slowest, 3))


def _arrival(block: Mapping[str, Any], where: str) -> Arrival:
    mode = block.get("arrival", "prefill")
    if mode not in ARRIVALS:
        raise SpecError(f"{where}: arrival must be one of {', '.join(ARRIVALS)}, got {mode!r}")
    rate, load_ = block.get("rate"), block.get("load")
    if mode != "rate":
        if rate is not None or load_ is not None:
            raise SpecError(f"{where}: rate/load only apply to arrival = \"rate\"")
        return Arrival(mode)
    if (rate is None) == (load_ is None):
        raise SpecError(f"{where}: arrival \"rate\" needs exactly one of rate (tasks/s) or load (fraction of ideal)")
    if rate is not None:
        return Arrival(mode, rate=_number(rate, f"{where}: rate", 0.01, 1_000_000))
    return Arrival(mode, load=_number(load_, f"{where}: load", 0.01, 10))


def _params(workload: str, raw: Any, where: str) -> tuple[tuple[str, Any], ...]:
    """The workload's parameters, checked by its catalogue entry, defaults filled in."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: params must be a table")
    _no_unknown(raw, {param.name for param in WORKLOADS[workload].params}, f"{where}: params of {workload}")
    try:
        values = WORKLOADS[workload].validate(raw)
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from None
    return tuple(sorted(values.items()))


def _overrides(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a table")
    _no_unknown(raw, set(OVERRIDABLE), where)
    defaults = Settings()
    for key, value in raw.items():
        expected = type(getattr(defaults, key))
        if type(value) is not expected:
            raise SpecError(f"{where}: {key} must be {expected.__name__}, got {value!r}")
    try:
        defaults.replace(**raw)
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from None
    return dict(raw)


def _enqueue(raw: object) -> EnqueueBench | None:
    if raw is False:
        return None
    if not isinstance(raw, dict):
        raise SpecError("[enqueue] must be a table or false")
    _no_unknown(raw, {"tasks", "processes", "repetitions"}, "[enqueue]")
    return EnqueueBench(
        tasks=_int(raw.get("tasks", 3000), "[enqueue] tasks", 10, 1_000_000),
        processes=_int(raw.get("processes", 2), "[enqueue] processes", 2, 64),
        repetitions=_int(raw.get("repetitions", 3), "[enqueue] repetitions", 1, 20),
    )


def _no_unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed)) or 'none'}")


def _list(value: object, what: str, empty: bool = False) -> list[Any]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    if not items and not empty:
        raise SpecError(f"{what} must be a non-empty list")
    return items


def _level(value: object, what: str) -> int:
    """A concurrency: an integer, or "cores" / "N*cores" (the map is defined in cores, not in 2s)."""
    if isinstance(value, str):
        factor, _, unit = value.replace(" ", "").rpartition("*")
        if unit == "cores" and (not factor or factor.isdigit()):
            value = int(factor or 1) * (os.cpu_count() or 1)
    return _int(value, what, 1, 10_000)


def _int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{what} must be an integer between {low} and {high}, got {value!r}")
    return value


def _number(value: object, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise SpecError(f"{what} must be a number between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _timing(value: Any, where: str) -> dict[str, bool]:
    """`timing`: true, false, or "paired" (timed and untimed repetitions alternate on one worker)."""
    if value == "paired":
        return {"timing": True, "paired_untimed": True}
    return {"timing": _bool(value, where)}


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{what} must be true or false, got {value!r}")
    return value


def _name(value: object) -> str:
    text = str(value)
    if not text or not text.replace("-", "").replace("_", "").isalnum():
        raise SpecError(f"name/label {text!r} must be letters, digits, - or _")
    return text
