"""SIGTERM is Celery's warm shutdown: running tasks finish, the others go back to Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from celery import Celery

from config import Settings
from stack.processes import wait_until
from stack.workers import Worker
from tasks.ledger import run_headers, unacked_for
from tasks.probes import read_marks

HOLD_S = 0.5


@pytest.mark.parametrize("pool", ["prefork", "threads", "threads-ft"])
def test_warm_shutdown_finishes_running_tasks_and_requeues_the_rest(
    pool: str, app: Celery, settings: Settings, start_worker: Callable[..., Worker], redis_client: redis.Redis
) -> None:
    concurrency = settings.concurrency_for(pool)
    worker = start_worker(pool)
    queue = settings.queue_for(pool)
    count = concurrency * 6  # more than running + prefetched
    headers = run_headers(f"warm-{pool}")
    ids = [app.send_task("tasks.hold", kwargs={"seconds": HOLD_S, "tag": pool}, queue=queue, headers=headers).id
           for _ in range(count)]
    wait_until(lambda: len(read_marks(redis_client, pool, "started")) >= concurrency, 30, "a full pool running")
    assert worker.stop(grace=30) == 0

    started = {task_id for task_id, _ in read_marks(redis_client, pool, "started")}
    finished = {task_id for task_id, _ in read_marks(redis_client, pool, "finished")}
    assert started == finished, "a task that started was cut short"
    assert started and len(started) < count
    assert unacked_for(redis_client, [queue]) == 0, "a prefetched message was not given back"
    assert redis_client.llen(queue) == count - len(finished)  # the rest, queued: 0 lost

    start_worker(pool)  # and the rest runs on the next worker, each once
    wait_until(lambda: len(read_marks(redis_client, pool, "finished")) == count, 30, "the rest done")
    assert sorted(task_id for task_id, _ in read_marks(redis_client, pool, "finished")) == sorted(ids)
