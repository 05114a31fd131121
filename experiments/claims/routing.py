"""The routing answer: a mixed workload (80 % sleep, 20 % square) on one pool, both, or routed.

Four ways to run the same 200 tasks, each timed from first start to last finish:

* `threads alone`   one threads worker takes everything (the squares hold the GIL);
* `prefork alone`   one prefork worker takes everything (the sleeps hold processes);
* `shared queue`    both workers consume one queue (each takes whatever comes);
* `routed`          squares go to the prefork queue, sleeps to the threads queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from config import Settings
from experiments.schema import RoutingRow
from producer.publish import SendPlan, publish
from stack.workers import Worker
from tasks import connections
from tasks.ledger import RunLedger

SLEEP_SHARE = 0.8
TASKS = 200
SLEEP_S = 0.1
SQUARE_WORK = 200_000
THREADS_C = 8
PREFORK_C = 2
SCENARIOS = ("threads alone", "prefork alone", "shared queue", "routed")


def run_mixed(settings: Settings, run_dir: Path, tasks: int = TASKS) -> list[RoutingRow]:
    return [_scenario(settings, run_dir, scenario, tasks) for scenario in SCENARIOS]


def _scenario(settings: Settings, run_dir: Path, scenario: str, tasks: int) -> RoutingRow:
    """Where each workload is sent, and which workers consume which queues, per scenario."""
    threads_q, prefork_q = settings.queue_for("threads"), settings.queue_for("prefork")
    workers: dict[str, str] = {
        "threads alone": {"threads": threads_q},
        "prefork alone": {"prefork": threads_q},
        "shared queue": {"threads": threads_q, "prefork": threads_q},
        "routed": {"threads": threads_q, "prefork": prefork_q},
    }[scenario]
    square_to = "prefork" if scenario == "routed" else "threads"
    sleeps = round(tasks * SLEEP_SHARE)
    sleep_plan = SendPlan("sleep", sleeps, ("threads",), {"seconds": SLEEP_S})
    square_plan = SendPlan("square", tasks - sleeps, (square_to,), {"work": SQUARE_WORK}, run_id=sleep_plan.run_id)
    with (_workers(settings, run_dir, scenario, workers), connections.client_app(settings) as app,
          connections.redis_client(settings.require_broker()) as client):
        for plan in _interleaved(sleep_plan, square_plan):
            publish(app, settings, plan)
        run = RunLedger(client, sleep_plan.run_id)
        run.wait(tasks, timeout=120, poll_s=0.1)
        run.drain_timings()
        accounting = run.account(tasks, [threads_q, prefork_q])
    return {"scenario": scenario, "tasks": tasks, "completed": accounting.completed, "lost": accounting.lost,
            "throughput_per_s": run.timings.drain_rate()}


def _interleaved(sleep_plan: SendPlan, square_plan: SendPlan) -> Sequence[SendPlan]:
    """Squares among the sleeps: send in five alternating slices so neither kind comes first."""
    slices = []
    for part in range(5):
        for plan in (sleep_plan, square_plan):
            count = plan.count // 5 + (plan.count % 5 if part == 4 else 0)
            if count:
                slices.append(SendPlan(plan.workload, count, plan.pools, plan.params, run_id=plan.run_id))
    return slices


@contextlib.contextmanager
def _workers(settings: Settings, run_dir: Path, scenario: str, queues: dict[str, str]) -> Iterator[None]:
    concurrency = {"threads": THREADS_C, "prefork": PREFORK_C}
    started = []
    try:
        for pool, queue in queues.items():
            log = run_dir / f"mixed-{scenario.replace(' ', '-')}-{pool}.log"
            started.append(Worker(settings, pool, concurrency[pool], log, ("--queues", queue)).start())
        yield
    finally:
        for worker in started:
            worker.stop()
