"""Is the latency server ever the bottleneck? Its rate, CPU per request and added latency, measured.

    .venv/bin/python -m benchmarks.latency_server [--repetitions 3] [--json FILE]

1. Client cost: sequential `tasks.latency.request(io_ms=0)`, kept-alive vs a connection per
   request (the choice `tasks/latency.py` documents); and the added latency of one client
   asking for 10 ms at a time (the server's timer overshoot with nothing else queued).
2. Load: C connections (C = 1,000 and 5,000) in a closed loop (each sends its next request as
   soon as the previous answer came), from two generator processes, for io_ms = 1,000 and 100.
   Each connection's first request is at a random moment within the first io_ms: started all
   at once, they stay in lockstep, and 1,000 timers due together are answered one after another
   (25 µs each), which showed as 8-15 ms of "added latency" that steady load does not have.
   Per cell: requests/s the server answered in the window (its own counter) beside the ideal
   C / io_s, the server's CPU per request and its share of one core (the scheduler's count, from
   `stats`), the generators' CPU (if they are at 100 % of a core, they are the limit, not the
   server), how long each waited for a core that another process had (/proc/PID/schedstat: on
   a shared 2-core machine that, not the server's own work, is what delays answers), and the
   added latency (observed - io_ms) p50/p99.
Each figure is the median of the repetitions with their range.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import multiprocessing
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.stats import Spread
from stack.latency_server import LatencyServer, raise_open_files_limit
from tasks import latency

GENERATORS = 2
CONNECT_S = 4.0
WARMUP_S = 2.0
WINDOW_S = 5.0
CELLS = ((1_000, 1_000.0), (1_000, 100.0), (5_000, 1_000.0), (5_000, 100.0))
CLIENT_REQUESTS = 2_000
UNLOADED_IO_MS = 10.0
UNLOADED_REQUESTS = 300


@dataclass
class Window:
    """Monotonic times shared by every process (CLOCK_MONOTONIC is system-wide)."""

    start: float
    measure_from: float
    measure_until: float
    stop: float


class LoopClient(asyncio.Protocol):
    """One connection: request, wait for `ok`, request again, until the window closes."""

    def __init__(self, request: bytes, io_s: float, window: Window, added: list[float], done: asyncio.Future[None]):
        self.request, self.io_s, self.window, self.added, self.done = request, io_s, window, added, done
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.monotonic()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.window.measure_from <= now <= self.window.measure_until:
            self.added.append(now - self.sent_at - self.io_s)
        if now < self.window.stop:
            self.send()
        elif not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def generate(host: str, port: int, connections: int, io_ms: float,
                   window: Window) -> tuple[list[float], float, float]:
    """Run the connections; the added latencies in the window, this process's CPU and run-queue wait in it.

    `loop.call_at` uses loop.time(), which is time.monotonic(), the clock the window is in.
    """
    loop = asyncio.get_running_loop()
    added: list[float] = []
    request = latency.encode_request(io_ms)
    clients: list[LoopClient] = []
    for _ in range(connections):
        factory = functools.partial(LoopClient, request, io_ms / 1000, window, added, loop.create_future())
        _, client = await loop.create_connection(factory, host, port)
        clients.append(client)
    cpu: list[tuple[float, float]] = []
    for moment in (window.measure_from, window.measure_until):
        loop.call_at(moment, lambda: cpu.append((time.process_time(), runqueue_wait_s(os.getpid()))))
    spread_out = random.Random(connections)
    for client in clients:
        loop.call_at(window.start + spread_out.uniform(0, io_ms / 1000), client.send)
    await asyncio.gather(*(client.done for client in clients))
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    return added, cpu[1][0] - cpu[0][0], cpu[1][1] - cpu[0][1]


def generator_process(host: str, port: int, connections: int, io_ms: float, window: Window,
                      results: multiprocessing.Queue[tuple[list[float], float, float]]) -> None:
    raise_open_files_limit()
    results.put(asyncio.run(generate(host, port, connections, io_ms, window)))


def runqueue_wait_s(pid: int) -> float:
    """Time the process's main thread was runnable but not running (another task had the core)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def load_cell(server: LatencyServer, connections: int, io_ms: float) -> dict[str, float]:
    now = time.monotonic()
    window = Window(now + CONNECT_S, now + CONNECT_S + WARMUP_S, now + CONNECT_S + WARMUP_S + WINDOW_S,
                    now + CONNECT_S + WARMUP_S + WINDOW_S + 0.5)
    results: multiprocessing.Queue[tuple[list[float], float, float]] = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=generator_process,
                                     args=(*server.address, connections // GENERATORS, io_ms, window, results))
             for _ in range(GENERATORS)]  # fmt: skip
    for proc in procs:
        proc.start()
    assert server.process is not None
    sleep_until(window.measure_from)
    before, waited_before = server.stats(), runqueue_wait_s(server.process.pid)
    sleep_until(window.measure_until)
    after, waited_after = server.stats(), runqueue_wait_s(server.process.pid)
    collected = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    added = sorted(x for samples, _, _ in collected for x in samples)
    served = after["requests"] - before["requests"]
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    return {
        "requests_per_s": served / WINDOW_S,
        "ideal_per_s": connections / (io_ms / 1000),
        "server_cpu_us_per_request": cpu / served * 1e6 if served else float("nan"),
        "server_cpu_share": cpu / WINDOW_S,
        "server_waited_for_cpu_share": (waited_after - waited_before) / WINDOW_S,
        "generators_cpu_share": max(c for _, c, _ in collected) / WINDOW_S,
        "generators_waited_for_cpu_share": max(w for _, _, w in collected) / WINDOW_S,
        "added_p50_ms": added[len(added) // 2] * 1000,
        "added_p99_ms": added[int(len(added) * 0.99)] * 1000,
        "peak_connections": after["peak_connections"],
    }


def client_cost_us(server: LatencyServer, fresh: bool) -> float:
    latency.close_connection()
    latency.request(*server.address, 0, fresh=fresh)
    started = time.perf_counter()
    for _ in range(CLIENT_REQUESTS):
        latency.request(*server.address, 0, fresh=fresh)
    latency.close_connection()
    return (time.perf_counter() - started) / CLIENT_REQUESTS * 1e6


def unloaded_added_ms(server: LatencyServer) -> dict[str, float]:
    """One client, one request at a time: the server's timer overshoot with nothing else queued."""
    latency.request(*server.address, 0)
    added = sorted(latency.request(*server.address, UNLOADED_IO_MS) - UNLOADED_IO_MS / 1000
                   for _ in range(UNLOADED_REQUESTS))  # fmt: skip
    latency.close_connection()
    return {"added_p50_ms": added[len(added) // 2] * 1000, "added_p99_ms": added[int(len(added) * 0.99)] * 1000}


def spread(values: list[float]) -> dict[str, float]:
    """A Spread (experiments.stats) as the JSON this benchmark writes: median, low, high, runs."""
    return dataclasses.asdict(Spread.of(values))


def repeat(measure: Callable[[], dict[str, float]], repetitions: int) -> dict[str, dict[str, float]]:
    runs = [measure() for _ in range(repetitions)]
    return {key: spread([run[key] for run in runs]) for key in runs[0]}


def show(value: dict[str, float], fmt: str) -> str:
    return f"{value['median']:{fmt}} ({value['low']:{fmt}}-{value['high']:{fmt}})"


def print_report(result: dict[str, Any]) -> None:
    cost = result["client_us"]
    print(f"\nclient, io_ms=0, sequential: kept-alive {show(cost['kept_alive'], '.0f')} us/request, "
          f"connect per request {show(cost['fresh'], '.0f')} us/request")
    alone = result["unloaded"]
    print(f"one client, io_ms={UNLOADED_IO_MS:.0f}, one request at a time: "
          f"added p50 {show(alone['added_p50_ms'], '.2f')} ms, p99 {show(alone['added_p99_ms'], '.2f')} ms; "
          f"load average at the end {result['load_average']}")
    print("\n| connections | io_ms | requests/s | ideal/s | server CPU us/request | server CPU (of one core) "
          "| server waited for a core | generators CPU (busiest) | generators waited | added p50 ms | added p99 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cell in result["cells"]:
        m = cell["measures"]
        print(f"| {cell['connections']:,} | {cell['io_ms']:.0f} | {show(m['requests_per_s'], ',.0f')} "
              f"| {m['ideal_per_s']['median']:,.0f} | {show(m['server_cpu_us_per_request'], '.1f')} "
              f"| {show(m['server_cpu_share'], '.0%')} | {show(m['server_waited_for_cpu_share'], '.0%')} "
              f"| {show(m['generators_cpu_share'], '.0%')} | {show(m['generators_waited_for_cpu_share'], '.0%')} "
              f"| {show(m['added_p50_ms'], '.2f')} | {show(m['added_p99_ms'], '.2f')} |")


def run(repetitions: int) -> dict[str, Any]:
    raise_open_files_limit()
    with tempfile.TemporaryDirectory() as tmp, LatencyServer(Path(tmp) / "latency.log") as server:
        client_us = {name: spread([client_cost_us(server, fresh) for _ in range(repetitions)])
                     for name, fresh in (("kept_alive", False), ("fresh", True))}  # fmt: skip
        unloaded = repeat(functools.partial(unloaded_added_ms, server), repetitions)
        cells = [{"connections": c, "io_ms": io,
                  "measures": repeat(functools.partial(load_cell, server, c, io), repetitions)}
                 for c, io in CELLS]  # fmt: skip
    return {"repetitions": repetitions, "load_average": os.getloadavg(), "client_us": client_us,
            "unloaded": unloaded, "cells": cells,
            "connect_s": CONNECT_S, "warmup_s": WARMUP_S, "window_s": WINDOW_S}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = run(args.repetitions)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
