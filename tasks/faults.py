"""Tasks that exist to observe faults and what each pool can do about them.

* `tasks.spin(seconds)`  a runaway task: a pure-Python loop that ignores everything
  but its own deadline (what a time limit is for).
* `tasks.hold(seconds, tag)`  waits, and records in Redis when it started and when it
  finished, with its pid, so a test can kill exactly the process running it.

The marks go to `lab:faults:<tag>:started` / `:finished` (lists of "task_id pid").
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery

from config.constants import MAX_SLEEP_SECONDS
from tasks.work import check_seconds

FAULTS_PREFIX = "lab:faults:"


def marks_key(tag: str, event: str) -> str:
    return f"{FAULTS_PREFIX}{tag}:{event}"


def spin(seconds: float) -> int:
    """Burn CPU until `seconds` have passed; return how many loop turns that took."""
    deadline = time.monotonic() + check_seconds("seconds", seconds, MAX_SLEEP_SECONDS)
    turns = 0
    while time.monotonic() < deadline:
        turns += 1
    return turns


def _mark(client: redis.Redis, tag: str, event: str, task_id: str) -> None:
    client.rpush(marks_key(tag, event), f"{task_id} {os.getpid()}")


def register(app: Celery) -> None:
    """Add the fault tasks to the worker's app (called by `tasks.celery_app`)."""

    def client() -> redis.Redis:
        return redis.Redis.from_url(app.conf.lab_settings.require_broker(), socket_timeout=10)

    @app.task(name="tasks.spin")
    def spin_task(seconds: float = 1.0) -> int:
        return spin(seconds)

    @app.task(name="tasks.hold", bind=True)
    def hold(self: Any, seconds: float = 1.0, tag: str = "default") -> dict[str, Any]:
        seconds = check_seconds("seconds", seconds)
        conn = client()
        try:
            _mark(conn, tag, "started", self.request.id)
            time.sleep(seconds)
            _mark(conn, tag, "finished", self.request.id)
        finally:
            conn.close()
        return {"pid": os.getpid(), "held": seconds}
