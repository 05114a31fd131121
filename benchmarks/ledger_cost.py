"""What the run ledger costs a worker per task: CPU in the worker and Redis commands, measured.

The ledger's handlers run on every task (`task_prerun` / `task_postrun`), so their cost is part
of every measured throughput: on `noop`, Celery's own per-task work is ~1-2 ms and the harness
overhead goal is <= 5 %. This sends the real signals to the real handlers against a real Redis
(the lab's embedded server), `--tasks` per repetition, and prints per task: the calling thread's
CPU time (what the worker pays), the wall time, and Redis commands (INFO commandstats delta), each
as the median of the repetitions with its range; beside them the floor a write could reach: one
Redis round trip (median PING wall time) and 1 command.

    .venv/bin/python benchmarks/ledger_cost.py [--tasks 5000] [--repetitions 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import redis
from celery import signals

from config import Settings
from experiments.stats import Spread
from stack.redis_server import RedisServer
from tasks import ledger
from tasks.connections import client_app, redis_client


def fake_task(run_id: str) -> SimpleNamespace:
    request = SimpleNamespace(hostname="threads@bench", lab_run=run_id, lab_timing=True, lab_sent=time.time())
    return SimpleNamespace(request=request, name="tasks.noop")


def one_repetition(client: redis.Redis, tasks: int) -> tuple[float, float, float]:
    run_id = uuid.uuid4().hex[:12]
    task = fake_task(run_id)
    before = sum(int(v["calls"]) for v in client.info("commandstats").values())
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in range(tasks):
        task_id = str(uuid.uuid4())
        signals.task_prerun.send(sender=None, task_id=task_id, task=task, args=(), kwargs={})
        signals.task_postrun.send(sender=None, task_id=task_id, task=task, args=(), kwargs={}, retval=None,
                                  state="SUCCESS")
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    after = sum(int(v["calls"]) for v in client.info("commandstats").values())
    return cpu / tasks, wall / tasks, (after - before - 1) / tasks  # the INFO call itself counts once


def ping_rtt(client: redis.Redis, count: int = 2000) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        client.ping()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repetitions", type=int, default=7)
    args = parser.parse_args()
    with (tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server,
          client_app(Settings(broker_url=server.url)) as app, redis_client(server.url) as client):
        ledger.install(app)
        one_repetition(client, 200)  # warm: connection, script cache
        runs = [one_repetition(client, args.tasks) for _ in range(args.repetitions)]
        rtt = ping_rtt(client)
    cpu, wall, commands = (Spread.of(list(column)) for column in zip(*runs, strict=True))
    print(f"ledger cost per task, {args.tasks} tasks x {args.repetitions} repetitions (median, range):")
    print(f"  worker thread CPU  {_us(cpu)}")
    print(f"  wall time          {_us(wall)}   floor: one round trip = {rtt * 1e6:.1f} us (PING)")
    print(f"  Redis commands     {commands.median:8.2f}  (a script's inner commands count too; one EVALSHA)")


def _us(spread: Spread) -> str:
    return f"{spread.median * 1e6:8.1f} us (range {spread.low * 1e6:.1f}-{spread.high * 1e6:.1f})"


if __name__ == "__main__":
    main()
