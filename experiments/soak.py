"""`make soak`: many small mixed tasks through both pools while things break (a benchmark, not a test).

During the drain the prefork worker is SIGKILLed and restarted (at a quarter of the run) and
Redis is restarted from its AOF (at half). Every task is counted by id in the run ledger; the
summary says how many were sent, completed, failed, lost and duplicated, and how long it took.
Writes results/soak/summary.json. Usage: `python -m experiments.soak --tasks 100000`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from config import Settings
from producer.publish import SendPlan, publish
from producer.tracking import RunLedger, pending_in_broker
from stack.redis_server import RedisServer
from stack.workers import Worker
from tasks import connections
from tasks.app import make_app
from tasks.ledger import key

POOLS = ("threads", "prefork")
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
    events: list[dict[str, object]] = field(default_factory=list)

    def start_worker(self, pool: str) -> None:
        log = self.run_dir / f"worker-{pool}-{len(self.events)}.log"
        self.workers[pool] = Worker(self.settings, pool, self.settings.concurrency_for(pool), log).start(120)

    def ended(self) -> int:
        client = connections.client(self.redis.url)
        try:
            return sum(int(client.hlen(key(plan.run_id, "seen"))) for plan in self.plans)
        finally:
            client.close()

    def note(self, what: str, started: float) -> None:
        self.events.append({"at_s": round(time.monotonic() - started, 2), "event": what, "ended": self.ended()})


def plans_for(tasks: int) -> list[SendPlan]:
    """Half square, half sleep(0), each split over both pools."""
    per = max(1, tasks // 4)
    return [SendPlan("square", per, POOLS, work=SQUARE_WORK, chunk=2000),
            SendPlan("sleep", per, POOLS, seconds=0.0, chunk=2000)]


def send_all(soak: Soak, app: Celery, started: float, progress: Progress, bar: TaskID) -> None:
    try:
        for plan in soak.plans:
            publish(app, soak.settings, plan, lambda n: progress.update(bar, advance=n))
        soak.note("all sent", started)
    finally:
        app.close()


def drain(soak: Soak, total: int, started: float, progress: Progress) -> None:
    bar = progress.add_task("done", total=total)
    chaos = [(total // 4, kill_and_restart_prefork), (total // 2, restart_redis)]
    last_count, last_change = -1, time.monotonic()
    while True:
        count = soak.ended()
        progress.update(bar, completed=count)
        if chaos and count >= chaos[0][0]:
            chaos.pop(0)[1](soak, started)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        if count >= total or time.monotonic() - last_change > STALL_S:
            return
        time.sleep(0.5)


def kill_and_restart_prefork(soak: Soak, started: float) -> None:
    soak.workers["prefork"].kill()
    soak.note("prefork worker SIGKILLed", started)
    soak.start_worker("prefork")
    soak.note("prefork worker restarted", started)


def restart_redis(soak: Soak, started: float) -> None:
    soak.redis.restart()
    soak.note("redis restarted (AOF)", started)


def account(soak: Soak, elapsed: float) -> dict[str, object]:
    client = connections.client(soak.redis.url)
    try:
        sent = sum(plan.total for plan in soak.plans)
        completed = failed = duplicated = extra = 0
        for plan in soak.plans:
            ledger = RunLedger(client, plan.run_id)
            counts = ledger.counts()
            completed += counts.get("SUCCESS", 0)
            failed += sum(counts.values()) - counts.get("SUCCESS", 0)
            duplicated += ledger.duplicated()
            extra += sum(counts.values()) - int(client.hlen(key(plan.run_id, "seen")))
        queued = pending_in_broker(client, [soak.settings.queue_for(pool) for pool in POOLS])
        lost = max(0, sent - (completed + failed - extra) - queued)
    finally:
        client.close()
    return {"sent": sent, "completed": completed, "failed": failed, "lost": lost, "duplicated": duplicated,
            "queued": queued, "elapsed_s": round(elapsed, 2), "tasks_per_s": round(sent / elapsed, 1),
            "events": soak.events}


def run_soak(settings: Settings, tasks: int, out: Path) -> dict[str, object]:
    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    with RedisServer(out / "redis", appendonly=True) as redis_server:
        settings = settings.replace(broker_url=redis_server.url, queue_prefix="soak",
                                    visibility_timeout=VISIBILITY_TIMEOUT_S)
        soak = Soak(settings, redis_server, out, plans_for(tasks))
        try:
            for pool in POOLS:
                soak.start_worker(pool)
            app = make_app(settings)
            total = sum(plan.total for plan in soak.plans)
            started = time.monotonic()
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console) as progress:
                sending = progress.add_task("sent", total=total)
                # Send from a thread while this one watches and breaks things, so the breakage can land
                # while sending too. Processes must be (re)started from this thread: their
                # parent-death signal fires when the *thread* that started them ends.
                sender = threading.Thread(target=send_all, args=(soak, app, started, progress, sending))
                sender.start()
                drain(soak, total, started, progress)
                sender.join()
            summary = account(soak, time.monotonic() - started)
        finally:
            for worker in soak.workers.values():
                worker.stop(grace=30)
    summary.update(tasks_requested=tasks, square_work=SQUARE_WORK, visibility_timeout_s=VISIBILITY_TIMEOUT_S,
                   concurrency={pool: settings.concurrency_for(pool) for pool in POOLS})
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print_json(data={k: v for k, v in summary.items() if k != "events"})
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in all (half square, half sleep)")
    parser.add_argument("--out", type=Path, default=Path("results/soak"))
    args = parser.parse_args()
    if not 4 <= args.tasks <= 10_000_000:
        parser.error(f"--tasks must be between 4 and 10000000, got {args.tasks}")
    run_soak(Settings.from_env(), args.tasks, args.out)


if __name__ == "__main__":
    main()
