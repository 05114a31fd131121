"""The delaying relay in front of a real Redis: bytes, order, delay, closing, many connections."""

from __future__ import annotations

import gzip
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import redis

from stack import relay as relay_module
from stack.processes import wait_until
from stack.redis_server import RedisServer, free_port
from stack.relay import SO_TIMESTAMPNS, TIMESPEC, DelayRelay, Pinger, arrival_ns, calibrate, netem_available

StartRelay = Callable[..., DelayRelay]


@pytest.fixture
def start_relay(redis_server: RedisServer, tmp_path: Path) -> Iterator[StartRelay]:
    """Factory: a relay in front of the session's Redis (or another port); all stopped at teardown."""
    started: list[DelayRelay] = []

    def start(rtt_ms: float, target_port: int | None = None) -> DelayRelay:
        log = tmp_path / f"relay-{len(started)}.log"
        relay = DelayRelay("127.0.0.1", target_port or redis_server.port, rtt_ms, log)
        started.append(relay)
        return relay.start()

    yield start
    for relay in started:
        relay.stop()


def resp(*args: str | bytes) -> bytes:
    """A command in Redis' wire protocol, for tests that need the raw socket."""
    parts = [a.encode() if isinstance(a, str) else a for a in args]
    return b"".join([f"*{len(parts)}\r\n".encode(), *(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)])


def raw_client(relay: DelayRelay, password: str, name: str) -> socket.socket:
    """A socket through the relay, authenticated and named (so Redis' CLIENT LIST can find it)."""
    sock = socket.create_connection(relay.address, timeout=10)
    sock.sendall(resp("AUTH", password) + resp("CLIENT", "SETNAME", name))
    received = b""
    while received.count(b"+OK\r\n") < 2:
        chunk = sock.recv(1024)
        assert chunk, f"connection closed during setup: {received!r}"
        received += chunk
    return sock


def client_names(client: redis.Redis) -> set[str]:
    return {entry["name"] for entry in client.client_list()}


def relay_links_to(relay: DelayRelay, port: int) -> int:
    """Open relay sockets whose far end is `port` (the target's, or a client's)."""
    assert relay.process is not None
    connections = psutil.Process(relay.process.pid).net_connections(kind="tcp")
    return sum(1 for conn in connections if conn.raddr and conn.raddr.port == port)


def password_of(server: RedisServer) -> str:
    return urlsplit(server.url).password or ""


@pytest.mark.parametrize("rtt_ms", [0.0, 2.0])
def test_large_pipelined_transfer_keeps_bytes_and_order(start_relay: StartRelay, redis_server: RedisServer,
                                                        rtt_ms: float) -> None:
    relay = start_relay(rtt_ms)
    client = redis.Redis.from_url(relay.url_through(redis_server.url), socket_timeout=60)
    rng = random.Random(7)
    prefix = f"relay-test-{rtt_ms}-"
    values = [rng.randbytes(rng.choice((0, 1, 100, 4096, 65_536))) for _ in range(2_000)]
    big = rng.randbytes(8 * 2**20)
    try:
        writes = client.pipeline(transaction=False)
        for index, value in enumerate(values):
            writes.set(f"{prefix}{index}", value)
        writes.set(f"{prefix}big", big)
        assert all(writes.execute())
        reads = client.pipeline(transaction=False)
        for index in range(len(values)):
            reads.get(f"{prefix}{index}")
        reads.get(f"{prefix}big")
        assert reads.execute() == [*values, big]
    finally:
        client.delete(*(f"{prefix}{index}" for index in range(len(values))), f"{prefix}big")
        client.close()


def test_every_round_trip_pays_at_least_the_set_rtt(start_relay: StartRelay, redis_server: RedisServer) -> None:
    relay = start_relay(20.0)
    client = redis.Redis.from_url(relay.url_through(redis_server.url))
    client.ping()
    for _ in range(20):
        started = time.perf_counter()
        client.ping()
        assert time.perf_counter() - started >= 0.020
    client.close()


def test_pipelined_commands_are_not_serialised(start_relay: StartRelay, redis_server: RedisServer) -> None:
    relay = start_relay(20.0)
    client = redis.Redis.from_url(relay.url_through(redis_server.url))
    client.ping()
    pipe = client.pipeline(transaction=False)
    for _ in range(1_000):
        pipe.ping()
    started = time.perf_counter()
    assert all(pipe.execute())
    elapsed = time.perf_counter() - started
    client.close()
    assert 0.020 <= elapsed < 1_000 * 0.020 / 10, f"{elapsed:.2f} s for 1,000 pipelined PINGs at RTT 20 ms"


