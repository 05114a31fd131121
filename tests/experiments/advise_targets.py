"""Targets for `lab advise`'s tests: code the lab has never seen, good and bad."""

from __future__ import annotations

import threading
import time

NOT_CALLABLE = 42


def tiny(n: int = 20_000, wait_ms: float = 2.0) -> int:
    """A little pure-Python CPU and a little waiting."""
    time.sleep(wait_ms / 1000)
    return sum(i * i for i in range(n))


def fails(x: int) -> int:
    raise ValueError(f"cannot handle {x}")


def hangs() -> None:
    """Never returns: what `lab advise --timeout` must cut short (a wait on an event nobody sets)."""
    threading.Event().wait()
