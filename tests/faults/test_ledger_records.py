"""A worker's ledger record waits for Redis instead of giving up (a restart, a partition); what is in flight.

A record that gave up while the task's ack later went through would make a task that ran look
lost. Here the record is attempted while the broker's port answers every connection by closing
it, as a restarting or unreachable Redis does; only then does the real server start on that
port. The record must have kept retrying, and land exactly once.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import redis
from celery import Celery
from redis.commands.core import Script

from config import Settings
from stack.processes import wait_until
from stack.redis_server import RedisServer, free_port
from stack.workers import Worker
from tasks.connections import redis_client
from tasks.ledger import RECORD_SCRIPT, RunLedger, keys, timing_line, unacked_task_ids, writer_client


class ClosingListener:
    """Accepts connections on a port and closes each at once, counting them."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.accepted = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def record_once(record: Script, run_id: str, outcome: list[object]) -> None:
    line = timing_line(1.0, 1.1, 1.2, 0.1, None, "SUCCESS", "threads@a")
    try:
        outcome.append(record(keys=keys(run_id), args=["SUCCESS", "task-1", "threads@a", line, "w 1 1", "t1"]))
    except Exception as exc:  # what the test reports if the record gave up
        outcome.append(exc)


def test_a_record_retries_until_redis_is_back_and_lands_once(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", port=free_port(), appendonly=False)
    run_id = uuid.uuid4().hex[:12]
    outcome: list[object] = []
    listener = ClosingListener(server.port)
    writer = threading.Thread(target=record_once, args=(writer_client(server.url).register_script(RECORD_SCRIPT),
                                                         run_id, outcome), daemon=True)
    writer.start()
    try:
        wait_until(lambda: listener.accepted >= 3 or not writer.is_alive(), 30, "three attempts")
    finally:
        listener.close()
    assert writer.is_alive(), f"the record gave up: {outcome}"
    with server:
        writer.join(30)
        assert outcome == [1]
        with redis_client(server.url) as client:
            acc = RunLedger(client, run_id).account(1, [])
    assert (acc.completed, acc.duplicated, acc.lost) == (1, 0, 0)


def test_unacked_task_ids_are_what_a_paused_worker_holds(
    app: Celery, settings: Settings, start_worker: Callable[..., Worker], redis_client: redis.Redis
) -> None:
    """A worker holding long tasks: their ids are in flight (unacked) until they end, then none are."""
    start_worker("threads", concurrency=2)
    queue = settings.queue_for("threads")
    results = [app.send_task("tasks.sleep", kwargs={"seconds": 1.0}, queue=queue) for _ in range(2)]
    wait_until(lambda: unacked_task_ids(redis_client, [queue]) == {r.id for r in results}, 30, "both in flight")
    assert unacked_task_ids(redis_client, ["elsewhere"]) == set()
    wait_until(lambda: not unacked_task_ids(redis_client, [queue]), 30, "both acknowledged")
