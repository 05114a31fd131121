"""The Celery application, built from `Settings` (the worker CLI finds `tasks.app`).

Delivery guarantees (docs/faults.md): a task is acknowledged only after it ran
(`task_acks_late`), so a worker that dies takes no message with it; Redis hands an
unacknowledged message out again once `visibility_timeout` has passed. That makes
delivery at-least-once: a task that finished but whose ack did not reach Redis
runs a second time, and the run ledger reports it as a duplicate.
"""

from __future__ import annotations

import gc
from typing import Any

from celery import Celery

from config import Settings

# Seconds between the redelivery sweeps of a consuming worker (kombu's default is 10 s, and only
# every 10th sweep scans). Scanning every sweep, at most every visibility_timeout/5 seconds, is
# what makes a short visibility timeout actually short after a crash.
MAX_RESTORE_INTERVAL_S = 10
# A sweep takes milliseconds; two overlapping ones are harmless (each message is moved in a
# WATCH transaction), so the lock need not outlive a dead holder for long.
UNACKED_MUTEX_EXPIRE_S = 5
# The result backend retries a failed write (e.g. Redis restarting) instead of failing the task:
# exponential backoff from 10 ms up to 10 s, at most this many times (about 2 minutes in all).
RESULT_BACKEND_MAX_RETRIES = 20


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's Redis options: the visibility timeout and how often unacked messages are restored."""
    return {
        "visibility_timeout": settings.visibility_timeout,
        "unacked_restore_interval": max(1, min(MAX_RESTORE_INTERVAL_S, settings.visibility_timeout // 5)),
        "unacked_restore_throttle": 1,
        # The sweep holds a Redis lock; a worker SIGKILLed while holding it (likelier with a sweep
        # every second) blocked every other sweep for kombu's default 300 s.
        "unacked_mutex_expire": UNACKED_MUTEX_EXPIRE_S,
        # One list per queue (the lab sends no priorities), so a worker waits on a single key and
        # tasks.transport can take atomically without polling.
        "priority_steps": [0],
    }


def make_app(settings: Settings) -> Celery:
    """A Celery app that accepts JSON only and does not lose a task when a worker dies."""
    app = Celery(
        "tasks", broker=settings.broker_url, backend=settings.result_backend, events="tasks.events:LabEvents"
    )
    transport = transport_options(settings)
    app.conf.update(
        # JSON only: a pickled message is refused before it is deserialised (tests/security).
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # Ack after the task ran, so a crash mid-task leaves the message to be redelivered ...
        task_acks_late=settings.acks_late,
        # ... also when the pool child running it is killed (WorkerLostError requeues the message;
        # a task that kills its process every time therefore loops: see docs/faults.md).
        task_reject_on_worker_lost=settings.acks_late,
        # A task that raised or hit its time limit is done: ack it rather than redeliver it forever.
        task_acks_on_failure_or_timeout=True,
        # Off on purpose: it acks a redelivered task whose result is already SUCCESS without running
        # it, and without any signal, so a crash between storing the result and the ledger's record
        # made that task look lost. The lab counts duplicates instead of hiding them.
        worker_deduplicate_successful_tasks=False,
        # The same visibility timeout for consumers, producers and the result backend.
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        # Reconnect to Redis on start-up and after a lost connection, without giving up.
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # Storing a result while Redis restarts retries instead of failing the task.
        result_backend_always_retry=True,
        result_backend_max_retries=RESULT_BACKEND_MAX_RETRIES,
        # Kept False (Celery 6 will default to True): cancelling needs pool.terminate_job, which the
        # threads pool does not implement, so on a connection loss it would raise in the consumer.
        # Tasks running across a reconnect finish; if their ack is lost, they run again (duplicate).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_prefetch_multiplier=settings.prefetch_multiplier,
        worker_send_task_events=settings.events,
        task_send_sent_event=settings.events,
        task_ignore_result=not settings.results,
        result_expires=3600,
        task_default_queue=settings.queue_for("threads"),
        worker_hijack_root_logger=False,
        # Schedules the event flush under kombu's lock (tasks/events.py: a race a free-threaded worker hit).
        worker_consumer="tasks.events:LabConsumer",
    )
    app.conf.lab_settings = settings
    return app


def close_app(app: Celery) -> None:
    """Close a client app so that no AsyncResult it made talks to Redis after this returns.

    AsyncResults left for the garbage collector unsubscribe from Redis in `__del__`; with
    Redis gone by then (a test's server, a finished experiment's) that retries for 20 s each
    and ends in errors at exit. Some stay referenced (a failed `get()` keeps its traceback),
    so the result subscription is closed too: their `__del__` then has nothing to do.
    """
    gc.collect()
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is not None and consumer._pubsub is not None:
        consumer.stop()
        consumer._pubsub = None
    app.close()
