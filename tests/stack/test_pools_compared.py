"""The lab's headline, asserted with a generous margin: on 2+ cores prefork beats threads on CPU work."""

from collections.abc import Callable

import pytest

from config import Settings
from producer.publish import SendPlan, publish
from producer.tracking import RunLedger
from stack.workers import Worker
from tasks import connections
from tasks.app import make_app


def drain_rate(settings: Settings, pool: str, count: int) -> float:
    plan = SendPlan("square", count, (pool,), work=100_000)
    app = make_app(settings)
    try:
        publish(app, settings, plan)
    finally:
        app.close()
    ledger = RunLedger(connections.client(settings.require_broker()), plan.run_id)
    assert ledger.wait(count, timeout=120), f"{pool}: not every task ended"
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
