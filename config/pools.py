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
class Pool:
    name: str  # the lab's name: queue `<prefix>.<name>`, worker `<name>@<host>`
    celery_pool: str  # `celery worker --pool`
    parallel: bool  # runs Python code on several cores at once
    default_concurrency: int  # 0: the number of cores
    free_threaded: bool = False  # runs on the free-threaded interpreter, and refuses to run with a GIL

    @property
    def env_name(self) -> str:
        """Its part of an environment variable's name (`LAB_THREADS_FT_CONCURRENCY`)."""
        return self.name.upper().replace("-", "_")

    def usable_cores(self, concurrency: int, cores: int | None = None) -> int:
        """Cores this pool can keep busy with Python code at `concurrency`."""
        return min(concurrency, cores or os.cpu_count() or 1) if self.parallel else 1

    def concurrency_default(self) -> int:
        return self.default_concurrency or os.cpu_count() or 1


POOLS: Final = {
    pool.name: pool
    for pool in (
        Pool("threads", "threads", parallel=False, default_concurrency=8),
        Pool("prefork", "prefork", parallel=True, default_concurrency=0),
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
