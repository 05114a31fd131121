"""Enqueueing a run: validate the whole plan first, then publish in kombu batches.

Messages go out through `Producer.batch()`, which pipelines the Redis LPUSHes
(about 3x a plain `apply_async` loop here). A chunk counts as sent only once its
batch has been flushed, so the number reported as sent is what reached Redis.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import BatchPublishError, OperationalError

from config import Settings
from config.constants import MAX_TASKS_PER_RUN
from config.errors import UserError
from config.pools import DEFAULT_POOLS, POOL_NAMES, check_pools
from producer.interrupts import deferred_interrupts
from tasks import connections, ledger
from tasks.work import check_int, check_number
from tasks.workloads import Workload, workload

# How long a batch waits for Redis to come back before the run gives up (exit 2).
BROKER_RETRY_S = 60.0
# A run id is part of the ledger's key names (lab:run:<id>:...).
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class PlanError(UserError, ValueError):
    """The plan cannot be run as asked; nothing has been sent."""


@dataclass(frozen=True)
class SendPlan:
    """What to enqueue: `count` tasks of one workload, with its parameters, to each of `pools`."""

    workload: str
    count: int
    pools: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    rate: float | None = None
    chunk: int = 500
    timing: bool = True
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    definition: Workload | None = None  # a workload outside the catalogue (lab advise's), named `workload`

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "params", self._validate())
        except (TypeError, ValueError) as exc:
            raise PlanError(str(exc)) from None

    def _validate(self) -> dict[str, Any]:
        params = self.task.validate(self.params)
        check_pools(self.pools)
        check_int("count", self.count, 1, MAX_TASKS_PER_RUN)
        check_int("chunk", self.chunk, 1, 100_000)
        if not RUN_ID.fullmatch(self.run_id):
            raise ValueError(f"run id must be 1-64 letters, digits, - or _, got {self.run_id!r}")
        if self.rate is not None:
            check_number("rate", self.rate, 0.0, 1_000_000)
            if self.rate <= 0:
                raise ValueError(f"rate must be positive, got {self.rate}")
        return params

    @property
    def task(self) -> Workload:
        return self.definition or workload(self.workload)

    @property
    def total(self) -> int:
        return self.count * len(self.pools)

    def task_arguments(self, index: int) -> tuple[list[Any], dict[str, Any]]:
        return self.task.arguments(index, self.params)


@dataclass
class SendResult:
    run_id: str
    sent: dict[str, int]
    elapsed_s: float
    interrupted: bool = False

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    @property
    def rate_per_s(self) -> float:
        return self.total / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def publish(app: Celery, settings: Settings, plan: SendPlan,
            on_sent: Callable[[int], None] | None = None) -> SendResult:
    """Send the plan's tasks, round-robin over its pools, burst or at `plan.rate` per second.

    SIGINT/SIGTERM stop it at the next batch boundary (`SendResult.interrupted`); a batch
    that failed because Redis went away is sent again, with the same task ids, once Redis
    answers (at-least-once: if it had in fact arrived, the ledger reports duplicates).
    """
    sent = {pool: 0 for pool in plan.pools}
    headers = ledger.run_headers(plan.run_id, plan.timing)
    name = plan.task.task_name
    started = time.monotonic()
    with app.producer_or_acquire() as producer, deferred_interrupts() as stop:
        done = 0
        while done < plan.total and not stop.requested:
            size = _next_chunk(plan, done, started)
            ids = [str(uuid.uuid4()) for _ in range(size)]
            _send_chunk_until_sent(app, producer, settings, plan, name, done, ids, headers)
            for index in range(done, done + size):
                sent[plan.pools[index % len(plan.pools)]] += 1
            done += size
            if on_sent:
                on_sent(size)
    return SendResult(plan.run_id, sent, time.monotonic() - started, interrupted=stop.requested)


def _send_chunk_until_sent(app: Celery, producer: Any, settings: Settings, plan: SendPlan, name: str,
                           first: int, ids: list[str], headers: dict[str, Any]) -> None:
    """One pipelined batch; if Redis went away mid-batch, wait for it and send the batch again."""
    deadline = time.monotonic() + BROKER_RETRY_S
    while True:
        try:
            with producer.batch(max_size=len(ids) + 1):
                for offset, task_id in enumerate(ids):
                    index = first + offset
                    pool = plan.pools[index % len(plan.pools)]
                    _send_one(app, producer, settings, plan, name, pool, index, headers, task_id)
            return
        except (BatchPublishError, OperationalError, redis.ConnectionError):
            connections.wait_for_broker(settings.require_broker(), max(0.0, deadline - time.monotonic()))


def _send_one(app: Celery, producer: Any, settings: Settings, plan: SendPlan, name: str,
              pool: str, index: int, headers: dict[str, Any], task_id: str) -> None:
    args, kwargs = plan.task_arguments(index // len(plan.pools))
    app.send_task(
        name, args=args, kwargs=kwargs, queue=settings.queue_for(pool), producer=producer, task_id=task_id,
        headers={**headers, ledger.SENT_HEADER: time.time()},
    )


def _next_chunk(plan: SendPlan, done: int, started: float) -> int:
    """How many to send now: a full chunk in a burst; at a fixed rate, what is due (waiting if none)."""
    remaining = plan.total - done
    if plan.rate is None:
        return min(plan.chunk, remaining)
    while True:
        due = int((time.monotonic() - started) * plan.rate) + 1 - done
        if due > 0:
            return min(due, plan.chunk, remaining)
        time.sleep(min(0.05, 1 / plan.rate))


def parse_pools(text: str, available: Sequence[str] = POOL_NAMES) -> tuple[str, ...]:
    """'both' means threads and prefork, 'all' every pool; otherwise a comma-separated list."""
    if text == "both":
        return DEFAULT_POOLS
    if text == "all":
        return tuple(available)
    return tuple(part.strip() for part in text.split(",") if part.strip())
