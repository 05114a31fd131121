"""Is the delaying relay precise, and is it ever what limits throughput? Measured against a real Redis.

    .venv/bin/python -m benchmarks.relay [--repetitions 3] [--pings 2000] [--json FILE]

1. Calibration (`stack.relay.calibrate`, a lean RESP client) at RTT 0.5, 2 and 10 ms: the ADDED RTT
   (relayed minus direct back-to-back PING medians) and its p99, the error against the set RTT, the error
   against the idle-matched direct baseline (see `calibrate`), the relay's own release lateness
   and its CPU per PING.
2. Throughput at RTT 0 (a plain relay: the relay's own cost), direct beside relayed: sequential
   PINGs, pipelined SET/GET of 100 B values, 8 MB values, and PINGs from four client processes
   at once; with the relay's CPU per command (its own scheduler count, from its stats line).
Each figure is the median of the repetitions with their range.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from experiments.stats import Spread
from stack.redis_server import RedisServer
from stack.relay import DelayRelay, calibrate, netem_available

CALIBRATION_RTTS_MS = (0.5, 2.0, 10.0)
SEQUENTIAL_PINGS = 5_000
PIPELINE_COMMANDS = 20_000
PIPELINE_BATCH = 1_000
SMALL_VALUE = b"x" * 100
BIG_VALUE_MB = 8
BIG_VALUES = 4
CLIENT_PROCESSES = 4
CONCURRENT_S = 3.0


def spread(values: list[float]) -> dict[str, float]:
    """A Spread (experiments.stats) as the JSON this benchmark writes: median, low, high, runs."""
    return dataclasses.asdict(Spread.of(values))


def show(value: dict[str, float], fmt: str) -> str:
    return f"{value['median']:{fmt}} ({value['low']:{fmt}} to {value['high']:{fmt}})"


def calibration_row(server: RedisServer, rtt_ms: float, pings: int, repetitions: int, log: Path) -> dict[str, Any]:
    with DelayRelay.for_url(server.url, rtt_ms, log) as relay:
        runs = [calibrate(relay.url_through(server.url), server.url, rtt_ms, pings, relay) for _ in range(repetitions)]
    numbers = ("added_median_ms", "added_p99_ms", "error_ms", "error_vs_idle_ms", "direct_median_ms",
               "direct_idle_median_ms", "relay_cpu_us_per_ping")  # fmt: skip
    row: dict[str, Any] = {key: spread([run[key] for run in runs]) for key in numbers}
    row["late_p50_us"] = spread([run["relay_late_us"]["p50"] for run in runs])
    row["late_p99_us"] = spread([run["relay_late_us"]["p99"] for run in runs])
    row["passed"] = sum(run["passed"] for run in runs)
    row["passed_idle_matched"] = sum(run["passed_idle_matched"] for run in runs)
    row.update(rtt_ms=rtt_ms, repetitions=repetitions, pings=pings, tolerance_ms=runs[0]["tolerance_ms"])
    return row


def sequential_pings(client: redis.Redis) -> int:
    for _ in range(SEQUENTIAL_PINGS):
        client.ping()
    return SEQUENTIAL_PINGS


def pipelined_small(client: redis.Redis) -> int:
    for start in range(0, PIPELINE_COMMANDS // 2, PIPELINE_BATCH):
        pipe = client.pipeline(transaction=False)
        for index in range(start, start + PIPELINE_BATCH):
            pipe.set(f"relay-bench:{index}", SMALL_VALUE)
            pipe.get(f"relay-bench:{index}")
        pipe.execute()
    return PIPELINE_COMMANDS


def big_values(client: redis.Redis) -> int:
    value = os.urandom(BIG_VALUE_MB * 2**20)
    for index in range(BIG_VALUES):
        client.set(f"relay-bench:big:{index}", value)
        assert client.get(f"relay-bench:big:{index}") == value
    return 2 * BIG_VALUES


def ping_until(url: str, deadline: float, counts: multiprocessing.Queue[int]) -> None:
    client = redis.Redis.from_url(url)
    done = 0
    while time.monotonic() < deadline:
        client.ping()
        done += 1
    client.close()
    counts.put(done)


def concurrent_pings(url: str) -> int:
    counts: multiprocessing.Queue[int] = multiprocessing.Queue()
    deadline = time.monotonic() + CONCURRENT_S + 0.5
    procs = [multiprocessing.Process(target=ping_until, args=(url, deadline, counts)) for _ in range(CLIENT_PROCESSES)]
    for proc in procs:
        proc.start()
    total = sum(counts.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(30)
    return total


WORKLOADS: dict[str, tuple[str, Callable[[redis.Redis], int]]] = {
    "sequential PING": ("commands/s", sequential_pings),
    f"pipelined SET+GET 100 B (batches of {PIPELINE_BATCH})": ("commands/s", pipelined_small),
    f"SET+GET {BIG_VALUE_MB} MB values": ("MB/s", big_values),
}


def timed(run: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    count = run()
    return count, time.perf_counter() - started


def throughput_row(server: RedisServer, relay: DelayRelay, name: str, unit: str,
                   workload: Callable[[redis.Redis], int], repetitions: int) -> dict[str, Any]:
    direct, relayed = redis.Redis.from_url(server.url), redis.Redis.from_url(relay.url_through(server.url))
    scale = BIG_VALUE_MB if unit == "MB/s" else 1
    rates: dict[str, list[float]] = {"direct": [], "relayed": []}
    cpu_per_command: list[float] = []
    for _ in range(repetitions):
        count, seconds = timed(lambda: workload(direct))
        rates["direct"].append(count * scale / seconds)
        cpu_before = relay.release_stats()["cpu_seconds"]
        count, seconds = timed(lambda: workload(relayed))
        cpu_per_command.append((relay.release_stats()["cpu_seconds"] - cpu_before) / count * 1e6)
        rates["relayed"].append(count * scale / seconds)
    direct.close()
    relayed.close()
    return {"workload": name, "unit": unit, "direct": spread(rates["direct"]), "relayed": spread(rates["relayed"]),
            "relay_cpu_us_per_command": spread(cpu_per_command)}


def concurrent_row(server: RedisServer, relay: DelayRelay, repetitions: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"direct": [], "relayed": []}
    cpu_share: list[float] = []
    for _ in range(repetitions):
        rates["direct"].append(concurrent_pings(server.url) / CONCURRENT_S)
        cpu_before = relay.release_stats()["cpu_seconds"]
        rates["relayed"].append(concurrent_pings(relay.url_through(server.url)) / CONCURRENT_S)
        cpu_share.append((relay.release_stats()["cpu_seconds"] - cpu_before) / CONCURRENT_S)
    cpu_us = [share / rate * 1e6 for share, rate in zip(cpu_share, rates["relayed"], strict=True)]
    return {"workload": f"PING from {CLIENT_PROCESSES} processes at once", "unit": "commands/s",
            "direct": spread(rates["direct"]), "relayed": spread(rates["relayed"]),
            "relay_cpu_us_per_command": spread(cpu_us), "relay_cpu_share": spread(cpu_share)}


def print_report(result: dict[str, Any]) -> None:
    print(f"\nnetem in this kernel: {result['netem_available']}; load average at the end: {result['load_average']}")
    print("\n| set RTT ms | added RTT median ms | added RTT p99 ms | error (back to back) us "
          "| error vs idle-matched us | passed (back to back / idle-matched) | relay late p50 / p99 us "
          "| relay CPU us/PING |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|")
    for row in result["calibration"]:
        us = {key: {k: v * 1000 for k, v in row[key].items()} for key in ("error_ms", "error_vs_idle_ms")}
        print(f"| {row['rtt_ms']} | {show(row['added_median_ms'], '.3f')} | {show(row['added_p99_ms'], '.2f')} "
              f"| {show(us['error_ms'], '+.0f')} | {show(us['error_vs_idle_ms'], '+.0f')} "
              f"| {row['passed']}/{row['repetitions']} / {row['passed_idle_matched']}/{row['repetitions']} "
              f"| {row['late_p50_us']['median']:.1f} / {row['late_p99_us']['median']:.0f} "
              f"| {show(row['relay_cpu_us_per_ping'], '.0f')} |")
    print("\n| RTT 0 workload | unit | direct | relayed | relay CPU us/command |")
    print("|---|---|---:|---:|---:|")
    for row in result["throughput"]:
        print(f"| {row['workload']} | {row['unit']} | {show(row['direct'], ',.0f')} | {show(row['relayed'], ',.0f')} "
              f"| {show(row['relay_cpu_us_per_command'], '.1f')} |")


def run(repetitions: int, pings: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis", appendonly=False) as server:
        calibration = [calibration_row(server, rtt, pings, repetitions, Path(tmp) / f"relay-{rtt}.log")
                       for rtt in CALIBRATION_RTTS_MS]  # fmt: skip
        with DelayRelay.for_url(server.url, 0.0, Path(tmp) / "relay-0.log") as relay:
            throughput = [throughput_row(server, relay, name, unit, workload, repetitions)
                          for name, (unit, workload) in WORKLOADS.items()]  # fmt: skip
            throughput.append(concurrent_row(server, relay, repetitions))
    return {"netem_available": netem_available(), "repetitions": repetitions, "pings": pings,
            "load_average": os.getloadavg(), "calibration": calibration, "throughput": throughput}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = run(args.repetitions, args.pings)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
