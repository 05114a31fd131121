"""Tasks that exist to observe faults and the article's claims, not to be served in production.

A worker registers them only when `LAB_PROBES=true` (the tests and `make claims` turn it on):

* `tasks.spin(seconds)`  a runaway task: a pure-Python loop that ignores everything but its own
  deadline (what a time limit is for; claim 5);
* `tasks.hold(seconds, tag)`  waits, and records in Redis when it started and when it finished,
  with its pid, so a test can kill exactly the process running it (marks under
  `lab:faults:<tag>:started` / `:finished`, lists of "task_id pid");
* `tasks.bump()`  appends to a module-level list: on the threads pool every task sees the same
  list, on prefork each child its own copy (claim 6);
* `tasks.crash_once(marker)`  exits the interpreter with `os._exit` the first time it runs for a
  marker file (so a redelivered copy finishes): on prefork that is one child, on threads the
  whole worker (claim 6).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from tasks.connections import redis_client
from tasks.work import check_seconds

FAULTS_PREFIX = "lab:faults:"
SPIN_TASK = "tasks.spin"
HOLD_TASK = "tasks.hold"
BUMP_TASK = "tasks.bump"
CRASH_ONCE_TASK = "tasks.crash_once"
_bumps: list[int] = []
_bumps_lock = threading.Lock()


def marks_key(tag: str, event: str) -> str:
    return f"{FAULTS_PREFIX}{tag}:{event}"


def _mark(task_id: str, pid: int) -> str:
    """One mark as `tasks.hold` writes it and `read_marks` reads it back."""
    return f"{task_id} {pid}"


def read_marks(client: redis.Redis, tag: str, event: str) -> list[tuple[str, int]]:
    """(task id, pid) of every `tasks.hold` of `tag` that reached `event` ('started' or 'finished')."""
    entries = client.lrange(marks_key(tag, event), 0, -1)
    pairs = [(entry.decode() if isinstance(entry, bytes) else str(entry)).split() for entry in entries]
    return [(task_id, int(pid)) for task_id, pid in pairs]


def spin(seconds: float) -> int:
    """Burn CPU until `seconds` have passed; return how many loop turns that took."""
    deadline = time.monotonic() + check_seconds("seconds", seconds)
    turns = 0
    while time.monotonic() < deadline:
        turns += 1
    return turns


def bump() -> dict[str, int]:
    """Append to a module-level list; return this process's pid and the list's length."""
    with _bumps_lock:
        _bumps.append(1)
        return {"pid": os.getpid(), "seen": len(_bumps)}


def crash_once(marker: str) -> str:
    """Exit the interpreter without cleanup the first time; succeed when run again."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os._exit(13)
    return "ran again after the crash"


def register(app: Celery) -> None:
    """Add the probe tasks to the worker's app (`tasks.celery_app`, when settings.probes)."""
    app.task(name=SPIN_TASK)(spin)
    app.task(name=BUMP_TASK)(bump)
    app.task(name=CRASH_ONCE_TASK)(crash_once)

    @app.task(name=HOLD_TASK, bind=True)
    def hold(self: Any, seconds: float = 1.0, tag: str = "default") -> dict[str, Any]:
        seconds = check_seconds("seconds", seconds)
        with redis_client(app.conf.lab_settings.require_broker(), timeout=10) as client:
            client.rpush(marks_key(tag, "started"), _mark(self.request.id, os.getpid()))
            time.sleep(seconds)
            client.rpush(marks_key(tag, "finished"), _mark(self.request.id, os.getpid()))
        return {"pid": os.getpid(), "held": seconds}
