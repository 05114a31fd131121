"""The latency server: answers each request after the delay it asks for, to thousands at once.

The protocol is in `tasks/latency.py` (one ASCII line each way: `<ms>` -> `ok` after that
long; `stats` -> one line of JSON; anything else -> `error <reason>` and the connection is
closed). Run it with `lab latency-server [--host H] [--port P]`.

Why it looks like this: it must never be the bottleneck of the experiment it serves, so it
is one asyncio process with a `Protocol` (no coroutine or task per request, only a
`call_later` timer: 25-35 µs of CPU per request from 5,000 requests/s up, 63-68 µs at 1,000/s
where each request is a wake-up of its own; 35,000 requests/s took 97 % of one core, its
ceiling; benchmarks/latency_server.py) whose own CPU time is in every `stats` answer, so a run
can show it stayed small. Thousands of
connections need thousands of descriptors, so the soft RLIMIT_NOFILE is raised to the hard
limit at start, and the listen backlog asks for the maximum (the kernel caps it at
net.core.somaxconn, 4096 here), so a burst of 5,000 connects is not dropped. Timers fire at
or after their deadline, never before (asyncio rounds epoll timeouts up to whole ms), so an
answer never comes early; it comes 0.3-0.6 ms late (p50) to a lone client, about 1 ms at
1,000-5,000 connections in steady load.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import resource
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from config.errors import UserError
from stack.processes import ChildProcess
from stack.redis_server import free_port
from stack.workers import LAB_COMMAND
from tasks import latency
from tasks.latency import ERROR_PREFIX, MAX_LINE, NEWLINE, OK_REPLY, parse_request

LISTEN_BACKLOG = 65535
MAX_PENDING_PER_CONNECTION = 1024
STATS = object()
UNLIMITED_NOFILE_TARGET = 1_048_576  # fs.nr_open's default, the most an unlimited hard limit allows


@dataclass
class Counters:
    """What `stats` reports besides CPU time."""

    requests: int = 0
    errors: int = 0
    accepted: int = 0
    connections: int = 0
    peak_connections: int = 0

    def report(self) -> bytes:
        """`cpu_seconds` is the scheduler's own count (CLOCK_PROCESS_CPUTIME_ID): getrusage and
        /proc sample it in 4 ms ticks on this kernel (CONFIG_TICK_CPU_ACCOUNTING)."""
        body = {"pid": os.getpid(), "cpu_seconds": time.process_time(), **asdict(self)}
        return json.dumps(body).encode("ascii")


class DelayProtocol(asyncio.Protocol):
    """One connection: requests are answered in order, each after its own delay."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.buffer = b""
        self.pending: collections.deque[float | object] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.counters.accepted += 1
        self.counters.connections += 1
        self.counters.peak_connections = max(self.counters.peak_connections, self.counters.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self.counters.connections -= 1
        if self.timer is not None:
            self.timer.cancel()
        self.pending.clear()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and NEWLINE in self.buffer:
            line, _, self.buffer = self.buffer.partition(NEWLINE)
            self.accept_line(line)
        if self.transport is not None and len(self.buffer) > MAX_LINE:
            self.refuse(f"line longer than {MAX_LINE} bytes")

    def accept_line(self, line: bytes) -> None:
        try:
            delay_ms = parse_request(line)
        except (TypeError, ValueError) as exc:
            self.refuse(str(exc))
            return
        if len(self.pending) >= MAX_PENDING_PER_CONNECTION:
            self.refuse(f"more than {MAX_PENDING_PER_CONNECTION} requests waiting on one connection")
            return
        self.pending.append(STATS if delay_ms is None else delay_ms / 1000)
        if self.timer is None:
            self.next_request()

    def next_request(self) -> None:
        """Start the oldest waiting request: answer `stats` now, a delay when it is due."""
        while self.pending and self.transport is not None:
            item = self.pending.popleft()
            if item is STATS:
                self.transport.write(self.counters.report() + NEWLINE)
                continue
            assert isinstance(item, float)
            self.timer = asyncio.get_running_loop().call_later(item, self.answer)
            return
        self.timer = None

    def answer(self) -> None:
        if self.transport is None:
            return
        self.transport.write(OK_REPLY + NEWLINE)
        self.counters.requests += 1
        self.next_request()

    def refuse(self, reason: str) -> None:
        """One error line, then close: a confused client must not get answers it cannot match."""
        assert self.transport is not None
        self.counters.errors += 1
        self.transport.write(ERROR_PREFIX + b" " + reason.encode("ascii", "replace") + NEWLINE)
        self.transport.close()
        self.transport = None
        self.pending.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (each connection is a descriptor); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, UNLIMITED_NOFILE_TARGET)
    if target <= soft:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


async def serve(host: str, port: int, ready: asyncio.Event | None = None) -> None:
    """Listen until SIGTERM or SIGINT; then close the listener and every connection."""
    loop = asyncio.get_running_loop()
    counters = Counters()
    server = await loop.create_server(lambda: DelayProtocol(counters), host, port,
                                      backlog=LISTEN_BACKLOG, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()
    print(f"latency-server: listening on {bound[0]}:{bound[1]} (pid {os.getpid()})", flush=True)
    if ready is not None:
        ready.set()
    async with server:
        await stop.wait()
    print(f"latency-server: stopped; {counters.report().decode()}", flush=True)


@dataclass
class LatencyServer(ChildProcess):
    """The server as a child process (like `RedisServer`): `start()` returns once it answers."""

    log_path: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def command(self) -> list[str]:
        return [*LAB_COMMAND, "latency-server", "--host", self.host, "--port", str(self.port)]

    def start(self, timeout: float = 15.0) -> LatencyServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.launch(self.command(), os.environ, self.log_path, self.responds, timeout,
                    f"latency server on port {self.port}")
        return self

    def responds(self) -> bool:
        """Our process answers: another server already on the port must not pass for ours."""
        try:
            answered_by = self.stats(timeout=1.0)["pid"]
        except OSError:
            return False
        return self.process is not None and answered_by == self.process.pid

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        return latency.stats(self.host, self.port, timeout)



class ListenError(UserError):
    """The server cannot listen where it was asked to (the port is taken, the address is not ours)."""


def run(host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT (`lab latency-server`); ListenError if the address cannot be had."""
    raise_open_files_limit()
    try:
        asyncio.run(serve(host, port))
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
