"""Counting a fault test's tasks by id: sent, ended once, ended twice, still in Redis, lost."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from celery import Celery

from config import Settings
from producer.publish import SendPlan, publish
from tasks.ledger import Accounting, RunLedger

# About 5 ms of CPU per task: 600 tasks take a few seconds on two cores.
SMALL_WORK = 60_000

AT_LEAST_ONCE = (
    "acks_late + redelivery after a crash is at-least-once delivery: a task that had finished "
    "but was not yet acknowledged when its worker died runs again"
)


def send_squares(app: Celery, settings: Settings, pools: Sequence[str], count: int,
                 work: int = SMALL_WORK) -> SendPlan:
    plan = SendPlan("square", count, tuple(pools), {"work": work})
    publish(app, settings, plan)
    return plan


def account(client: redis.Redis, settings: Settings, plan: SendPlan) -> Accounting:
    ledger = RunLedger(client, plan.run_id)
    return ledger.account(plan.total, [settings.queue_for(pool) for pool in plan.pools])


def report(acc: Accounting, what: str) -> str:
    """One line for the test log: every figure, and why a duplicate can happen."""
    line = (f"{what}: sent={acc.sent} completed={acc.completed} failed={acc.failed} "
            f"duplicated={acc.duplicated} queued={acc.queued} lost={acc.lost}")
    if acc.duplicated:
        line += f" (duplicates: {AT_LEAST_ONCE})"
    print(line)
    return line
