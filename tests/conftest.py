"""Shared fixtures: a real Redis, real worker processes, real Flower, all torn down here.

Each test gets its own queue prefix, so workers of one test never take another
test's messages even though the Redis server is shared by the session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from config import Settings
from stack.latency_server import LatencyServer
from stack.redis_server import RedisServer, free_port
from stack.workers import Flower, Worker
from tasks.connections import client_app
from tests.checks import assert_no_traceback

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real Redis-protocol server for the session, on a free port, with a password."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def latency_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LatencyServer]:
    """The session's latency server: `mixed` tasks with socket I/O wait on it."""
    with LatencyServer(tmp_path_factory.mktemp("latency") / "latency-server.log") as server:
        yield server


@pytest.fixture
def settings(redis_server: RedisServer, latency_server: LatencyServer, tmp_path: Path) -> Settings:
    return Settings(
        broker_url=redis_server.url,
        queue_prefix=f"t{uuid.uuid4().hex[:8]}",
        flower_port=free_port(),
        state_dir=tmp_path / ".lab",
        concurrency={"threads": 4, "prefork": 2, "gevent": 50, "eventlet": 50, "solo": 1, "threads-ft": 4},
        probes=True,  # tasks.spin, hold, bump, crash_once
        latency_server=f"{latency_server.host}:{latency_server.port}",
    )


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def app(settings: Settings) -> Iterator[object]:
    """A client-side Celery app on the test's settings (tasks sent by name)."""
    with client_app(settings) as celery_app:
        yield celery_app


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Factory: start a real `lab worker POOL` process; every one is stopped at teardown."""
    started: list[Worker] = []

    def start(pool: str, concurrency: int | None = None, extra: tuple[str, ...] = (),
              worker_settings: Settings | None = None) -> Worker:
        s = worker_settings or settings
        log = tmp_path / f"worker-{pool}-{len(started)}.log"
        worker = Worker(s, pool, concurrency or s.concurrency_for(pool), log, extra)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop(grace=15)


@pytest.fixture
def start_flower(settings: Settings, tmp_path: Path) -> Iterator[Callable[[], Flower]]:
    started: list[Flower] = []

    def start() -> Flower:
        flower = Flower(settings, tmp_path / "flower.log")
        started.append(flower)
        return flower.start()

    yield start
    for flower in started:
        flower.stop()


@pytest.fixture
def run_cli(settings: Settings) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `producer ...` (module `cli.producer`; `cli` is `lab`) as a user would, with the test's settings.

    Every run is checked for a traceback on stdout or stderr.
    """

    def run(*args: str, module: str = "cli.producer", env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **settings.to_env(), "COLUMNS": "200", **(env or {})}
        result = subprocess.run(
            [sys.executable, "-m", module, *args], env=full_env, capture_output=True, text=True,
            timeout=timeout, cwd=ROOT,
        )
        assert_no_traceback(result.stdout, result.stderr)
        return result

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `pytest -n 2` (make test), keep the compose and the browser tests each on one worker.

    The compose tests share the engine's images and each starts a whole stack (up to 8 containers
    on 2 cores); two at once would measure the machine, not the lab. Everything else runs on
    both workers: each has its own session Redis and latency server on free ports, and every
    test its own queue prefix.
    """
    for item in items:
        for group in ("compose", "monitoring"):
            if item.get_closest_marker(group):
                item.add_marker(pytest.mark.xdist_group(group))