def test_each_chunk_is_held_one_rtt_however_many_are_in_flight(start_relay: StartRelay,
                                                              redis_server: RedisServer) -> None:
    """20 PINGs sent 20 ms apart (separate chunks) at RTT 800 ms: each answered after about 800 ms.

    A relay whose reading waited for the delay would hold the later ones for 1.5 RTT or more.
    The pause between sends shapes the traffic (one chunk each); nothing waits on it.
    """
    relay = start_relay(800.0)
    pings, gap_s, rtt_s = 20, 0.020, 0.800
    sock = raw_client(relay, password_of(redis_server), "relay-paced")
    sent: list[float] = []

    def send_paced() -> None:
        for _ in range(pings):
            sent.append(time.perf_counter())
            sock.sendall(resp("PING"))
            time.sleep(gap_s)

    sender = threading.Thread(target=send_paced)
    sender.start()
    answered: list[float] = []
    received = b""
    while len(answered) < pings:
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
        answered += [time.perf_counter()] * (received.count(b"+PONG\r\n") - len(answered))
    sender.join()
    sock.close()
    latencies = [done - start for start, done in zip(sent, answered, strict=True)]
    assert min(latencies) >= rtt_s
    assert max(latencies) < 1.25 * rtt_s, [round(x, 3) for x in latencies]


def test_client_closing_reaches_redis_and_frees_the_link(start_relay: StartRelay, redis_server: RedisServer,
                                                         redis_client: redis.Redis) -> None:
    relay = start_relay(2.0)
    sock = raw_client(relay, password_of(redis_server), "relay-client-closes")
    assert "relay-client-closes" in client_names(redis_client)
    sock.close()
    wait_until(lambda: "relay-client-closes" not in client_names(redis_client), 10, "Redis sees the client gone")
    wait_until(lambda: relay_links_to(relay, redis_server.port) == 0, 10, "relay closes its upstream socket")


def test_redis_closing_reaches_the_client(start_relay: StartRelay, redis_server: RedisServer,
                                          redis_client: redis.Redis) -> None:
    relay = start_relay(2.0)
    sock = raw_client(relay, password_of(redis_server), "relay-redis-closes")
    client_port = sock.getsockname()[1]
    ids = [entry["id"] for entry in redis_client.client_list() if entry["name"] == "relay-redis-closes"]
    assert redis_client.client_kill_filter(_id=ids[0]) == 1
    sock.settimeout(10)
    assert sock.recv(1024) == b""  # end of stream, not a timeout
    sock.close()
    wait_until(lambda: relay_links_to(relay, client_port) == 0, 10, "relay closes its client socket")


def test_many_concurrent_connections(start_relay: StartRelay, redis_server: RedisServer,
                                     redis_client: redis.Redis) -> None:
    clients, increments = 200, 20
    relay = start_relay(1.0)
    url = relay.url_through(redis_server.url)
    key = f"relay-many-{os.getpid()}"
    all_open = threading.Barrier(clients + 1, timeout=60)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        client = redis.Redis.from_url(url, socket_timeout=30)
        try:
            client.ping()
            all_open.wait()
            for _ in range(increments):
                client.hincrby(key, str(index), 1)
            all_open.wait()
        except BaseException as exc:
            errors.append(exc)
            all_open.abort()
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    all_open.wait()
    assert relay_links_to(relay, redis_server.port) == clients
    all_open.wait()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    counts = redis_client.hgetall(key)
    redis_client.delete(key)
    assert len(counts) == clients and {int(v) for v in counts.values()} == {increments}
    wait_until(lambda: relay_links_to(relay, redis_server.port) == 0, 10, "relay closes every upstream socket")


def test_target_down_closes_the_client_and_the_relay_stays_up(start_relay: StartRelay) -> None:
    relay = start_relay(2.0, target_port=free_port())
    with socket.create_connection(relay.address, timeout=10) as sock:
        assert sock.recv(1024) == b""
    assert relay.listening()


