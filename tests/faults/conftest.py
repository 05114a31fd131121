"""Fault tests get a Redis of their own (AOF on, restartable) and a short visibility timeout.

Redis' unacked-message bookkeeping (`unacked`, `unacked_index`) is shared by every queue on a
server, and these tests kill workers and restart Redis: a private server per test keeps their
redeliveries away from every other test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config import Settings
from stack.redis_server import RedisServer, free_port

# Short enough that a crashed worker's messages come back within a test, long enough that a
# message prefetched by a live worker is not handed out twice (tasks here last well under 1 s).
FAULT_VISIBILITY_TIMEOUT_S = 5


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
def settings(private_redis: RedisServer, tmp_path: Path) -> Settings:
    return Settings(
        broker_url=private_redis.url,
        queue_prefix=f"f{uuid.uuid4().hex[:8]}",
        visibility_timeout=FAULT_VISIBILITY_TIMEOUT_S,
        flower_port=free_port(),
        state_dir=tmp_path / ".lab",
        concurrency={"threads": 4, "prefork": 2, "gevent": 50, "eventlet": 50, "solo": 1},
    )


@pytest.fixture
def redis_client(private_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url)
    yield client
    client.close()
