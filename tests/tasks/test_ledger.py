"""The ledger under a burst on many threads: every task recorded once, no write lost."""

from collections.abc import Callable

from celery import Celery

from config import Settings
from producer.publish import SendPlan, publish
from producer.tracking import RunLedger
from stack.workers import Worker
from tasks import connections


def test_a_burst_on_64_threads_is_recorded_exactly_once(
    settings: Settings, app: Celery, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker("threads", concurrency=64)
    plan = SendPlan("sleep", 640, ("threads",), seconds=0.0)
    publish(app, settings, plan)
    ledger = RunLedger(connections.client(settings.require_broker()), plan.run_id)
    assert ledger.wait(plan.total, timeout=60)
    ledger.drain_timings()
    accounting = ledger.account(plan.total, [settings.queue_for("threads")])
    assert (accounting.completed, accounting.lost, accounting.duplicated) == (640, 0, 0)
    assert ledger.timings.count == 640
    assert "record_end" not in worker.log_path.read_text(), "a ledger write failed in the worker"
