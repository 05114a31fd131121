"""SIGINT/SIGTERM while sending: finish the batch in flight, then stop and say how many went out.

A signal that interrupted a Redis pipeline half-way would leave the producer unable to say
what reached the queue. Deferring it to the next batch boundary keeps "sent" exact: every
batch counted as sent was flushed, and none was flushed without being counted.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

DEFERRED = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """Set by a deferred signal; `publish` checks it between batches."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _set(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = signum


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[StopFlag]:
    """Within the block, SIGINT/SIGTERM set the flag instead of interrupting (main thread only)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {signum: signal.signal(signum, flag._set) for signum in DEFERRED}
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
