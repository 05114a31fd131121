"""Both tasks on both pools, through real Redis and real worker processes."""

from collections.abc import Callable

import pytest
from celery import Celery

from config import Settings
from stack.workers import Worker

POOLS = ["threads", "prefork", "threads-ft"]  # threads-ft: the same tasks without a GIL


@pytest.mark.parametrize("pool", POOLS)
def test_square_and_sleep_return_checkable_results(
    pool: str, app: Celery, settings: Settings, start_worker: Callable[..., Worker]
) -> None:
    start_worker(pool)
    queue = settings.queue_for(pool)
    squares = [app.send_task("tasks.square", args=[x], kwargs={"work": 1000}, queue=queue) for x in range(20)]
    sleeps = [app.send_task("tasks.sleep", kwargs={"seconds": 0.05}, queue=queue) for _ in range(4)]
    assert [r.get(timeout=30) for r in squares] == [x * x for x in range(20)]
    for result in sleeps:
        slept = result.get(timeout=30)
        assert slept["requested"] == 0.05
        assert slept["io_s"] >= 0.05


BAD_CALLS = [
    ("tasks.square", {"x": -1, "work": -5}, "work must be between"),
    ("tasks.square", {"x": "seven"}, "x must be an integer"),
    ("tasks.square", {"x": 10**30}, "x must be between"),
    ("tasks.square", {"x": 2, "work": 10**12}, "work must be between"),
    ("tasks.sleep", {"seconds": -1}, "finite number"),
    ("tasks.sleep", {"seconds": float("nan")}, "finite number"),
    ("tasks.sleep", {"seconds": 1e9}, "finite number"),
    ("tasks.sleep", {"seconds": "soon"}, "must be a number"),
    ("tasks.sleep", {"secs": 1}, "unexpected keyword"),
    # faults/bad-input table (docs/faults.md): zero is fine, these are not
    ("tasks.square", {"x": 2.5}, "x must be an integer"),
    ("tasks.square", {"x": True}, "x must be an integer"),
    ("tasks.square", {"x": None}, "x must be an integer"),
    ("tasks.square", {"x": [1, 2]}, "x must be an integer"),
    ("tasks.square", {"x": 2, "work": float("nan")}, "work must be an integer"),
    ("tasks.square", {"x": 2, "work": "lots"}, "work must be an integer"),
    ("tasks.square", {}, "missing 1 required positional argument"),
    ("tasks.sleep", {"seconds": float("inf")}, "finite number"),
    ("tasks.sleep", {"seconds": True}, "must be a number"),
    ("tasks.sleep", {"seconds": None}, "must be a number"),
    ("tasks.spin", {"seconds": -1}, "finite number"),
    ("tasks.hold", {"seconds": float("nan")}, "finite number"),
]


@pytest.mark.parametrize("pool", POOLS)
def test_bad_arguments_fail_the_task_and_the_worker_serves_on(
    pool: str, app: Celery, settings: Settings, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker(pool)
    queue = settings.queue_for(pool)
    results = [(app.send_task(task, kwargs=kwargs, queue=queue), error) for task, kwargs, error in BAD_CALLS]
    for result, error in results:
        with pytest.raises(Exception, match=error):
            result.get(timeout=30)
        assert result.state == "FAILURE"
    assert app.send_task("tasks.square", args=[9], kwargs={"work": 10}, queue=queue).get(timeout=30) == 81
    assert worker.process is not None and worker.process.poll() is None
