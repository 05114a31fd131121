"""Fault tests get a Redis of their own (AOF on, restartable) and a short visibility timeout.

Redis' unacked-message bookkeeping (`unacked`, `unacked_index`) is shared by every queue on a
server, and these tests kill workers and restart Redis: a private server per test keeps their
redeliveries away from every other test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Settings
from stack.redis_server import RedisServer

# Short enough that a crashed worker's messages come back within a test, long enough that a
# message prefetched by a live worker is not handed out twice (tasks here last well under 1 s).
FAULT_VISIBILITY_TIMEOUT_S = 5


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """Overrides the session's server: the shared `settings` and `redis_client` then use this one."""
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(visibility_timeout=FAULT_VISIBILITY_TIMEOUT_S)
