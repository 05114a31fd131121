"""The worker a cell measures: one the runner starts with the exact pool and concurrency,
or one already running (the compose stack, `lab up`) that the runner attaches to.

Both are paused and resumed the same way (Celery's `cancel_consumer` / `add_consumer`
remote control), which lets a queue be prefilled while the worker is alive and
warm, so repetitions do not pay start-up again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from celery import Celery

from config import Settings
from config.errors import UserError
from stack import processes
from stack.workers import Worker
from tasks.connections import client_app


class TargetError(UserError, RuntimeError):
    """No worker to measure, or it did not obey a control command."""


@dataclass
class Target:
    """A worker as the measurement sees it."""

    settings: Settings
    app: Celery  # the client app that sends it control commands, open as long as the target
    name: str
    pool: str
    concurrency: int
    startup_s: float | None
    pid: int | None
    attached: bool = False
    python: str | None = None  # the worker's interpreter, as it reports it (`3.13.5t`: free-threaded)
    gil_enabled: bool | None = None  # whether its GIL was on, as it reports it

    def memory_mb(self) -> float | None:
        """Memory of the worker and its children (stack.processes.tree_memory_mb); None if not visible here."""
        return processes.tree_memory_mb(self.pid) if self.pid is not None and psutil.pid_exists(self.pid) else None

    def cpu_seconds(self) -> float | None:
        return processes.tree_cpu_seconds(self.pid) if self.pid is not None and psutil.pid_exists(self.pid) else None

    def pause(self) -> None:
        """Stop consuming the pool's queue (running tasks finish; nothing new is fetched)."""
        self._control("cancel_consumer", "no longer consuming")

    def resume(self) -> None:
        self._control("add_consumer", "consum")

    def _control(self, command: str, expected: str) -> None:
        method = getattr(self.app.control, command)
        replies = method(self.settings.queue_for(self.pool), destination=[self.name], reply=True, timeout=5)
        answers = [reply.get(self.name, {}) for reply in replies or []]
        if not any(expected in str(answer.get("ok", "")) for answer in answers):
            raise TargetError(f"worker {self.name} did not confirm {command}: {answers or 'no reply'}")


@contextlib.contextmanager
def started(settings: Settings, pool: str, concurrency: int, extra: tuple[str, ...],
            log_path: Path, worker_settings: Settings | None = None) -> Iterator[Target]:
    """Start `lab worker POOL -c N`, yield it, and always stop it (warm shutdown).

    `worker_settings` (default: `settings`) are the worker's own, e.g. its broker behind a delaying
    relay; the target's control commands use `settings`, so pausing and resuming stay direct.
    """
    worker = Worker(worker_settings or settings, pool, concurrency, log_path, extra)
    try:
        worker.start(timeout=120)
        with client_app(settings) as app:
            reported = _interpreter(app.control.inspect([worker.name], timeout=5).stats() or {}, worker.name)
            yield Target(settings, app, worker.name, pool, concurrency, worker.startup_s, worker.pid,
                         python=reported.get("python"), gil_enabled=reported.get("gil_enabled"))
    finally:
        worker.stop(grace=30)


@contextlib.contextmanager
def attached(settings: Settings, pool: str) -> Iterator[Target]:
    """Find a running worker for `pool`; its real concurrency is what gets measured."""
    with client_app(settings) as app:
        stats = app.control.inspect(timeout=2).stats() or {}
        names = sorted(name for name in stats if name.startswith(f"{pool}@"))
        if not names:
            raise TargetError(f"no running {pool} worker answered; start the stack (make up) or drop --attach")
        info = stats[names[0]]
        concurrency = int(info.get("pool", {}).get("max-concurrency", 0)) or 1
        reported = _interpreter(stats, names[0])
        yield Target(settings, app, names[0], pool, concurrency, None, _local_pid(info.get("pid")), attached=True,
                     python=reported.get("python"), gil_enabled=reported.get("gil_enabled"))


def _interpreter(stats: dict[str, Any], name: str) -> dict[str, Any]:
    """The interpreter a worker reported in `inspect stats` (tasks.interpreter.describe); {} if none."""
    return dict(stats.get(name, {}).get("interpreter", {}))


def _local_pid(pid: object) -> int | None:
    """The worker's pid if it is a Celery process on this machine (not inside a container)."""
    if not isinstance(pid, int):
        return None
    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return None
    return pid if "celery" in command else None
