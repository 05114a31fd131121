"""What one task costs Redis, and how many tasks per second one Redis could therefore carry.

Commands per task come from `INFO commandstats` deltas around a repetition. The
lab's own commands (the ledger's record and reads: tasks.ledger.COMMANDS, and this
module's INFO) are counted apart, so the ceiling is about Celery's traffic. The server's
ops/s come from `redis-benchmark` when it is installed (50 clients, no
pipelining, like Celery's round trips); otherwise from a pipelined redis-py
loop, which is an upper bound and says so.
"""

from __future__ import annotations

import csv
import io
import shutil
import statistics
import subprocess
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import redis

from tasks import ledger, transport

# Commands only the lab's harness sends: the ledger's (its record in the worker, the runner's polls and
# reads) and this module's INFO. By name alone a command the consumer's take sends too (EVALSHA, HSET:
# tasks.transport.TAKE_COMMANDS) cannot be told apart, so those count as Celery's: its figure errs high,
# and the ceiling computed from it low.
HARNESS_COMMANDS = (ledger.COMMANDS - transport.TAKE_COMMANDS) | {"info"}
BENCH_TESTS = "set,get,lpush,rpop,hset,zadd"


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command name since the server started (`cmdstat_get` -> `get`)."""
    stats: Mapping[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def server_cpu_seconds(client: redis.Redis) -> float:
    """User + system CPU the server's main process has used (`INFO cpu`): its cost per task is a delta of this."""
    cpu: Mapping[str, Any] = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    changed = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return {name: calls for name, calls in changed.items() if calls > 0}


def per_task(calls: Mapping[str, int], tasks: int) -> dict[str, float]:
    """Celery's and the harness's commands per task, from one delta."""
    celery = sum(n for name, n in calls.items() if name not in HARNESS_COMMANDS)
    harness = sum(n for name, n in calls.items() if name in HARNESS_COMMANDS)
    if tasks <= 0:
        return {"celery": float("nan"), "harness": float("nan")}
    return {"celery": celery / tasks, "harness": harness / tasks}


def server_ops_per_s(url: str, requests: int = 20_000, clients: int = 50) -> dict[str, Any]:
    """The server's ops/s: redis-benchmark if installed, else a pipelined redis-py loop."""
    if shutil.which("redis-benchmark"):
        return _redis_benchmark(url, requests, clients)
    return _pipelined_loop(url)


def _redis_benchmark(url: str, requests: int, clients: int) -> dict[str, Any]:
    parts = urlsplit(url)
    command = ["redis-benchmark", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379),
               "-c", str(clients), "-n", str(requests), "-P", "1", "-t", BENCH_TESTS, "--csv"]  # fmt: skip
    if parts.password:
        command[1:1] = ["-a", parts.password]  # the server is private to this run and loopback-only
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [row for row in csv.reader(io.StringIO(out)) if row and row[0] != "test"]
    per_test = {row[0].split()[0].lower(): float(row[1]) for row in rows}
    return {
        "method": f"redis-benchmark -c {clients} -n {requests} -P 1 -t {BENCH_TESTS}",
        "ops_per_s": statistics.median(per_test.values()),
        "per_command": per_test,
    }


def _pipelined_loop(url: str, seconds: float = 1.5, batch: int = 200) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    key = "lab:bench:ops"
    done = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            pipe = client.pipeline(transaction=False)
            for i in range(batch // 2):
                pipe.lpush(key, i)
                pipe.rpop(key)
            pipe.execute()
            done += batch
        elapsed = time.monotonic() - started
        client.delete(key)
    finally:
        client.close()
    return {"method": f"redis-py pipelined LPUSH/RPOP, {batch} per round trip (an upper bound)",
            "ops_per_s": done / elapsed, "per_command": {}}


def ceiling(ops_per_s: float, commands_per_task: float) -> float:
    """Tasks per second one server could carry if it did nothing but this traffic."""
    return ops_per_s / commands_per_task if commands_per_task > 0 else float("nan")
