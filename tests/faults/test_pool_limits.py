"""What the prefork pool can do to a task and the threads pool cannot (docs/faults.md).

A thread cannot be killed from outside in CPython, and a threads worker is one process:
time limits, revoke(terminate=True), child recycling and autoscaling all act on pool
*processes*, so on the threads pool they do nothing. Each test runs the same thing on both.
"""

from __future__ import annotations

from collections.abc import Callable

import psutil
import pytest
import redis
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from config import Settings
from stack.processes import wait_until
from stack.workers import Worker
from tasks.probes import read_marks

RUNAWAY_S = 3.0
LIMIT_S = 1


def test_time_limits_stop_a_runaway_task_on_prefork_only(
    app: Celery, settings: Settings, start_worker: Callable[..., Worker]
) -> None:
    start_worker("prefork"), start_worker("threads")
    limits = {TimeLimitExceeded: {"time_limit": LIMIT_S}, SoftTimeLimitExceeded: {"soft_time_limit": LIMIT_S}}
    sent = {(pool, error): app.send_task("tasks.spin", args=[RUNAWAY_S], queue=settings.queue_for(pool), **options)
            for pool in ("prefork", "threads") for error, options in limits.items()}
    for (pool, error), result in sent.items():
        if pool == "prefork":  # hard: the child is killed; soft: the exception is raised inside the task
            with pytest.raises(error):
                result.get(timeout=30)
        else:  # ran its full RUNAWAY_S: the limit was not enforced
            assert result.get(timeout=30) > 0 and result.state == "SUCCESS"


def test_revoke_with_terminate_stops_a_running_task_on_prefork_only(
    app: Celery, settings: Settings, start_worker: Callable[..., Worker], redis_client: redis.Redis
) -> None:
    start_worker("prefork"), start_worker("threads")
    results = {pool: app.send_task("tasks.hold", kwargs={"seconds": 2.0, "tag": pool}, queue=settings.queue_for(pool))
               for pool in ("prefork", "threads")}
    for pool in results:
        wait_until(lambda p=pool: len(read_marks(redis_client, p, "started")) == 1, 30, f"hold on {pool}")  # type: ignore[misc]
    for result in results.values():
        app.control.revoke(result.id, terminate=True, signal="SIGKILL")

    # The thread ran to its end (its state ends REVOKED or SUCCESS, whichever was written last).
    wait_until(lambda: read_marks(redis_client, "threads", "finished") != [], 15, "the thread ran to its end")
    assert results["prefork"].state == "REVOKED"
    assert read_marks(redis_client, "prefork", "finished") == []  # killed 2 s before it would have


def pids_of(app: Celery, settings: Settings, pool: str, count: int) -> set[int]:
    queue = settings.queue_for(pool)
    results = [app.send_task("tasks.hold", kwargs={"seconds": 0.05, "tag": f"pid-{pool}"}, queue=queue)
               for _ in range(count)]
    return {result.get(timeout=30)["pid"] for result in results}


@pytest.mark.parametrize("flag", [("--max-tasks-per-child", "1"), ("--max-memory-per-child", "1")])
def test_child_recycling_replaces_prefork_children_and_means_nothing_on_threads(
    flag: tuple[str, str], app: Celery, settings: Settings, start_worker: Callable[..., Worker]
) -> None:
    prefork = start_worker("prefork", extra=flag)
    threads = start_worker("threads", extra=flag)
    # Each task on its own child process, every child replaced after one task (1 KiB is always exceeded).
    assert len(pids_of(app, settings, "prefork", 6)) == 6
    assert prefork.pid not in pids_of(app, settings, "prefork", 2)
    # The threads worker is one process: every task reports the same pid, the worker's own.
    assert pids_of(app, settings, "threads", 6) == {threads.pid}


def pool_processes(worker: Worker) -> int:
    return len(psutil.Process(worker.pid).children())


@pytest.mark.slow
def test_autoscale_grows_prefork_children_under_load(
    app: Celery, settings: Settings, start_worker: Callable[..., Worker], redis_client: redis.Redis
) -> None:
    prefork = start_worker("prefork", concurrency=1, extra=("--autoscale", "3,1"))
    assert pool_processes(prefork) == 1
    queue = settings.queue_for("prefork")
    results = [app.send_task("tasks.hold", kwargs={"seconds": 3.0, "tag": "scale"}, queue=queue) for _ in range(3)]
    wait_until(lambda: pool_processes(prefork) == 3, 20, "the pool grown to 3 processes")
    wait_until(lambda: len(read_marks(redis_client, "scale", "started")) == 3, 20, "three tasks at once")
    assert all(result.get(timeout=30)["held"] == 3.0 for result in results)
