"""Workers killed mid-run (SIGKILL, as a crash would), then restarted: nothing is lost.

Every task is counted by id in the run ledger; a task that ran twice is a duplicate, which
at-least-once delivery allows (see `ledgers.AT_LEAST_ONCE`), and is reported, not hidden.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

import pytest
import redis
from celery import Celery

from config import Settings
from stack.processes import wait_until
from stack.workers import Worker
from tasks.ledger import RunLedger
from tasks.probes import read_marks
from tests.faults.ledgers import account, report, send_squares

TASKS = 600


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["prefork", "threads", "threads-ft"])
def test_worker_killed_mid_run_then_restarted_loses_nothing(
    pool: str, app: Celery, settings: Settings, start_worker: Callable[..., Worker], redis_client: redis.Redis
) -> None:
    worker = start_worker(pool)
    plan = send_squares(app, settings, [pool], TASKS)
    ledger = RunLedger(redis_client, plan.run_id)
    wait_until(lambda: ledger.distinct_finished() >= TASKS // 6, 60, "a sixth of the run done")
    worker.kill()
    done_at_kill = ledger.distinct_finished()
    assert done_at_kill < TASKS, "the kill came after the run: make the tasks longer"

    start_worker(pool)
    # Redelivery waits for the visibility timeout; then nothing is left in Redis.
    wait_until(lambda: account(redis_client, settings, plan).queued == 0, 60, "every message taken")
    with contextlib.suppress(TimeoutError):  # a lost task shows in the accounting below
        wait_until(lambda: ledger.distinct_finished() == TASKS, 10, "every task ended")
    acc = account(redis_client, settings, plan)
    report(acc, f"{pool} SIGKILL at {done_at_kill}/{TASKS}")
    # tasks.transport takes a message and records it as unacked atomically: none can be lost
    # between the two, as with kombu's BRPOP (celery/kombu#305).
    assert (acc.queued, acc.failed, acc.lost) == (0, 0, 0)
    assert acc.completed == TASKS + acc.duplicated
    # Only what the dead worker held (running + prefetched) can have run twice.
    in_flight = settings.concurrency_for(pool) * (settings.prefetch_multiplier + 1)
    assert acc.duplicated <= in_flight


def test_prefork_child_killed_mid_task_is_retried(
    app: Celery, settings: Settings, start_worker: Callable[..., Worker], redis_client: redis.Redis
) -> None:
    worker = start_worker("prefork")
    result = app.send_task("tasks.hold", kwargs={"seconds": 1.5, "tag": "child"}, queue=settings.queue_for("prefork"))
    wait_until(lambda: len(read_marks(redis_client, "child", "started")) == 1, 30, "the task started")
    [(task_id, pid)] = read_marks(redis_client, "child", "started")
    assert task_id == result.id and pid != worker.pid
    os.kill(pid, signal.SIGKILL)

    # WorkerLostError + task_reject_on_worker_lost: the message is requeued and runs again.
    assert result.get(timeout=30)["pid"] != pid
    started = read_marks(redis_client, "child", "started")
    assert [t for t, _ in started] == [task_id, task_id]
    assert [t for t, _ in read_marks(redis_client, "child", "finished")] == [task_id]
    assert result.state == "SUCCESS"
    assert worker.process is not None and worker.process.poll() is None
