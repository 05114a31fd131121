"""The task functions: `square` burns CPU in pure Python, `sleep` waits like I/O does, `noop` does
nothing, and `mixed` does both, with real socket I/O if asked.

Arguments are checked before any work starts, so a bad call fails at once with
a one-line `TypeError` or `ValueError` and the worker goes on serving. What each
workload is to the rest of the lab (parameters, arguments, ideal) is in `tasks.workloads`.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

from tasks import latency

MAX_SLEEP_SECONDS: Final = 3600.0
MAX_SQUARE_WORK: Final = 100_000_000
MAX_SQUARE_X: Final = 10**12
DEFAULT_SQUARE_WORK: Final = 120_000  # about 10 ms of pure-Python CPU on this machine
DEFAULT_SLEEP_SECONDS: Final = 0.1
MAX_TASK_MS: Final = 600_000.0
IO_KINDS: Final = ("socket", "sleep")
ORDERS: Final = ("cpu-io", "io-cpu")
BURN_STEP: Final = 1_000  # loop turns between two looks at the thread's CPU clock: ~0.1 ms


def check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def check_number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must be a finite number between {low:g} and {high:g}, got {value!r}")
    return float(value)


def check_seconds(name: str, value: object, high: float = MAX_SLEEP_SECONDS) -> float:
    return check_number(name, value, 0.0, high)


def burn(work: int) -> int:
    """The CPU cost: a pure-Python loop that holds the GIL for its whole length."""
    acc = 0
    for i in range(work):
        acc ^= i * i
    return acc


def square(x: int, work: int = DEFAULT_SQUARE_WORK) -> int:
    """Return x*x after `work` iterations of pure-Python arithmetic (~10 ms by default)."""
    check_int("x", x, -MAX_SQUARE_X, MAX_SQUARE_X)
    check_int("work", work, 0, MAX_SQUARE_WORK)
    burn(work)
    return x * x


def sleep(seconds: float = DEFAULT_SLEEP_SECONDS) -> dict[str, float]:
    """Wait with `time.sleep` (which gevent/eventlet patch); `io_s` is the wait observed (run ledger)."""
    requested = check_seconds("seconds", seconds)
    started = time.monotonic()
    time.sleep(requested)
    return {"requested": requested, "io_s": time.monotonic() - started}


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def burn_cpu(seconds: float) -> float:
    """Burn `seconds` of this thread's own CPU time in pure Python; return what was burnt.

    The thread's CPU clock, not the wall clock: time spent waiting for the GIL is not work, and
    the cost does not drift with the machine's speed (a fixed loop count does, by +-20 % here).
    """
    started = time.thread_time()
    deadline = started + seconds
    while time.thread_time() < deadline:
        burn(BURN_STEP)
    return time.thread_time() - started


def mixed(cpu_ms: float = 5.0, io_ms: float = 45.0, io: str = "socket", order: str = "cpu-io") -> dict[str, Any]:
    """`cpu_ms` of pure-Python CPU and `io_ms` of waiting, in `order`; the waiting really observed.

    `io="socket"` waits on a real TCP request/response to the lab's latency server (tasks.latency):
    after the reply, the thread must take the GIL back from CPU-bound threads (bpo-7946), which
    `time.sleep` hides less well. `io_s` is what the task observed, so the run ledger can show the
    I/O inflation a pool causes (observed / requested).
    """
    cpu_s = check_number("cpu_ms", cpu_ms, 0.0, MAX_TASK_MS) / 1000
    io_s = check_number("io_ms", io_ms, 0.0, MAX_TASK_MS) / 1000
    wait = latency.ask if check_choice("io", io, IO_KINDS) == "socket" else _sleep_ms
    burnt = observed = 0.0
    for step in check_choice("order", order, ORDERS).split("-"):
        if step == "cpu":
            burnt = burn_cpu(cpu_s)
        else:
            observed = wait(io_s * 1000)
    return {"cpu_s": burnt, "io_s": observed, "io_requested_s": io_s}


def _sleep_ms(io_ms: float) -> float:
    started = time.monotonic()
    time.sleep(io_ms / 1000)
    return time.monotonic() - started


def noop() -> None:
    """Does nothing: what is left of a task's time is the queue's own overhead."""
