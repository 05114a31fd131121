"""Starting, watching and stopping the stack's processes.

`worker_command` and `flower_command` are the one definition of how a worker
and Flower are run: `lab worker POOL` and `lab flower` exec them, and the native
launcher, compose and the tests all go through those entry points.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Self

import psutil

from config import Settings, SettingsError
from config.pools import POOLS
from tasks import interpreter
from tasks.connections import wait_for_broker

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Run in a child before exec: the kernel sends it SIGTERM if the launcher dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def worker_name(pool: str, host: str = "%h") -> str:
    return f"{pool}@{host}"


def python_for(settings: Settings, pool: str) -> str:
    """The interpreter a pool's worker runs on: this one, or the free-threaded one for `threads-ft`.

    In the free-threaded image this interpreter already is free-threaded, so it is used as it is.
    """
    if not POOLS[pool].free_threaded or interpreter.free_threaded_build():
        return sys.executable
    if not settings.freethreaded_python.is_file():
        raise SettingsError(f"pool {pool} runs on the free-threaded interpreter, not found at "
                            f"{settings.freethreaded_python}: run `make freethreaded` or set LAB_FREETHREADED_PYTHON")
    return str(settings.freethreaded_python)


def worker_command(settings: Settings, pool: str, concurrency: int | None = None,
                   extra: tuple[str, ...] = ()) -> list[str]:
    """The `celery worker` command line for one pool, consuming that pool's queue."""
    command = [
        python_for(settings, pool), "-m", "celery", "-A", "tasks.celery_app", "worker",
        "--pool", POOLS[pool].celery_pool,
        "--concurrency", str(concurrency or settings.concurrency_for(pool)),
        "--queues", settings.queue_for(pool),
        "--hostname", worker_name(pool),
        "--loglevel", settings.loglevel,
        "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    if settings.events:
        command.append("--task-events")
    return command + list(extra)


def flower_command(settings: Settings) -> list[str]:
    """Flower with basic auth; the credentials travel in the environment, not argv."""
    return [
        sys.executable, "-m", "celery", "-A", "tasks.celery_app", "flower",
        f"--address={settings.flower_address}",
        f"--port={settings.flower_port}",
    ]  # fmt: skip


def flower_env(settings: Settings) -> dict[str, str]:
    return {"FLOWER_BASIC_AUTH": f"{settings.flower_user}:{settings.flower_password}"}


def child_env(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a stack process: ours, plus settings as `LAB_*` variables."""
    env = dict(os.environ)
    env.update(settings.to_env())
    env.update(extra or {})
    return env


def exec_worker(settings: Settings, pool: str, concurrency: int | None, extra: tuple[str, ...]) -> None:
    """Become the worker (`lab worker`): wait for Redis, then exec Celery in this process."""
    wait_for_broker(settings.require_broker(), settings.broker_wait_s)
    command = worker_command(settings, pool, concurrency, extra)
    if POOLS[pool].free_threaded:
        settings = settings.replace(require_no_gil=True)
    os.execve(command[0], command, child_env(settings))


def exec_flower(settings: Settings) -> None:
    """Become Flower (`lab flower`): wait for Redis, then exec it with basic auth from the environment."""
    wait_for_broker(settings.require_broker(), settings.broker_wait_s)
    command = flower_command(settings)
    os.execve(command[0], command, child_env(settings, flower_env(settings)))


def spawn(command: list[str], env: Mapping[str, str], log_path: os.PathLike[str] | str) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command, env=dict(env), stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               process: subprocess.Popen[bytes] | None = None, interval: float = 0.05) -> float:
    """Poll `condition` until it holds; return the seconds it took. Fails fast if `process` died."""
    started = time.monotonic()
    while not condition():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with code {process.returncode}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - started


def stop_process(process: subprocess.Popen[bytes], grace: float = 30.0,
                 sig: int = signal.SIGTERM) -> int | None:
    """Ask politely (SIGTERM is Celery's warm shutdown), then kill the whole tree."""
    if process.poll() is None:
        tree = _descendants(process.pid)
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        _kill_all(tree)
    return process.returncode


class ChildProcess:
    """A part of the stack run as a child process: started once it answers, stopped on exit.

    Redis, a worker, Flower, the latency server, the relay and Prometheus each say how they are
    launched and when they are ready (`start`); stopping one, its pid, its CPU and its use in a
    `with` block are the same for all and live here. Subclasses declare the `process` field.
    """

    process: subprocess.Popen[bytes] | None
    stop_grace_s: float = 10.0

    def start(self) -> Self:
        raise NotImplementedError

    def launch(self, command: list[str], env: Mapping[str, str], log_path: os.PathLike[str] | str,
               ready: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
        """Start `command` and return once `ready()` holds; fails fast if the process died."""
        self.process = spawn(command, env, log_path)
        wait_until(ready, timeout, what, self.process, interval)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its children so far, read from outside (psutil)."""
        return tree_cpu_seconds(self.process.pid) if self.process is not None else 0.0

    def stop(self, grace: float | None = None) -> int | None:
        """SIGTERM, then SIGKILL after `grace` (default `stop_grace_s`); returns the exit code."""
        if self.process is None:
            return None
        code = stop_process(self.process, self.stop_grace_s if grace is None else grace)
        self.process = None
        return code

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _kill_all(processes: list[psutil.Process]) -> None:
    for proc in processes:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(processes, timeout=5)


def tree_memory_mb(pid: int) -> float:
    """Memory a process and all its children occupy: the sum of their PSS.

    PSS gives each of the k processes mapping a page 1/k of it, so the sum over a tree counts a
    page shared inside the tree once. The lab first summed USS (pages no other process maps), which
    counts a page a prefork parent shares with its children in *no* process: after a 200-task burst,
    prefork c=1 read 29 MB as USS and 64 MB as PSS, c=2 55 vs 92 MB, while threads c=2 read 48 vs
    50 MB (`python -m benchmarks.worker_memory`, 3 repetitions, ranges under 1 MB). USS made prefork
    look as light as threads at c=2; it costs 1.8x.
    """
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for proc in processes:
        try:
            total += proc.memory_full_info().pss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (every core, every process) since boot.

    Beside a worker's own CPU it says how much else ran during a measurement: the harness,
    Redis, and whatever shared the machine (on this VM other work moved a cell's figure by 2x).
    """
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)
