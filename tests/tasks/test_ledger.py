"""The run ledger: a burst on many threads recorded exactly once, and its timing lines read back."""

import dataclasses
import math
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from celery import Celery

from config import Settings
from experiments import redis_stats
from producer.publish import SendPlan, publish
from stack.redis_server import RedisServer
from stack.workers import Worker
from tasks.connections import redis_client as redis_client_for
from tasks.ledger import (
    COMMANDS,
    RECORD_SCRIPT,
    UNACKED_INDEX_KEY,
    Accounting,
    AccountingCounts,
    Duplicate,
    RunLedger,
    Timings,
    keys,
    timing_line,
    unacked_delivered_before,
)


def test_a_burst_on_64_threads_is_recorded_exactly_once(
    settings: Settings, app: Celery, start_worker: Callable[..., Worker], redis_client: redis.Redis
) -> None:
    worker = start_worker("threads", concurrency=64)
    plan = SendPlan("sleep", 640, ("threads",), {"seconds": 0.0})
    publish(app, settings, plan)
    ledger = RunLedger(redis_client, plan.run_id)
    assert ledger.wait(plan.total, timeout=60).ended
    ledger.drain_timings()
    accounting = ledger.account(plan.total, [settings.queue_for("threads")])
    assert (accounting.completed, accounting.lost, accounting.duplicated) == (640, 0, 0)
    assert ledger.timings.count == 640
    assert "record_end" not in worker.log_path.read_text(), "a ledger write failed in the worker"


def test_timings_give_drain_rate_from_first_start_to_last_finish() -> None:
    timings = Timings()
    timings.add(timing_line(100.0, 100.5, 101.0, 0.4, None, "SUCCESS", "threads@h"))
    timings.add(timing_line(100.0, 101.0, 102.5, 1.2, 1.1, "SUCCESS", "threads@h"))
    assert timings.count == 2
    assert timings.drain_rate() == pytest.approx(2 / 2.0)
    assert timings.elapsed_since_sent() == pytest.approx(2.5)
    assert timings.mean_task_cpu_s() == pytest.approx(0.8)
    assert timings.queue_wait.percentile(1.0) == pytest.approx(1.0)
    assert math.isnan(Timings().drain_rate())
    assert timings.io_observed.total == 1 and timings.io_observed.percentile(0.5) == pytest.approx(1.1, rel=0.015)


def test_a_retried_record_counts_once_and_another_ending_counts_again(redis_client: redis.Redis) -> None:
    """A retry whose first attempt ran (its reply lost) carries the same token: not a duplicate."""
    script = redis_client.register_script(RECORD_SCRIPT)
    run_id = uuid.uuid4().hex[:12]
    line = timing_line(1.0, 1.1, 1.2, 0.1, None, "SUCCESS", "threads@a")
    first = ["SUCCESS", "task-1", "threads@a", line, "threads@a 7 1", "token-1"]
    assert script(keys=keys(run_id), args=first) == 1
    assert script(keys=keys(run_id), args=first) == -1
    again = ["SUCCESS", "task-1", "threads@b", line, "threads@b 9 1", "token-2"]
    assert script(keys=keys(run_id), args=again) == 2
    ledger = RunLedger(redis_client, run_id)
    acc = ledger.account(1, [])
    assert (acc.completed, acc.duplicated, acc.lost) == (2, 1, 0)
    assert ledger.duplicates() == [Duplicate("task-1", "threads@a", "threads@b")]
    ledger.delete()
    assert not any(redis_client.exists(name) for name in keys(run_id))


def test_not_ended_and_duplicate_count_follow_the_records(redis_client: redis.Redis) -> None:
    script = redis_client.register_script(RECORD_SCRIPT)
    run_id = uuid.uuid4().hex[:12]
    ledger = RunLedger(redis_client, run_id)
    line = timing_line(1.0, 1.1, 1.2, 0.1, None, "SUCCESS", "threads@a")
    assert ledger.not_ended(["t1", "t2"]) == {"t1", "t2"} and ledger.not_ended([]) == set()
    for token, task_id in (("a", "t1"), ("b", "t1"), ("c", "t2")):
        script(keys=keys(run_id), args=["SUCCESS", task_id, "threads@a", line, "w 1 1", token])
    assert ledger.not_ended(["t1", "t2", "t3"]) == {"t3"}
    assert ledger.duplicate_count() == len(ledger.duplicates()) == 1
    ledger.delete()


def test_unacked_delivered_before_counts_by_delivery_time(tmp_path: Path) -> None:
    """A private server: the session's workers sweep the shared `unacked_index`."""
    with RedisServer(tmp_path / "redis", appendonly=False) as server, redis_client_for(server.url) as client:
        client.zadd(UNACKED_INDEX_KEY, {"early": 100.0, "edge": 200.0, "late": 300.0})
        assert [unacked_delivered_before(client, when) for when in (50.0, 200.0, 200.5, 1e10)] == [0, 1, 2, 3]


def test_the_ledger_sends_exactly_the_commands_it_declares(tmp_path: Path) -> None:
    """COMMANDS is what redis_stats counts as the harness's: a record and every read, on a private server."""
    with RedisServer(tmp_path / "redis", appendonly=False) as server, redis_client_for(server.url) as client:
        before = redis_stats.command_calls(client)
        run_id = uuid.uuid4().hex[:12]
        script = client.register_script(RECORD_SCRIPT)
        line = timing_line(1.0, 1.1, 1.2, 0.1, None, "SUCCESS", "threads@a")
        for token in ("a", "b"):
            script(keys=keys(run_id), args=["SUCCESS", "t1", "threads@a", line, f"w {token}", token])
        ledger = RunLedger(client, run_id)
        assert ledger.wait(1, timeout=10).ended
        assert ledger.drain_timings() == 2
        assert ledger.duplicate_count() == len(ledger.duplicates()) == 1
        ledger.not_ended(["t1"])
        assert ledger.account(2, ["lab:test:queue"]).queued == 0  # one task missing: the queues are looked at
        unacked_delivered_before(client, 0.0)
        ledger.delete()
        sent = redis_stats.delta(before, redis_stats.command_calls(client))
    assert set(sent) - {"info"} == COMMANDS


def test_accounting_and_its_json_shape_declare_the_same_fields() -> None:
    acc = Accounting(sent=3, completed=1, failed=1, duplicated=0, queued=1, lost=0)
    assert [f.name for f in dataclasses.fields(acc)] == list(AccountingCounts.__annotations__)
    assert acc.as_dict() == dataclasses.asdict(acc)
