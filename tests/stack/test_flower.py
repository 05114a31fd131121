"""Real Flower over HTTP: auth, both workers listed, and its counters match what was sent."""

import re
import subprocess
from collections.abc import Callable

import requests

from config import Settings
from stack.processes import wait_until
from stack.workers import Flower, Worker


def succeeded_by_worker(metrics: str) -> dict[str, float]:
    pattern = re.compile(r'^flower_events_total\{task="tasks.square",type="task-succeeded",worker="([^"]+)"\} (\S+)$',
                         re.M)
    return {worker: float(count) for worker, count in pattern.findall(metrics)}


def test_flower_lists_both_workers_and_counts_every_task(
    settings: Settings, start_worker: Callable[..., Worker], start_flower: Callable[[], Flower],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    threads, prefork = start_worker("threads"), start_worker("prefork")
    flower = start_flower()
    assert requests.get(f"{settings.flower_url}/api/workers", timeout=5).status_code == 401
    assert requests.get(f"{settings.flower_url}/", timeout=5).status_code == 401
    assert requests.get(f"{settings.flower_url}/api/workers", auth=("lab", "wrong-password"),
                        timeout=5).status_code == 401
    wait_until(lambda: set(flower.get("/api/workers", status="true").json()) >= {threads.name, prefork.name},
               30, "both workers in flower")
    assert flower.get("/api/workers", status="true").json() == {threads.name: True, prefork.name: True}

    sent = 150
    result = run_cli("send", "--task", "square", "-n", str(sent), "--pool", "both", "--work", "3000", "--wait")
    assert result.returncode == 0, result.stderr
    expected = {threads.name: float(sent), prefork.name: float(sent)}
    wait_until(lambda: succeeded_by_worker(flower.get("/metrics").text) == expected, 30,
               "flower's task-succeeded counters")
    assert succeeded_by_worker(flower.get("/metrics").text) == expected
