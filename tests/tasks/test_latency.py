"""The blocking latency client: what it measures, when it reconnects, and that green pools see I/O."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stack.latency_server import LatencyServer
from stack.redis_server import free_port
from tasks import latency

GREEN_REQUESTS = 50
GREEN_IO_MS = 200

GREEN_SCRIPT = """
import json, sys, time
kind, host, port, count, io_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
if kind == "gevent":
    from gevent import monkey; monkey.patch_all()
    import gevent
    spawn, join = gevent.spawn, lambda jobs: [job.get() for job in jobs]
else:
    import eventlet; eventlet.monkey_patch()
    spawn, join = eventlet.spawn, lambda jobs: [job.wait() for job in jobs]
from tasks import latency
started = time.perf_counter()
observed = join([spawn(latency.request, host, port, io_ms) for _ in range(count)])
print(json.dumps({"elapsed": time.perf_counter() - started, "observed": observed}))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LatencyServer]:
    with LatencyServer(tmp_path_factory.mktemp("latency") / "server.log") as running:
        yield running


@pytest.fixture(autouse=True)
def no_kept_connection() -> Iterator[None]:
    latency.close_connection()
    yield
    latency.close_connection()


def accepted(server: LatencyServer) -> int:
    """Connections the server accepted so far (this stats call's own is counted, then closed)."""
    return int(server.stats()["accepted"])


@given(st.floats(min_value=0, max_value=latency.MAX_IO_MS))
def test_every_valid_delay_round_trips_through_the_protocol(io_ms: float) -> None:
    assert latency.parse_request(latency.encode_request(io_ms)) == io_ms


@pytest.mark.parametrize("bad", [-1, -0.001, float("nan"), float("inf"), latency.MAX_IO_MS + 1])
def test_bad_delay_is_refused_before_any_connection(server: LatencyServer, bad: float) -> None:
    before = accepted(server)
    with pytest.raises(ValueError, match="io_ms must be"):
        latency.request(*server.address, bad)
    assert accepted(server) == before + 1


@pytest.mark.parametrize("bad", ["1", None, True])
def test_delay_of_the_wrong_type_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="io_ms must be a number"):
        latency.check_io_ms(bad)


def test_observed_time_covers_the_requested_delay(server: LatencyServer) -> None:
    for io_ms in (0, 5, 100):
        assert latency.request(*server.address, io_ms) >= io_ms / 1000
        assert latency.request(*server.address, io_ms, fresh=True) >= io_ms / 1000


def test_one_connection_per_thread_is_kept_alive(server: LatencyServer) -> None:
    before = accepted(server)
    for _ in range(3):
        latency.request(*server.address, 0)
    threads = [threading.Thread(target=latency.request, args=(*server.address, 0)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert accepted(server) - before == 1 + 4 + 1  # this thread, four others, the stats call


def test_fresh_connects_per_request(server: LatencyServer) -> None:
    before = accepted(server)
    for _ in range(3):
        latency.request(*server.address, 0, fresh=True)
    assert accepted(server) - before == 3 + 1


def test_a_forked_child_does_not_share_its_parents_connection(server: LatencyServer) -> None:
    latency.request(*server.address, 0)
    before = accepted(server)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            latency.request(*server.address, 0)
            os.write(write_end, b"ok")
        finally:
            os._exit(0)
    os.close(write_end)
    assert os.read(read_end, 16) == b"ok"
    os.close(read_end)
    os.waitpid(pid, 0)
    latency.request(*server.address, 0)
    assert accepted(server) - before == 1 + 1  # the child's own, the stats call; the parent's is reused


def test_a_timeout_drops_the_connection_and_the_next_request_reconnects(server: LatencyServer) -> None:
    latency.request(*server.address, 0)
    with pytest.raises(TimeoutError):
        latency.request(*server.address, 2_000, timeout=0.2)
    before = accepted(server)
    assert latency.request(*server.address, 0) >= 0
    assert accepted(server) - before == 1 + 1


def test_no_server_is_a_connection_error() -> None:
    with pytest.raises(ConnectionRefusedError):
        latency.request("127.0.0.1", free_port(), 0, timeout=2)


def test_a_closed_connection_is_a_latency_server_error(server: LatencyServer) -> None:
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"stats please\n")
        assert latency.read_line(sock).startswith(latency.ERROR_PREFIX)
        with pytest.raises(latency.LatencyServerError, match="closed the connection"):
            latency.read_line(sock)


@pytest.mark.parametrize("kind", ["gevent", "eventlet"])
def test_green_threads_wait_for_the_server_together(server: LatencyServer, kind: str) -> None:
    """Monkey-patched, 50 requests of 200 ms overlap: about one request's time, not fifty."""
    done = subprocess.run(
        [sys.executable, "-c", GREEN_SCRIPT, kind, *map(str, server.address), str(GREEN_REQUESTS), str(GREEN_IO_MS)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["observed"]) == GREEN_REQUESTS
    assert min(result["observed"]) >= GREEN_IO_MS / 1000
    serial_s = GREEN_REQUESTS * GREEN_IO_MS / 1000
    assert result["elapsed"] < serial_s / 5, f"{result['elapsed']:.2f} s; one by one would be {serial_s:.0f} s"
