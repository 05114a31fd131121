"""The latency server as a process: answers after the delay, refuses bad input, counts, scales."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.latency_server import LatencyServer, raise_open_files_limit
from tasks import latency

CONCURRENT = 5_000
BATCH_IO_MS = 2_000  # longer than connecting 5,000 takes even on a busy machine, so all overlap


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LatencyServer]:
    with LatencyServer(tmp_path / "latency.log") as running:
        yield running


def exchange(server: LatencyServer, payload: bytes, answers: int = 1) -> list[bytes]:
    """Send raw bytes; read until `answers` lines came or the server closed the connection."""
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(payload)
        received = b""
        while received.count(b"\n") < answers:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
        return received.splitlines()


def closed_by_server(server: LatencyServer, payload: bytes) -> bool:
    """True once the server closed the connection (a recv timeout raises instead)."""
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(payload)
        while sock.recv(4096):
            continue
        return True


def test_answers_no_earlier_than_the_requested_delay(server: LatencyServer) -> None:
    for io_ms in (0, 1, 50, 200):
        observed = latency.request(*server.address, io_ms)
        assert observed >= io_ms / 1000


@pytest.mark.parametrize("payload", [
    b"abc\n", b"-1\n", b"nan\n", b"inf\n", b"1e9\n", b"\xff\xfe\n", b"1 2\n", b"x" * 100,
])  # fmt: skip
def test_bad_request_gets_one_error_line_and_the_connection_closed(server: LatencyServer, payload: bytes) -> None:
    lines = exchange(server, payload)
    assert len(lines) == 1 and lines[0].startswith(b"error "), lines
    assert closed_by_server(server, payload)
    assert server.stats()["errors"] == 2
    assert latency.request(*server.address, 0) >= 0  # still serving


def test_requests_on_one_connection_are_answered_in_order(server: LatencyServer) -> None:
    started = time.perf_counter()
    lines = exchange(server, b"300\n0\nstats\n", answers=3)
    elapsed = time.perf_counter() - started
    assert lines[:2] == [b"ok", b"ok"] and lines[2].startswith(b"{")
    assert elapsed >= 0.3


def test_stats_count_requests_connections_and_cpu(server: LatencyServer) -> None:
    before = server.stats()
    for _ in range(5):
        latency.request(*server.address, 0, fresh=True)
    after = server.stats()
    assert after["requests"] - before["requests"] == 5
    assert after["accepted"] - before["accepted"] == 6  # five requests and this stats call
    assert after["connections"] == 1  # only the stats call's own
    assert after["peak_connections"] >= 1
    assert after["cpu_seconds"] > 0 and after["pid"] == server.process.pid  # type: ignore[union-attr]
    assert server.cpu_seconds() >= after["cpu_seconds"] - 0.05  # /proc counts in 10 ms ticks


def test_start_fails_fast_when_the_port_is_taken(server: LatencyServer, tmp_path: Path) -> None:
    clash = LatencyServer(tmp_path / "clash.log", port=server.port)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with code 2"):
        clash.start(timeout=30)
    assert time.monotonic() - started < 15
    assert "cannot listen on" in (tmp_path / "clash.log").read_text()


@pytest.mark.parametrize("args", [["--port", "abc"], ["--port", "70000"], ["--bogus"]])
def test_bad_arguments_are_one_line_and_exit_2(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "cli", "latency-server", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("lab: error:")
    assert "Traceback" not in done.stderr


async def one_request(host: str, port: int, io_ms: int) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(latency.encode_request(io_ms))
    reply = await reader.readline()
    observed = time.perf_counter() - started
    writer.close()
    await writer.wait_closed()
    assert reply == b"ok\n", reply
    return observed


async def many_requests(host: str, port: int, count: int, io_ms: int) -> list[float]:
    return await asyncio.gather(*(one_request(host, port, io_ms) for _ in range(count)))


@pytest.mark.slow
def test_five_thousand_concurrent_connections_all_answered_and_overlapping(server: LatencyServer) -> None:
    assert raise_open_files_limit() > CONCURRENT + 100, "this test needs 5,100 descriptors"
    started = time.perf_counter()
    observed = asyncio.run(many_requests(*server.address, CONCURRENT, BATCH_IO_MS))
    elapsed = time.perf_counter() - started
    assert len(observed) == CONCURRENT
    assert min(observed) >= BATCH_IO_MS / 1000
    serial_s = CONCURRENT * BATCH_IO_MS / 1000
    assert elapsed < serial_s / 50, f"{elapsed:.1f} s for a batch that would take {serial_s:.0f} s one by one"
    stats = server.stats()
    assert stats["requests"] == CONCURRENT
    assert stats["peak_connections"] >= CONCURRENT * 0.9, stats  # they were open at the same time
    assert stats["errors"] == 0
