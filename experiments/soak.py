"""`lab soak`: many small mixed tasks through both pools while things break (a benchmark, not a test).

During the drain the prefork worker is SIGKILLed and restarted (at a quarter of the run) and
Redis is restarted from its AOF (at half). Every task is counted by id in the run ledger (both
workloads share one run id); the summary says how many were sent, completed, failed, lost and
duplicated, and how long it took. Writes results/soak/summary.json.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from config import Settings
from config.pools import DEFAULT_POOLS
from experiments.schema import SoakEvent, SoakSummary
from producer.publish import SendPlan, publish
from stack.redis_server import RedisServer
from stack.workers import Worker
from tasks import connections
from tasks.ledger import Accounting, RunLedger

SQUARE_WORK = 1000  # ~0.1 ms of CPU: the soak measures the plumbing, not the workload
VISIBILITY_TIMEOUT_S = 10
STALL_S = 3 * VISIBILITY_TIMEOUT_S  # no task ended for this long: give up and report what is missing


@dataclass
class Soak:
    settings: Settings
    redis: RedisServer
    run_dir: Path
    plans: list[SendPlan] = field(default_factory=list)
    workers: dict[str, Worker] = field(default_factory=dict)
    events: list[SoakEvent] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def start_worker(self, pool: str) -> None:
        log = self.run_dir / f"worker-{pool}-{len(self.events)}.log"
        self.workers[pool] = Worker(self.settings, pool, self.settings.concurrency_for(pool), log).start(120)

    def note(self, what: str, ended: int | None) -> None:
        self.events.append({"at_s": round(time.monotonic() - self.started, 2), "event": what, "ended": ended})


def plans_for(tasks: int) -> list[SendPlan]:
    """Half square, half sleep(0), each split over both pools, all under one run id."""
    per = max(1, tasks // 4)
    square = SendPlan("square", per, DEFAULT_POOLS, {"work": SQUARE_WORK}, chunk=2000)
    return [square, SendPlan("sleep", per, DEFAULT_POOLS, {"seconds": 0.0}, chunk=2000, run_id=square.run_id)]


def send_all(soak: Soak, progress: Progress, bar: TaskID) -> None:
    with connections.client_app(soak.settings) as app:
        for plan in soak.plans:
            publish(app, soak.settings, plan, lambda n: progress.update(bar, advance=n))
    soak.note("all sent", None)


def chaos(soak: Soak, total: int) -> Callable[[int], None]:
    """The progress callback that breaks things at a quarter and at half of the run."""
    steps = [(total // 4, kill_and_restart_prefork), (total // 2, restart_redis)]

    def on_progress(done: int) -> None:
        if steps and done >= steps[0][0]:
            steps.pop(0)[1](soak, done)

    return on_progress


def kill_and_restart_prefork(soak: Soak, done: int) -> None:
    soak.workers["prefork"].kill()
    soak.note("prefork worker SIGKILLed", done)
    soak.start_worker("prefork")
    soak.note("prefork worker restarted", done)


def restart_redis(soak: Soak, done: int) -> None:
    soak.redis.restart()
    soak.note("redis restarted (AOF)", done)


def drain(soak: Soak, total: int, progress: Progress) -> Accounting:
    """Wait for every task (breaking things on the way), then account for them by id."""
    bar = progress.add_task("done", total=total)
    breaker = chaos(soak, total)

    def on_progress(done: int) -> None:
        progress.update(bar, completed=done)
        breaker(done)

    queues = [soak.settings.queue_for(pool) for pool in DEFAULT_POOLS]
    with connections.redis_client(soak.redis.url) as client:
        ledger = RunLedger(client, soak.plans[0].run_id)
        ledger.wait(total, timeout=24 * 3600, on_progress=on_progress, queues=queues, stall_s=STALL_S, poll_s=0.5,
                    broker_patience_s=STALL_S)
        return ledger.account(total, queues)


def run_soak(settings: Settings, tasks: int, out: Path) -> SoakSummary:
    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    with RedisServer(out / "redis", appendonly=True) as redis_server:
        settings = settings.replace(broker_url=redis_server.url, queue_prefix="soak",
                                    visibility_timeout=VISIBILITY_TIMEOUT_S)
        soak = Soak(settings, redis_server, out, plans_for(tasks))
        total = sum(plan.total for plan in soak.plans)
        try:
            for pool in DEFAULT_POOLS:
                soak.start_worker(pool)
            soak.started = time.monotonic()
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console) as progress:
                sending = progress.add_task("sent", total=total)
                # Send from a thread while this one watches and breaks things, so the breakage can land
                # while sending too. Processes must be (re)started from this thread: their
                # parent-death signal fires when the *thread* that started them ends.
                sender = threading.Thread(target=send_all, args=(soak, progress, sending))
                sender.start()
                accounting = drain(soak, total, progress)
                sender.join()
            elapsed = time.monotonic() - soak.started
        finally:
            for worker in soak.workers.values():
                worker.stop(grace=30)
    summary: SoakSummary = {
        "sent": accounting.sent, "completed": accounting.completed, "failed": accounting.failed,
        "duplicated": accounting.duplicated, "queued": accounting.queued, "lost": accounting.lost,
        "elapsed_s": round(elapsed, 2), "tasks_per_s": round(total / elapsed, 1), "events": soak.events,
        "tasks_requested": tasks, "square_work": SQUARE_WORK, "visibility_timeout_s": VISIBILITY_TIMEOUT_S,
        "concurrency": {pool: settings.concurrency_for(pool) for pool in DEFAULT_POOLS},
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print_json(data={k: v for k, v in summary.items() if k != "events"})
    return summary
