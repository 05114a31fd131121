"""The Celery application, built from `Settings` (the worker CLI finds `tasks.app`)."""

from __future__ import annotations

from celery import Celery

from config import Settings


def make_app(settings: Settings) -> Celery:
    """A Celery app that accepts JSON only and does not lose a task when a worker dies."""
    app = Celery(
        "tasks", broker=settings.broker_url, backend=settings.result_backend, events="tasks.events:LabEvents"
    )
    transport = {"visibility_timeout": settings.visibility_timeout}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=settings.acks_late,
        task_reject_on_worker_lost=settings.acks_late,
        task_acks_on_failure_or_timeout=True,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_prefetch_multiplier=settings.prefetch_multiplier,
        worker_send_task_events=settings.events,
        task_send_sent_event=settings.events,
        task_ignore_result=not settings.results,
        result_expires=3600,
        task_default_queue=settings.queue_for("threads"),
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    app.conf.lab_settings = settings
    return app
