"""The Docker-free stack: Redis (embedded unless configured), one worker per pool, Flower.

It starts what `docker compose up` starts, through the same entry points, waits
for each part to be ready, and stops everything (workers first, Redis last) when
the block ends, on Ctrl-C included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from config import Settings, SettingsError, redact
from config.pools import DEFAULT_POOLS
from config.settings import STATE_FILE, write_stack_state
from stack.latency_server import LatencyServer
from stack.prometheus import Prometheus
from stack.redis_server import RedisServer, free_port
from stack.workers import Flower, Worker
from tasks.connections import check_broker


@dataclass
class Stack:
    settings: Settings
    run_dir: Path
    workers: dict[str, Worker] = field(default_factory=dict)
    flower: Flower | None = None
    redis: RedisServer | None = None
    prometheus: Prometheus | None = None
    latency: LatencyServer | None = None


def check_external_broker(url: str) -> None:
    """A Redis the lab did not start must demand a password (secure by default), and ours must be right."""
    parts = urlsplit(url)
    if parts.scheme != "unix" and not parts.password:
        raise SettingsError(f"broker URL {redact(url)} has no password: the lab only uses a Redis that "
                            "requires one (redis://:PASSWORD@host:port/0), or leave LAB_BROKER_URL unset")
    check_broker(url)


@contextlib.contextmanager
def running_stack(settings: Settings, run_dir: Path, pools: Sequence[str] = DEFAULT_POOLS,
                  with_flower: bool = True, flower_port: int | None = None,
                  with_prometheus: bool = False, scrape_interval: str | None = None) -> Iterator[Stack]:
    """Start the stack, yield it, and stop every process it started, whatever happens."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        redis_server = None
        if settings.broker_url is None:
            redis_server = RedisServer(run_dir / "redis").start()
            cleanup.callback(redis_server.stop)
            settings = settings.replace(broker_url=redis_server.url)
        else:
            check_external_broker(settings.broker_url)
        if flower_port is not None:
            settings = settings.replace(flower_port=flower_port or free_port())
        latency = None
        if settings.latency_server is None:  # `mixed` tasks with socket I/O wait on it
            latency = LatencyServer(run_dir / "latency-server.log").start()
            cleanup.callback(latency.stop)
            settings = settings.replace(latency_server=f"{latency.host}:{latency.port}")
        write_stack_state(settings)
        cleanup.callback((settings.state_dir / STATE_FILE).unlink, missing_ok=True)
        stack = Stack(settings, run_dir, redis=redis_server, latency=latency)
        for pool in pools:
            worker = Worker(settings, pool, settings.concurrency_for(pool), run_dir / f"worker-{pool}.log")
            cleanup.callback(worker.stop)
            stack.workers[pool] = worker.start()
        if with_flower:
            stack.flower = Flower(settings, run_dir / "flower.log")
            cleanup.callback(stack.flower.stop)
            stack.flower.start()
        if with_prometheus and with_flower:
            stack.prometheus = Prometheus(settings, run_dir, scrape_interval)
            cleanup.callback(stack.prometheus.stop)
            stack.prometheus.start()
        yield stack
