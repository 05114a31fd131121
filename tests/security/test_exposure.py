"""Nothing listens beyond 127.0.0.1, and Flower wants credentials for every page but two.

Flower 2 serves `/healthcheck` ("OK") and `/metrics` (Prometheus counters: task names,
worker names, counts; no arguments, results or credentials) without auth. The lab keeps
them open on loopback so Prometheus can scrape without a password (docs/faults.md);
everything else is tested here to answer 401 without credentials.
"""

from __future__ import annotations

from collections.abc import Callable

import psutil
import requests

from config import Settings
from stack.redis_server import RedisServer
from stack.workers import Flower, Worker

PROTECTED = ["/", "/workers", "/tasks", "/broker", "/api/workers", "/api/tasks", "/api/task/info/none",
             "/api/task/types", "/api/queues/length"]
OPEN_BY_DESIGN = ["/healthcheck", "/metrics"]


def listening_addresses(pid: int) -> set[str]:
    process = psutil.Process(pid)
    pids = [process.pid, *(child.pid for child in process.children(recursive=True))]
    return {conn.laddr.ip for conn in psutil.net_connections("inet")
            if conn.status == psutil.CONN_LISTEN and conn.pid in pids}


def test_only_loopback_listens_and_flower_requires_auth(
    settings: Settings, redis_server: RedisServer, start_worker: Callable[..., Worker],
    start_flower: Callable[[], Flower],
) -> None:
    worker = start_worker("threads")
    flower = start_flower()
    assert flower.process is not None and redis_server.process is not None
    for pid in (redis_server.process.pid, flower.process.pid, worker.pid):
        assert listening_addresses(pid) <= {"127.0.0.1"}
    assert listening_addresses(flower.process.pid) == {"127.0.0.1"}

    for path in PROTECTED:
        assert requests.get(settings.flower_url + path, timeout=10).status_code == 401, path
        assert flower.get(path).status_code in (200, 404), path  # 404: the API's answer for an unknown task
    for path in OPEN_BY_DESIGN:
        assert requests.get(settings.flower_url + path, timeout=10).status_code == 200, path