def test_calibrate_reports_the_added_rtt_and_the_relays_own_figures(start_relay: StartRelay,
                                                                    redis_server: RedisServer) -> None:
    relay = start_relay(5.0)
    result = calibrate(relay.url_through(redis_server.url), redis_server.url, 5.0, pings=60, relay=relay, block=20)
    assert result["relayed_median_ms"] >= 5.0
    assert result["added_median_ms"] >= 5.0 - result["direct_median_ms"]
    assert result["direct_idle_median_ms"] > 0 and result["tolerance_ms"] == pytest.approx(0.25)
    assert result["relay_cpu_seconds"] >= 0
    assert result["relay_late_us"]["p50"] is not None and result["relay_late_us"]["p50"] >= 0
    assert isinstance(result["passed"], bool) and isinstance(result["passed_idle_matched"], bool)


class PausingClocks:
    """Wall and monotonic clocks `WALL_AHEAD_NS` apart, each read taking `pause_ns` (a preempted thread)."""

    WALL_AHEAD_NS = 1_700_000_000_000_000_000

    def __init__(self, now_ns: int, pause_ns: int) -> None:
        self.now_ns, self.pause_ns = now_ns, pause_ns

    def monotonic_ns(self) -> int:
        self.now_ns += self.pause_ns
        return self.now_ns

    def time_ns(self) -> int:
        self.now_ns += self.pause_ns
        return self.now_ns + self.WALL_AHEAD_NS


@pytest.mark.parametrize("pause_us", [0, 1, 100, 5_000])
def test_a_chunk_is_never_stamped_earlier_than_it_arrived(monkeypatch: pytest.MonkeyPatch, pause_us: int) -> None:
    arrived = 10_000_000_000
    clocks = PausingClocks(arrived, pause_us * 1000)
    monkeypatch.setattr(relay_module, "time", clocks)
    stamp = divmod(arrived + PausingClocks.WALL_AHEAD_NS, 1_000_000_000)
    ancillary = [(socket.SOL_SOCKET, SO_TIMESTAMPNS, TIMESPEC.pack(*stamp))]
    received = clocks.monotonic_ns()
    assert arrived <= arrival_ns(ancillary, received) <= received


def test_the_calibration_client_pings_and_never_echoes_a_wrong_password(redis_server: RedisServer) -> None:
    pinger = Pinger(redis_server.url)
    try:
        assert pinger.command("PING") == b"+PONG\r\n" and pinger.ping_ms() > 0
    finally:
        pinger.close()
    wrong = redis_server.url.replace(f":{redis_server.password}@", ":n0t%40the%3Apw@")
    with pytest.raises(ConnectionError) as refused:
        Pinger(wrong)
    assert str(refused.value) == "WRONGPASS" and "n0t" not in str(refused.value)


def test_url_through_keeps_password_and_database() -> None:
    relay = DelayRelay("127.0.0.1", 6379, 1.0, Path("unused.log"), port=7001)
    assert relay.url_through("redis://:s3cret@10.0.0.5:6380/3") == "redis://:s3cret@127.0.0.1:7001/3"
    assert relay.url_through("redis://10.0.0.5:6380") == "redis://127.0.0.1:7001"


@pytest.mark.parametrize(("text", "expected"), [
    ("CONFIG_NET_SCH_NETEM=m\n", True),
    ("CONFIG_NET_SCH_NETEM=y\n", True),
    ("# CONFIG_NET_SCH_NETEM is not set\n", False),
    ("CONFIG_NET_SCH_TBF=y\n", False),
])  # fmt: skip
def test_netem_available_reads_the_kernel_config(tmp_path: Path, text: str, expected: bool) -> None:
    packed = tmp_path / "config.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    plain = tmp_path / "config"
    plain.write_text(text)
    assert netem_available([packed]) is expected
    assert netem_available([tmp_path / "missing.gz", plain]) is expected
    assert netem_available([tmp_path / "missing"]) is False
    assert isinstance(netem_available(), bool)


@pytest.mark.parametrize("args", [
    ["--port", "1", "--target-port", "2", "--rtt-ms", "-1"],
    ["--port", "1", "--target-port", "2", "--rtt-ms", "nan"],
    ["--target-port", "2", "--rtt-ms", "1"],
    ["--port", "1", "--target-port", "99999", "--rtt-ms", "1"],
])  # fmt: skip
def test_bad_arguments_are_one_line_and_exit_2(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "cli", "relay", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("lab: error:"), done.stderr
