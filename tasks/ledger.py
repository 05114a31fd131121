"""The run ledger: what each worker records in Redis about every task it finished.

The producer stamps each message with a run id and its send time (message headers,
so task signatures stay clean). When a task of a run ends, the worker adds, in one
round trip (one MULTI/EXEC, so a reader never sees a count without its timing line):

* `lab:run:<id>:count`   hash  state -> number of tasks that ended in that state
* `lab:run:<id>:seen`    hash  task id -> times it ended (more than 1 = duplicate)
* `lab:run:<id>:timings` list  "sent started finished cpu state worker" per task

`cpu` is the CPU time the task's own thread spent from start to finish: the CPU ideal is
computed from it, in the same seconds as the throughput (docs/experiments.md says why).
The timing source is independent of Flower. `seen` and `timings` are the harness's
instrumentation: a run may turn them off (`timing=False`) to measure their cost.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import redis
from celery import Celery, signals

from config.constants import LEDGER_PREFIX, RUN_HEADER, SENT_HEADER

TIMING_HEADER = "lab_timing"
MAX_LEDGER_CONNECTIONS = 10_000  # at most one per concurrent task of a worker process
_started: dict[str, tuple[float, float]] = {}  # task id -> (wall clock, thread CPU) at start
_clients: dict[int, redis.Redis] = {}
_clients_lock = threading.Lock()


def key(run_id: str, part: str) -> str:
    return f"{LEDGER_PREFIX}{run_id}:{part}"


def run_headers(run_id: str, timing: bool = True) -> dict[str, Any]:
    """Headers the producer puts on every message of a run (sent time added per message)."""
    return {RUN_HEADER: run_id, TIMING_HEADER: timing}


def _new_client(app: Celery) -> redis.Redis:
    # redis-py caps a pool at 100 connections by default; a threads worker at concurrency 128
    # needs one per busy thread, or record_end fails with MaxConnectionsError (tasks look lost).
    return redis.Redis.from_url(app.conf.lab_settings.require_broker(), socket_timeout=10,
                                max_connections=MAX_LEDGER_CONNECTIONS)


def install(app: Celery) -> None:
    """Connect the ledger to the worker's task signals (no I/O happens here)."""

    def client() -> redis.Redis:
        """One pooled, thread-safe client per process (prefork children get their own)."""
        pid = os.getpid()
        with _clients_lock:  # two threads building clients at once: the loser's is closed by GC mid-use
            if pid not in _clients:
                _clients[pid] = _new_client(app)
        return _clients[pid]

    @signals.task_prerun.connect(weak=False)
    def remember_start(task_id: str, **_: Any) -> None:
        _started[task_id] = (time.time(), time.thread_time())

    @signals.task_postrun.connect(weak=False)
    def record_end(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
        finished, cpu_now = time.time(), time.thread_time()
        started, cpu_at_start = _started.pop(task_id, (finished, cpu_now))
        run_id = getattr(task.request, RUN_HEADER, None)
        if not run_id:
            return
        pipe = client().pipeline(transaction=True)  # readers see the count and the timing line together
        pipe.hincrby(key(run_id, "count"), state or "UNKNOWN", 1)
        if getattr(task.request, TIMING_HEADER, True):
            sent = float(getattr(task.request, SENT_HEADER, None) or started)
            worker = task.request.hostname or "?"
            pipe.hincrby(key(run_id, "seen"), task_id, 1)
            pipe.rpush(
                key(run_id, "timings"),
                f"{sent:.6f} {started:.6f} {finished:.6f} {cpu_now - cpu_at_start:.6f} {state} {worker}",
            )
        pipe.execute()
