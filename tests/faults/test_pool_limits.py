"""What the prefork pool can do to a task and the threads pool cannot (docs/faults.md).

A thread cannot be killed from outside in CPython, and a threads worker is one process:
time limits, revoke(terminate=True), child recycling and autoscaling all act on pool
*processes*, so on the threads pool they do nothing, with or without the GIL. Each test runs the
same thing on each pool.
"""

from __future__ import annotations

from collections.abc import Callable

import psutil
import pytest
import redis
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from config import Settings
from config.pools import POOLS
from stack.processes import wait_until
from stack.workers import Worker
from tasks.probes import read_marks

RUNAWAY_S = 3.0
LIMIT_S = 1
# Each test runs on every pool it is about: prefork, and the threads pool with and without the GIL
# (threads-ft: free-threaded CPython runs threads in parallel, but a thread still cannot be killed).
POOLS_UNDER_TEST = ["prefork", "threads", "threads-ft"]


def acts_on_processes(pool: str) -> bool:
    """Time limits, terminate and recycling need a pool process per task: Celery's prefork pool."""
    return POOLS[pool].celery_pool == "prefork"


@pytest.mark.parametrize("pool", POOLS_UNDER_TEST)
def test_time_limits_stop_a_runaway_task_on_prefork_only(
    pool: str, app: Celery, settings: Settings, start_worker: Callable[..., Worker]
) -> None:
    start_worker(pool)
    limits = {TimeLimitExceeded: {"time_limit": LIMIT_S}, SoftTimeLimitExceeded: {"soft_time_limit": LIMIT_S}}
    sent = {error: app.send_task("tasks.spin", args=[RUNAWAY_S], queue=settings.queue_for(pool), **options)
            for error, options in limits.items()}
    for error, result in sent.items():
        if acts_on_processes(pool):  # hard: the child is killed; soft: the exception is raised inside the task
            with pytest.raises(error):
                result.get(timeout=30)
        else:  # ran its full RUNAWAY_S: the limit was not enforced
            assert result.get(timeout=30) > 0 and result.state == "SUCCESS"


@pytest.mark.parametrize("pool", POOLS_UNDER_TEST)
def test_revoke_with_terminate_stops_a_running_task_on_prefork_only(
    pool: str, app: Celery, settings: Settings, start_worker: Callable[..., Worker], redis_client: redis.Redis
) -> None:
    worker = start_worker(pool)
    result = app.send_task("tasks.hold", kwargs={"seconds": 2.0, "tag": pool}, queue=settings.queue_for(pool))
    wait_until(lambda: len(read_marks(redis_client, pool, "started")) == 1, 30, f"hold on {pool}")
    [(task_id, pid)] = read_marks(redis_client, pool, "started")
    app.control.revoke(result.id, terminate=True, signal="SIGKILL")

    if acts_on_processes(pool):  # the child running it was killed 2 s before the task would have ended
        assert pid != worker.pid
        wait_until(lambda: result.state == "REVOKED", 15, "the task revoked")
        wait_until(lambda: not psutil.pid_exists(pid), 15, "the child running it gone")
        assert read_marks(redis_client, pool, "finished") == []  # and a dead process finishes nothing later
    else:  # the thread ran to its end, in the worker's own process (its state ends REVOKED or SUCCESS)
        wait_until(lambda: read_marks(redis_client, pool, "finished") != [], 15, "the thread ran to its end")
        assert read_marks(redis_client, pool, "finished") == [(task_id, worker.pid)]


def pids_of(app: Celery, settings: Settings, pool: str, count: int) -> set[int]:
    queue = settings.queue_for(pool)
    results = [app.send_task("tasks.hold", kwargs={"seconds": 0.05, "tag": f"pid-{pool}"}, queue=queue)
               for _ in range(count)]
    return {result.get(timeout=30)["pid"] for result in results}


@pytest.mark.parametrize("pool", POOLS_UNDER_TEST)
@pytest.mark.parametrize("flag", [("--max-tasks-per-child", "1"), ("--max-memory-per-child", "1")])
def test_child_recycling_replaces_prefork_children_and_means_nothing_on_threads(
    flag: tuple[str, str], pool: str, app: Celery, settings: Settings, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker(pool, extra=flag)
    if acts_on_processes(pool):
        # Each task on its own child process, every child replaced after one task (1 KiB is always exceeded).
        assert len(pids_of(app, settings, pool, 6)) == 6
        assert worker.pid not in pids_of(app, settings, pool, 2)
    else:  # a threads worker is one process: every task reports the same pid, the worker's own
        assert pids_of(app, settings, pool, 6) == {worker.pid}


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
