"""The live view reads the run ledger: per pool done/total, tasks/s now, p95 run time."""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Callable

import pytest
import redis
from rich.console import Console

from producer.live import LiveRun, RecentRate
from stack.workers import Worker
from tasks.ledger import RunLedger, key, timing_line


def test_recent_rate_spans_only_the_last_window() -> None:
    rate = RecentRate(window_s=3.0)
    assert rate.per_s() is None
    for second, done in enumerate([0, 100, 200, 210, 220, 230]):
        rate.add(float(second), done)
    # the last 3 s: from t=2 (200 done) to t=5 (230 done)
    assert rate.per_s() == pytest.approx(10.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(client: redis.Redis, run_id: str, worker: str, run_s: float, count: int, at: float) -> None:
    """What a worker's ledger handler writes when it ends `count` tasks (tasks/ledger.py)."""
    for _ in range(count):
        client.hincrby(key(run_id, "count"), "SUCCESS", 1)
        client.rpush(key(run_id, "timings"), timing_line(at, at, at + run_s, run_s, None, "SUCCESS", worker))


def test_rows_split_the_ledger_per_pool(redis_client: redis.Redis) -> None:
    run_id = "live-test-split"
    ledger = RunLedger(redis_client, run_id)
    clock = Clock()
    view = LiveRun(ledger, {"threads": 100, "prefork": 100}, clock=clock)
    try:
        record(redis_client, run_id, "threads@host", 0.010, 20, 1000.0)
        record(redis_client, run_id, "prefork@host", 0.200, 5, 1000.0)
        view.update()
        clock.now = 2.0
        record(redis_client, run_id, "threads@host", 0.010, 40, 1002.0)
        record(redis_client, run_id, "prefork@host", 0.200, 10, 1002.0)
        view.update()
        rows = {row.name: row for row in view.rows}
        assert [rows[p].done for p in ("threads", "prefork", "all")] == [60, 15, 75]
        assert [rows[p].total for p in ("threads", "prefork", "all")] == [100, 100, 200]
        assert rows["threads"].per_s == pytest.approx(20.0) and rows["prefork"].per_s == pytest.approx(5.0)
        assert rows["all"].per_s == pytest.approx(25.0)
        assert rows["threads"].p95_s == pytest.approx(0.010, rel=0.02)
        assert rows["prefork"].p95_s == pytest.approx(0.200, rel=0.02)
        text = io.StringIO()
        Console(file=text, width=120).print(view)
        assert re.search(r"threads .* 60/100 .* 20\.0 .* 10\.\d ms", text.getvalue())
        assert re.search(r"prefork .* 15/100 .* 5\.0 .* 20\d\.\d ms", text.getvalue())
    finally:
        ledger.delete()


def test_producer_send_wait_shows_every_pool_done(
    start_worker: Callable[..., Worker], run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    start_worker("threads")
    start_worker("prefork")
    result = run_cli("send", "--task", "sleep", "--seconds", "0.01", "-n", "40", "--pool", "both", "--wait")
    assert result.returncode == 0, result.stderr
    for pool, done in (("threads", "40/40"), ("prefork", "40/40"), ("all", "80/80")):
        assert re.search(rf"│ {pool} +│ .* │ +{done} │ +[\d.,]+ │ +[\d.,]+ ms │", result.stdout), result.stdout
