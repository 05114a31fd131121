"""One short run watched by the whole monitoring side: Flower, Prometheus, and (later) a browser.

The stack is started once for this test package through the launcher (`running_stack(...,
with_prometheus=True)`), with its own embedded Redis: Flower counts every event on its
broker, so workers of other tests (also named `threads@<host>`) must not share it.
Prometheus scrapes Flower every second. The run is `producer send --wait`, as a user
types it; the fixture returns when Prometheus has scraped every task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from config import Settings
from config.pools import DEFAULT_POOLS
from stack.launcher import Stack, running_stack
from stack.processes import wait_until
from stack.prometheus import Prometheus
from stack.redis_server import free_port
from tests.monitoring.dashboard import ROOT

SENT_PER_POOL = 300
SLEEP_S = "0.05"  # threads x4: ~4 s, prefork x2: ~8 s, so Prometheus sees a few rate samples per pool
SCRAPE_INTERVAL = "1s"
SUCCEEDED = 'flower_events_total{type="task-succeeded"}'


@dataclass
class WatchedRun:
    stack: Stack
    sent_per_pool: int
    started: float
    finished: float

    @property
    def prometheus(self) -> Prometheus:
        assert self.stack.prometheus is not None
        return self.stack.prometheus

    @property
    def worker_names(self) -> dict[str, str]:
        return {pool: worker.name for pool, worker in self.stack.workers.items()}

    def query_range(self, expr: str) -> list[dict[str, object]]:
        """`expr` over the run, one point per second, with a margin for the last scrapes."""
        return self.prometheus.query_range(expr, self.started - 2, self.finished + 2, 1)


def scalar(prometheus: Prometheus, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


def send_and_wait(settings: Settings, count: int) -> dict[str, object]:
    command = [sys.executable, "-m", "cli.producer", "send", "--task", "sleep", "--seconds", SLEEP_S,
               "-n", str(count), "--pool", ",".join(DEFAULT_POOLS), "--wait", "--json"]
    result = subprocess.run(command, env={**os.environ, **settings.to_env()}, capture_output=True, text=True,
                            timeout=120, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="package")  # torn down after tests/monitoring, not left running for the rest
def watched_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WatchedRun]:
    run_dir = tmp_path_factory.mktemp("watched-run")
    settings = Settings(
        broker_url=None, queue_prefix=f"m{uuid.uuid4().hex[:8]}", flower_port=free_port(),
        state_dir=run_dir / ".lab", concurrency={"threads": 4, "prefork": 2, "gevent": 50, "eventlet": 50, "solo": 1},
    )
    with running_stack(settings, run_dir, DEFAULT_POOLS, with_prometheus=True,
                       scrape_interval=SCRAPE_INTERVAL) as stack:
        prometheus = stack.prometheus
        assert prometheus is not None
        wait_until(prometheus.flower_target_up, 30, "prometheus scraping flower")
        wait_until(lambda: scalar(prometheus, "sum(flower_worker_online)") == len(DEFAULT_POOLS), 30,
                   "prometheus seeing both workers online")
        started = time.time()
        report = send_and_wait(stack.settings, SENT_PER_POOL)
        assert report["completed"] == SENT_PER_POOL * len(DEFAULT_POOLS), report
        wait_until(lambda: scalar(prometheus, f"sum({SUCCEEDED})") == report["completed"], 30,
                   "prometheus scraping every succeeded task")
        yield WatchedRun(stack, SENT_PER_POOL, started, time.time())
