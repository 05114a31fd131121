"""The lab's headline, asserted with a generous margin: on 2+ cores prefork beats threads on CPU work."""

from collections.abc import Callable

import pytest

from config import Settings
from producer.publish import SendPlan, publish
from stack.workers import Worker
from tasks.connections import client_app, redis_client
from tasks.ledger import RunLedger


def drain_rate(settings: Settings, pool: str, count: int) -> float:
    plan = SendPlan("square", count, (pool,), {"work": 100_000})
    with client_app(settings) as app:
        publish(app, settings, plan)
    with redis_client(settings.require_broker()) as client:
        ledger = RunLedger(client, plan.run_id)
        assert ledger.wait(count, timeout=120).ended, f"{pool}: not every task ended"
        ledger.drain_timings()
        assert ledger.account(count, [settings.queue_for(pool)]).completed == count
    return ledger.timings.drain_rate()


@pytest.mark.slow
def test_prefork_square_throughput_beats_threads(settings: Settings, start_worker: Callable[..., Worker]) -> None:
    start_worker("threads", concurrency=2)
    start_worker("prefork", concurrency=2)
    threads = drain_rate(settings, "threads", 200)
    prefork = drain_rate(settings, "prefork", 200)
    print(f"square drain rate, concurrency 2: threads {threads:.1f}/s, prefork {prefork:.1f}/s, "
          f"ratio {prefork / threads:.2f}")
    assert prefork / threads >= 1.3
