"""JSON only: a pickled message pushed straight onto a queue is refused, never unpickled."""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from celery import Celery

from config import Settings
from stack.processes import wait_until
from stack.workers import Worker


class CreatesFileWhenUnpickled:
    """Unpickling this opens (creates) `path`: proof of execution if the file ever exists."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def pickled_task_message(queue: str, payload: object) -> bytes:
    """A Celery protocol-2 message as kombu's Redis transport stores it, but with a pickle body."""
    task_id = str(uuid.uuid4())
    body = pickle.dumps(((payload,), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}))
    return json.dumps({
        "body": base64.b64encode(body).decode(),
        "content-encoding": "binary",
        "content-type": "application/x-python-serialize",
        "headers": {"lang": "py", "task": "tasks.noop", "id": task_id, "root_id": task_id, "retries": 0,
                    "timelimit": [None, None], "argsrepr": "", "kwargsrepr": "", "origin": "attacker"},
        "properties": {"correlation_id": task_id, "delivery_mode": 2, "priority": 0, "body_encoding": "base64",
                       "delivery_info": {"exchange": "", "routing_key": queue}, "delivery_tag": str(uuid.uuid4())},
    }).encode()


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_pickled_message_is_refused_and_the_worker_serves_on(
    pool: str, app: Celery, settings: Settings, start_worker: Callable[..., Worker], redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    worker = start_worker(pool)
    queue = settings.queue_for(pool)
    proof = tmp_path / "unpickled"
    redis_client.lpush(queue, pickled_task_message(queue, CreatesFileWhenUnpickled(proof)))

    wait_until(lambda: "Refusing to deserialize untrusted content" in worker.log_path.read_text(), 30,
               "the worker refusing the pickle")
    assert app.send_task("tasks.square", args=[9], kwargs={"work": 10}, queue=queue).get(timeout=30) == 81
    assert not proof.exists(), "the pickle was unpickled"
    assert redis_client.llen(queue) == 0  # refused and dropped, not left to be redelivered forever
    assert worker.process is not None and worker.process.poll() is None
