"""Claim 5: a thread cannot be killed from outside; a process can.

A runaway task (`tasks.spin`, a pure-Python loop) meets the two tools Celery has
for stopping one: a hard `time_limit`, and `revoke(terminate=True)`. Both work by
signalling the pool child running the task, so both need a child process: on
prefork the task ends early; on threads it runs to its own end.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from celery import Celery

from config import Settings
from experiments.schema import StopAttemptRow
from stack.processes import wait_until
from stack.workers import Worker
from tasks import connections, ledger, probes

RUNAWAY_S = 6.0
LIMIT_S = 1


def killed(ran_s: float | None) -> bool:
    """Stopped well before the loop's own end (a child killed mid-task may never report at all).

    `ran_s`: how long the task body ran, from the ledger; None if it never returned.
    """
    return ran_s is None or ran_s < RUNAWAY_S * 0.75


def stop_runaway(settings: Settings, run_dir: Path, pool: str) -> list[StopAttemptRow]:
    """Try a time limit, then revoke(terminate=True), each against a fresh runaway task."""
    attempts = []
    for method in (f"time_limit={LIMIT_S}s", "revoke(terminate=True)"):
        worker = Worker(settings, pool, 2, run_dir / f"kill-{pool}.log").start()
        try:
            with connections.client_app(settings) as app:
                attempts.append(_attempt(app, settings, worker, method))
        finally:
            worker.stop()
    return attempts


def _attempt(app: Celery, settings: Settings, worker: Worker, method: str) -> StopAttemptRow:
    """Send one runaway, stop it, and wait past its natural end to see whether it returned."""
    limit = {"time_limit": LIMIT_S} if method.startswith("time_limit") else {}
    run_id = uuid.uuid4().hex[:12]
    result = app.send_task(probes.SPIN_TASK, args=[RUNAWAY_S], queue=settings.queue_for(worker.pool),
                           headers=ledger.run_headers(run_id), **limit)
    wait_until(lambda: _is_running(app, worker.name, result.id), 30, "the runaway task to start")
    if not limit:
        app.control.revoke(result.id, terminate=True, signal="SIGKILL")
    with connections.redis_client(settings.require_broker()) as client:
        run = ledger.RunLedger(client, run_id)
        run.wait(1, timeout=RUNAWAY_S + 2, poll_s=0.1)
        run.drain_timings()
    ran = run.timings.run_time.high if run.timings.count else None  # a SIGTERMed child may still report
    return {"pool": worker.pool, "method": method, "reported_state": str(result.state), "ran_s": ran,
            "killed": killed(ran)}


def _is_running(app: Celery, worker_name: str, task_id: str) -> bool:
    active: dict[str, list[dict[str, Any]]] = app.control.inspect([worker_name], timeout=0.5).active() or {}
    return any(task["id"] == task_id for task in active.get(worker_name, []))
