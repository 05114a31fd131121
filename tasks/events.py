"""A task-event dispatcher that does not drop events sent from several threads.

Celery's `EventDispatcher.send` appends buffered task events to a list without a
lock, while the worker's event loop flushes and clears that list: with the
threads pool, task-started/succeeded events sent from pool threads between the
flush's publish and its clear are lost (celery/celery#10434; still so in 5.7.0).
Here that showed as Flower counting 139 of 200 threads-pool successes. Holding
one re-entrant lock around `send` and `flush` closes the gap.

A second unlocked access, found on the free-threaded worker: a pool thread that buffers an event
schedules the flush with `Consumer.on_send_event_buffered`, which adds to kombu's `hub._ready`
without the lock kombu takes around every other access of that set (celery/celery#7162,
kombu#1489). When the event loop iterates the set it has just swapped out while a pool thread
still adds to it, the worker dies with `RuntimeError: Set changed size during iteration`. With
the GIL that needs a thread switch at one exact instruction; without it, 3.13t threads workers
died this way in 2 of 17 runs. `LabConsumer` takes the hub's lock (`worker_consumer` setting).
"""

from __future__ import annotations

import threading
from typing import Any

from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher
from celery.worker.consumer import Consumer


class ThreadSafeEventDispatcher(EventDispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._buffer_lock = threading.RLock()
        super().__init__(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> Any:
        with self._buffer_lock:
            return super().send(*args, **kwargs)

    def flush(self, *args: Any, **kwargs: Any) -> Any:
        with self._buffer_lock:
            return super().flush(*args, **kwargs)


class LabEvents(Events):
    dispatcher_cls = "tasks.events:ThreadSafeEventDispatcher"


class LabConsumer(Consumer):
    def on_send_event_buffered(self) -> None:
        if self.hub:
            with self.hub._ready_lock:
                self.hub._ready.add(self._flush_events)
