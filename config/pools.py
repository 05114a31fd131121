"""The pools a worker can run, and what each can do with the machine's cores.

`threads`, `gevent`, `eventlet` and `solo` run every task in one interpreter, so on CPython with
a GIL they run Python code on one core at a time whatever their concurrency; `prefork` runs one
process per slot and can keep `min(concurrency, cores)` cores busy. That number, `usable_cores`,
is the `U` of the lab's throughput model (tasks.workloads). `threads-ft` is Celery's threads
pool on a free-threaded CPython (`make freethreaded`), where threads run Python in parallel;
`prefork-ft` is prefork there too, so each pool is compared on both interpreters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class MemoryCost:
    """A worker's memory (PSS summed over its whole tree) as `base_mb + per_slot_mb x concurrency`, task aside.

    Fitted to `python -m benchmarks.worker_memory` on this lab's 2-core VM (Python 3.11, Celery 5.6,
    after a 200-task burst, medians of 3): threads 50.0 MB at c=2, 50.7 MB at c=8 and at c=64;
    prefork 64 / 92 / 148 / 258 MB at c=1 / 2 / 4 / 8, i.e. 37 MB of parent plus 27.6 MB per child
    (each child is a whole interpreter with Celery loaded, whose pages it soon writes to). The
    threads' per-slot figure is the one the experiments' sleep cells saw at c=64 (+9 MB), above the
    burst's 0.01 MB. `lab advise` predicts a worker's memory from this plus what the task holds.
    """

    base_mb: float
    per_slot_mb: float

    def at(self, concurrency: int) -> float:
        return self.base_mb + self.per_slot_mb * concurrency


THREADS_MEMORY: Final = MemoryCost(50.0, 0.15)
PREFORK_MEMORY: Final = MemoryCost(36.9, 27.6)


@dataclass(frozen=True)
class Pool:
    name: str  # the lab's name: queue `<prefix>.<name>`, worker `<name>@<host>`
    celery_pool: str  # `celery worker --pool`
    parallel: bool  # runs Python code on several cores at once
    default_concurrency: int  # 0: the number of cores
    free_threaded: bool = False  # runs on the free-threaded interpreter, and refuses to run with a GIL
    memory: MemoryCost | None = None  # measured by the lab (threads and prefork on 3.11); None: not measured
    # Seconds of the worker's own serial work per task (Celery's consumer, ack, the ledger's record),
    # events and results off: threads did noop at 386-399/s (2.6 ms, in the consumer thread, holding
    # the GIL: `make bench`); prefork did 320/s on 1.7 ms squares at c=2 and 250-300/s on 2 ms tasks
    # (about 3 ms per task in the parent, which dispatches every task: claim 4 of `make bench-full`,
    # lab advise's own test target). None: not measured.
    task_overhead_s: float | None = None

    @property
    def env_name(self) -> str:
        """Its part of an environment variable's name (`LAB_THREADS_FT_CONCURRENCY`)."""
        return self.name.upper().replace("-", "_")

    def usable_cores(self, concurrency: int, cores: int | None = None) -> int:
        """Cores this pool can keep busy with Python code at `concurrency`."""
        return min(concurrency, cores or os.cpu_count() or 1) if self.parallel else 1

    def usable_cores_for_task(self, concurrency: int, gil_share: float, cores: int | None = None) -> float:
        """Cores this pool can keep busy with *one task's* CPU, given the share of it that holds the GIL.

        CPU time is not GIL time: C code such as `hashlib` or `zlib` on a large buffer releases the
        GIL, and threads then run it on several cores at once. With `g` the GIL-holding share of a
        task's CPU (measured by `lab advise`: its speed-up on several threads in-process) and
        `n = min(concurrency, cores)`, Amdahl's law gives the threads pool `1 / (g + (1 - g) / n)`
        cores: 1 for pure Python (g = 1), n for code that never holds the GIL (g = 0). Pools that run
        one task at a time per interpreter thread without real threads (gevent, eventlet, solo) get 1
        whatever g is; parallel pools (prefork, threads-ft) get n.
        """
        n = min(concurrency, cores or os.cpu_count() or 1)
        if self.parallel:
            return float(n)
        if self.celery_pool != "threads":
            return 1.0
        share = min(1.0, max(0.0, gil_share))
        return 1.0 / (share + (1.0 - share) / n)

    def concurrency_default(self) -> int:
        return self.default_concurrency or os.cpu_count() or 1


POOLS: Final = {
    pool.name: pool
    for pool in (
        Pool("threads", "threads", parallel=False, default_concurrency=8, memory=THREADS_MEMORY,
             task_overhead_s=0.0026),
        Pool("prefork", "prefork", parallel=True, default_concurrency=0, memory=PREFORK_MEMORY,
             task_overhead_s=0.003),
        Pool("gevent", "gevent", parallel=False, default_concurrency=100),
        Pool("eventlet", "eventlet", parallel=False, default_concurrency=100),
        Pool("solo", "solo", parallel=False, default_concurrency=1),
        Pool("threads-ft", "threads", parallel=True, default_concurrency=8, free_threaded=True),
        Pool("prefork-ft", "prefork", parallel=True, default_concurrency=0, free_threaded=True),
    )
}
POOL_NAMES: Final = tuple(POOLS)
DEFAULT_POOLS: Final = ("threads", "prefork")


def check_pools(names: tuple[str, ...]) -> tuple[str, ...]:
    """Known pools, none twice; ValueError (one line) otherwise."""
    if not names:
        raise ValueError("no pool given")
    if len(set(names)) != len(names):
        raise ValueError(f"a pool is listed twice in {','.join(names)!r}")
    for name in names:
        if name not in POOLS:
            raise ValueError(f"unknown pool {name!r}; expected one of {', '.join(POOL_NAMES)}")
    return names


def pool_label(name: str, python: str | None) -> str:
    """How reports name a pool: `threads`, or `threads@3.13t` when it ran on a free-threaded Python."""
    if not python or not python.endswith("t"):
        return name
    major_minor = ".".join(python.rstrip("t").split(".")[:2])
    return f"{POOLS[name].celery_pool}@{major_minor}t" if name in POOLS else f"{name}@{major_minor}t"
