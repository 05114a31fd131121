"""`lab advise`, step 2: predict every pool x concurrency from the profile, rank, and shortlist.

Tasks/s is the lab's model (tasks.workloads.model_per_s) with the profile's CPU and waiting,
the threads pool's usable cores from the measured GIL share (Pool.usable_cores_for_task),
capped for c > 1 by the cores' worth of CPU the profile's threads delivered in-process (a GIL
hand-off costs too: bpo-7946), and the worker's own serial work per task (Pool.task_overhead_s).
p95 is a task's run time in the worker (start to finish) at full load: with every slot busy,
Little's law makes the mean run time `concurrency / tasks per second`, times the tail the profile
saw (its p95 over its mean). Queue wait is left out: it depends on how fast tasks arrive, which
advise does not know. Memory is the lab's measured worker memory for the pool (Pool.memory) plus
one call's peak per slot (every slot can be mid-call at once), plus the target's import once: the
worker imports the target before prefork's children fork, and pages they share unwritten count once
in the tree's PSS (stack.processes.tree_memory_mb). Summing USS instead counted them in no process:
a 16 MiB buffer made at import vanished from prefork c=2 (53 MB, as without it) but not from
threads (64 MB), and advise recommended prefork for `examples/hashing.py` on memory.

The ranking is the one rule both the shortlist (on predictions) and the recommendation (on
measurements, report.verdicts) use: among the configurations that meet the constraints, those
within NEAR_BEST of the best tasks/s, least memory first (saving less than NEAR_BEST of the
fastest's memory is no saving: the fastest of those goes first); then the rest by tasks/s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from config.pools import POOLS
from experiments.advise_profile import Profile, fills_cores
from experiments.schema import Prediction
from tasks.workloads import model_per_s

CANDIDATES: Final = {"threads": (1, 2, 4, 8, 16, 32, 64, 128), "prefork": (1, 2, 4, 8, 16, 32)}
NEAR_BEST: Final = 0.10  # within 10 % of the best tasks/s, memory decides
SHORTLIST: Final = 3

R = TypeVar("R", bound=Mapping[str, Any])  # a Prediction, or a row proved on a worker (schema.ProvedRow)


@dataclass(frozen=True)
class Constraints:
    max_memory_mb: float | None = None
    p95_s: float | None = None

    def violated(self, memory_mb: float | None, p95_s: float | None) -> str | None:
        """The option a configuration breaks (`--max-memory-mb 500`), or None."""
        if self.max_memory_mb is not None and memory_mb is not None and memory_mb > self.max_memory_mb:
            return f"--max-memory-mb {self.max_memory_mb:g}"
        if self.p95_s is not None and p95_s is not None and p95_s > self.p95_s:
            return f"--p95-ms {self.p95_s * 1000:g}"
        return None


def predict(profile: Profile, pool: str, concurrency: int, cores: int | None = None,
            overhead_s: float | None = None) -> Prediction:
    """One configuration's predicted tasks/s, p95 run time and worker memory.

    `overhead_s`: the worker's own serial work per task, measured on that worker (lab advise's prove
    step); by default the pool's figure from config.pools.
    """
    cores = cores or available_cores(profile)
    spec = POOLS[pool]
    usable = spec.usable_cores_for_task(concurrency, profile.gil_share, cores)
    if pool == "threads" and concurrency > 1 and profile.gil_measured and profile.gil_cores > 0:
        usable = min(usable, profile.gil_cores)  # what threads delivered in-process: GIL hand-offs cost too
    overhead = (spec.task_overhead_s or 0.0) if overhead_s is None else overhead_s
    per_s = model_per_s(concurrency, usable, profile.cpu_s, profile.io_s, overhead)
    tail = max(1.0, profile.wall_p95_s / profile.wall_s) if profile.wall_s > 0 else 1.0
    base = spec.memory.at(concurrency) if spec.memory else 0.0
    return {"pool": pool, "concurrency": concurrency, "usable_cores": round(usable, 3),
            "overhead_ms": round(overhead * 1000, 3),
            "predicted_per_s": round(per_s, 2), "predicted_p95_s": round(concurrency / per_s * tail, 4),
            "predicted_memory_mb": round(base + profile.import_mb + profile.peak_mb * concurrency, 1)}


def available_cores(profile: Profile) -> int:
    """The cores the task can have now: what its processes delivered in the profile, rounded, at least 1.

    On a machine shared with other programs that may be fewer than os.cpu_count(). A task that
    waits most of its time cannot show it (its processes could not fill the cores): all count then.
    """
    cores = os.cpu_count() or 1
    if not fills_cores(profile.threads, profile.busy_share, cores):
        return cores
    return max(1, min(cores, round(profile.process_cores)))


def predictions(profile: Profile, cores: int | None = None) -> list[Prediction]:
    return [predict(profile, pool, c, cores) for pool, levels in CANDIDATES.items() for c in levels]


def rank(rows: Sequence[R], basis: str, constraints: Constraints) -> list[R]:
    """Rows that meet the constraints on `basis` ("predicted" or "measured"), best first."""
    def per_s(row: Mapping[str, Any]) -> float:
        return float(row[f"{basis}_per_s"] or 0.0)

    fitting = [row for row in rows if row.get(f"{basis}_per_s") and violation(row, basis, constraints) is None]
    if not fitting:
        return []
    best = max(per_s(row) for row in fitting)
    near = [row for row in fitting if per_s(row) >= (1 - NEAR_BEST) * best]
    rest = [row for row in fitting if row not in near]
    fastest = max(near, key=per_s)

    def memory(row: Mapping[str, Any]) -> float:
        """Memory that saves less than NEAR_BEST of the fastest's counts as the same."""
        mb, reference = float(row[f"{basis}_memory_mb"] or 0.0), float(fastest[f"{basis}_memory_mb"] or 0.0)
        return reference if mb >= (1 - NEAR_BEST) * reference else mb

    near.sort(key=lambda row: (memory(row), -per_s(row), row["concurrency"]))
    rest.sort(key=lambda row: -per_s(row))
    return near + rest


def violation(row: Mapping[str, Any], basis: str, constraints: Constraints) -> str | None:
    return constraints.violated(row.get(f"{basis}_memory_mb"), row.get(f"{basis}_p95_s"))


def shortlist(rows: Sequence[R], constraints: Constraints, size: int = SHORTLIST) -> list[R]:
    """The configurations to prove: the best prediction, the best of each other pool, then the next best."""
    ranked = rank(rows, "predicted", constraints)
    chosen: list[R] = ranked[:1]
    for row in ranked:
        if row["pool"] not in {c["pool"] for c in chosen}:
            chosen.append(row)
    for row in ranked:
        if len(chosen) >= size:
            break
        if row not in chosen:
            chosen.append(row)
    return chosen[:size]
