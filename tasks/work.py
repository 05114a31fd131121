"""The task functions: `square` burns CPU in pure Python, `sleep` waits like I/O does, `noop` does nothing.

Arguments are checked before any work starts, so a bad call fails at once with
a one-line `TypeError` or `ValueError` and the worker goes on serving. What each
workload is to the rest of the lab (parameters, arguments, ideal) is in `tasks.workloads`.
"""

from __future__ import annotations

import math
import time
from typing import Final

MAX_SLEEP_SECONDS: Final = 3600.0
MAX_SQUARE_WORK: Final = 100_000_000
MAX_SQUARE_X: Final = 10**12
DEFAULT_SQUARE_WORK: Final = 120_000  # about 10 ms of pure-Python CPU on this machine
DEFAULT_SLEEP_SECONDS: Final = 0.1


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


def noop() -> None:
    """Does nothing: what is left of a task's time is the queue's own overhead."""
