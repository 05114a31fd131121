"""Redis restarted mid-run (AOF on): workers and producer reconnect on their own, 0 lost.

And a producer started while Redis is down says so in one line, exits 2 and sends nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis

from config import Settings
from stack.processes import wait_until
from stack.redis_server import RedisServer
from stack.workers import Worker
from tasks import ledger
from tests.checks import finish, producer
from tests.faults.ledgers import AT_LEAST_ONCE, SMALL_WORK

TASKS = 600  # at 150/s the producer is still sending when Redis goes away


def done_so_far(client: redis.Redis) -> int:
    """Tasks ended in any run on this private server (there is one run)."""
    try:
        return sum(int(client.hlen(k)) for k in client.scan_iter(ledger.key("*", "seen")))
    except redis.ConnectionError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["threads", "prefork", "threads-ft"])
def test_redis_restarted_mid_run_loses_nothing(
    pool: str, settings: Settings, redis_server: RedisServer, start_worker: Callable[..., Worker],
    redis_client: redis.Redis
) -> None:
    worker = start_worker(pool)  # each pool's consumer (and interpreter) reconnects on its own
    run = producer(settings, "--task", "square", "--work", str(SMALL_WORK), "-n", str(TASKS), "--pool", pool,
                   "--rate", "150", "--wait", "--timeout", "40", "--json")
    wait_until(lambda: done_so_far(redis_client) >= 100, 60, "a hundred tasks done")
    redis_server.restart()
    out, err = finish(run, 120)
    assert out, err[-2000:]
    summary = json.loads(out)
    print(f"redis restart, {pool}: {summary}" + (f" (duplicates: {AT_LEAST_ONCE})" if summary["duplicated"] else ""))
    assert run.returncode == 0, err[-2000:]
    assert summary["sent"] == TASKS
    # A connection dropped mid-take leaves the message queued or recorded as unacked (tasks.transport).
    assert (summary["failed"], summary["lost"]) == (0, 0)
    assert worker.process is not None and worker.process.poll() is None


def test_producer_with_redis_down_exits_2_and_sends_nothing(
    settings: Settings, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    redis_server.stop()
    run = producer(settings, "--task", "square", "-n", "50", "--pool", "both")
    _, err = finish(run, 60)
    assert run.returncode == 2
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("producer: error: broker unreachable")
    assert redis_server.password not in err
    redis_server.start()  # same port, same AOF: had anything been sent, it would be here
    assert [settings.queue_for(p) for p in ("threads", "prefork") if redis_client.llen(settings.queue_for(p))] == []


def test_producer_waiting_on_a_broker_that_stays_gone_says_how_far_it_got(
    settings: Settings, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    queue = settings.queue_for("threads")  # no worker: the run waits, then Redis goes away for good
    run = producer(settings, "--task", "noop", "-n", "30", "--pool", "threads", "--wait", "--timeout", "120",
                   env={"LAB_BROKER_WAIT_S": "2"})
    wait_until(lambda: redis_client.llen(queue) == 30, 60, "every task sent", run)  # type: ignore[arg-type]
    redis_server.stop()
    _, err = finish(run, 60)
    assert run.returncode == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("producer: error: broker at 127.0.0.1:"), err
    assert lines[-1].endswith("; sent 30, done 0, unknown 30"), err
    assert "unreachable for" in lines[-1] and redis_server.password not in err
