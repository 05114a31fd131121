"""A delaying TCP relay: workers reach Redis through it and pay a network round trip per command.

Workers on another host than Redis pay an RTT on every command. The usual tool, netem, is not
in this kernel (`# CONFIG_NET_SCH_NETEM is not set`; `tc qdisc add ... netem` fails) and there
is no Toxiproxy in Debian or PyPI, so the delay comes from user space: each accepted connection
is joined to the target, and each direction is a FIFO that releases a chunk at its arrival
time + RTT/2. Reading never waits for the delay, so order and bandwidth are kept and pipelined
commands are not serialised. `netem_available()` says whether a machine could use netem instead.

Why threads and not asyncio (measured on the lab's 2-core VM, Redis PING medians, ADDED RTT =
relayed minus direct): a pure-asyncio relay added 2.78 ms for a set 0.5 ms and 2.82 ms for 2 ms,
because asyncio's epoll selector rounds every timeout up to a whole millisecond
(selectors.EpollSelector.select), so it cannot hold a chunk for 0.25 ms. So each direction has a
reader thread (blocking `recvmsg`) and a writer thread that sleeps with `time.sleep`
(clock_nanosleep, µs resolution) until the release time. That alone still overshot (0.74 ms
for 0.5 ms) for three reasons, each handled here:

* the kernel's timer slack (50 µs by default) is added to every sleep: set to 1 ns with
  `prctl(PR_SET_TIMERSLACK)` (threads inherit it);
* a sleeping thread wakes 25-85 µs after its deadline on this VM (more the longer it slept):
  each writer sleeps until `release - lead`, where `lead` tracks about the 75th percentile of
  its recent lateness, then spins the rest (`PreciseClock`; 2-8 µs per chunk on average), so a
  chunk is never released early and rarely more than a few µs late;
* the reader thread itself wakes 15-30 µs after the data arrived: the arrival time is the
  kernel's receive timestamp (SO_TIMESTAMPNS), not the time `recvmsg` returned.

The relay itself then releases a chunk a median 0.05-0.1 µs after its due time (p90 5-30 µs;
ms only when the shared machine is overloaded), reported on SIGUSR1 (`release_stats`). A PING
through it still takes longer than RTT + a direct PING: +0.07-0.1 ms at 0.5 ms, +0.1-0.2 ms at
2 ms, +0.3-0.5 ms at 10 ms. That is this VM, not the relay: a direct PING sent after an idle
pause as long as the RTT takes +0.07 / +0.11 / +0.24-0.32 ms longer than back to back
(Redis and the client wake slowly after idling; a precise echo server with no relay showed the
same growth), and a real network of that RTT would cost them the same. It is not the guest's
idle states: with `/dev/cpu_dma_latency` held at 0 (PM QoS; the haltpoll governor then polls
and never halts, checked in its cpuidle counters) the idle-matched direct PING was as slow
(+0.10 / +0.10 / +0.38 ms against +0.07 / +0.16 / +0.43 ms free, 2 x 600 PINGs each, 2026-11-27),
and the relay's back-to-back error did not shrink. Part of it was the client: redis-py does more
work per PING after an idle wait; with a lean RESP client (`Pinger`) the back-to-back error fell
to +0.04 / +0.06 / +0.25 ms, within the lab's tolerance at every RTT, and `calibrate()` uses it.
It measures both baselines; against the idle-matched one (redis-py, earlier) the relay was
+0.02 / +0.04 / +0.07 ms off at 0.5 / 2 / 10 ms (medians of 3 x 2,000 PINGs).

At RTT 0 there is no writer thread: the reader forwards at once, the relay's floor (+0.03-0.06
ms per round trip, 29-39 µs of its CPU per command). Above 0, a chunk costs the relay three
thread wake-ups, 160-480 µs of CPU per PING (two chunks; a wake-up after a longer wait costs
more CPU on this VM, 17 µs after 0.25 ms, 33 µs after 5 ms); a timerfd armed by the reader,
saving the writer one wake-up, measured no better side by side, so the simpler queue stayed.
The TCP handshake is not delayed (the client's connect completes at the relay); redis-py keeps
its connections, so that costs one RTT per connection, not per command.
"""

from __future__ import annotations

import collections
import ctypes
import gzip
import json
import math
import os
import queue
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psutil

from stack.latency_server import ListenError
from stack.processes import ChildProcess, wait_until
from stack.redis_server import free_port
from stack.workers import LAB_COMMAND

PR_SET_TIMERSLACK = 29
SO_TIMESTAMPNS = 35  # asm-generic/socket.h (SO_TIMESTAMPNS_OLD); Python's socket module lacks it
TIMESPEC = struct.Struct("qq")
CHUNK_BYTES = 256 * 1024
MAX_QUEUED_BYTES = 16 * 2**20  # per direction; beyond it the reader stops and TCP pushes back
BACKPRESSURE_POLL_S = 0.005
LEAD_STEP_UP_NS = 3_000
LEAD_STEP_DOWN_NS = 1_000
MAX_LEAD_NS = 200_000
LATENESS_SAMPLES = 100_000
STATS_PREFIX = "relay-stats "
THREAD_STACK_BYTES = 256 * 1024
CONNECT_TIMEOUT_S = 5.0
NETEM_OPTION = "CONFIG_NET_SCH_NETEM="
KERNEL_CONFIGS = (Path("/proc/config.gz"), Path("/proc/config"))
EOF_MARK = b""


def netem_available(configs: Iterable[Path] = KERNEL_CONFIGS) -> bool:
    """Whether the kernel was built with netem (=y or =m), read from its own config."""
    for path in configs:
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt") as config:
                return any(line.startswith(NETEM_OPTION) and line.strip()[len(NETEM_OPTION):] in ("y", "m")
                           for line in config)
        except OSError:
            continue
    return False


def set_timer_slack_ns(nanoseconds: int) -> bool:
    """Linux adds up to the thread's timer slack (default 50 µs) to every sleep; threads inherit it."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return False
    return bool(libc.prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0) == 0)


class ReleaseLog:
    """Lateness of recent releases (actual minus due, ns), reported and reset on SIGUSR1."""

    def __init__(self) -> None:
        self.lateness: collections.deque[int] = collections.deque(maxlen=LATENESS_SAMPLES)
        self.connections = 0

    def report(self) -> str:
        samples = sorted(self.lateness)
        self.lateness.clear()
        late_us = {f"p{q}": samples[min(len(samples) - 1, len(samples) * q // 100)] / 1000 if samples else None
                   for q in (50, 90, 99)}  # fmt: skip
        body = {"connections": self.connections, "released_chunks": len(samples), "cpu_seconds": time.process_time(),
                "late_us": {**late_us, "max": samples[-1] / 1000 if samples else None}}
        return STATS_PREFIX + json.dumps(body)


RELEASES = ReleaseLog()


class PreciseClock:
    """Waits until a monotonic deadline, never before it and usually within a few µs after.

    `time.sleep` wakes 25-85 µs late on this VM (more after a longer sleep, ms under load), so
    each writer sleeps until `deadline - lead` and spins the rest. The lead tracks about the
    75th percentile of that lateness (a step up when the sleep overran it, a third of a step
    down when not), so one wake delayed by a busy machine moves it by 3 µs, not by ms: an
    average did that, and the writers then spun for 40-70 µs per chunk.
    """

    def __init__(self) -> None:
        self.lead_ns = 0

    def wait_until(self, deadline_ns: int) -> None:
        target = deadline_ns - self.lead_ns
        remaining = target - time.monotonic_ns()
        if remaining > 0:
            time.sleep(remaining / 1e9)
            overran = time.monotonic_ns() > deadline_ns
            step = LEAD_STEP_UP_NS if overran else -LEAD_STEP_DOWN_NS
            self.lead_ns = min(MAX_LEAD_NS, max(0, self.lead_ns + step))
        while (now := time.monotonic_ns()) < deadline_ns:
            continue
        RELEASES.lateness.append(now - deadline_ns)


def arrival_ns(ancillary: list[tuple[int, int, bytes]], received_ns: int) -> int:
    """When the kernel got the data (its receive timestamp, on the monotonic clock).

    TCP reports the timestamp of the last segment read, so every byte of the chunk arrived at
    or before it: the delay is never cut short. The stamp is on the wall clock; the offset to the
    monotonic clock is read wall clock first, so a pause between the two reads (this thread
    preempted) can only make a release late. Reading the wall clock after `received_ns` did the
    opposite: under a loaded CI run one PING through a 20 ms relay took 19.92 ms. A stamp after
    `received_ns` is cut to it; one more than a second old (the wall clock was stepped) falls back
    to `received_ns`.
    """
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            wall_minus_monotonic = time.time_ns() - time.monotonic_ns()  # in this order: never an early release
            stamped = min(received_ns, seconds * 1_000_000_000 + nanoseconds - wall_minus_monotonic)
            if stamped >= received_ns - 1_000_000_000:
                return stamped
    return received_ns


class Link:
    """One relayed connection: both directions, and closing the sockets once nothing uses them."""

    def __init__(self, client: socket.socket, upstream: socket.socket, delay_ns: int) -> None:
        self.sockets = (client, upstream)
        self.directions = (Direction(client, upstream, delay_ns, self), Direction(upstream, client, delay_ns, self))
        self.lock = threading.Lock()
        self.running = 0
        self.aborted = False

    def start(self) -> None:
        threads = [thread for direction in self.directions for thread in direction.threads()]
        self.running = len(threads)
        for thread in threads:
            thread.start()

    def abort(self) -> None:
        """A reset or error on either side: shut both sockets so every thread wakes up and ends."""
        with self.lock:
            if self.aborted:
                return
            self.aborted = True
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue
        for direction in self.directions:
            direction.wake()

    def thread_done(self) -> None:
        """The last thread closes the sockets: closing earlier could hand a live fd number to another link."""
        with self.lock:
            self.running -= 1
            last = self.running == 0
        if last:
            for sock in self.sockets:
                sock.close()


class Direction:
    """Bytes from `source` to `target`, each chunk released at its arrival + `delay_ns`.

    The hand-off is a `queue.SimpleQueue` (C, the writer waits with the GIL released): a
    `threading.Condition` cost more CPU per chunk. Backpressure counts bytes in (reader only)
    and out (writer only), so neither count is ever written by two threads.
    """

    def __init__(self, source: socket.socket, target: socket.socket, delay_ns: int, link: Link) -> None:
        self.source, self.target, self.delay_ns, self.link = source, target, delay_ns, link
        self.queue: queue.SimpleQueue[tuple[int, bytes] | None] = queue.SimpleQueue()
        self.bytes_in = 0
        self.bytes_out = 0
        self.room = threading.Event()

    def threads(self) -> list[threading.Thread]:
        if self.delay_ns == 0:
            return [threading.Thread(target=self.forward_at_once, daemon=True)]
        return [threading.Thread(target=self.read, daemon=True), threading.Thread(target=self.write, daemon=True)]

    def forward_at_once(self) -> None:
        try:
            while data := self.source.recv(CHUNK_BYTES):
                self.target.sendall(data)
            self.target.shutdown(socket.SHUT_WR)
        except OSError:
            self.link.abort()
        finally:
            self.link.thread_done()

    def read(self) -> None:
        try:
            while not self.link.aborted:
                data, ancillary, _, _ = self.source.recvmsg(CHUNK_BYTES, socket.CMSG_SPACE(TIMESPEC.size))
                release = arrival_ns(ancillary, time.monotonic_ns()) + self.delay_ns
                self.wait_for_room()
                self.queue.put((release, data))
                self.bytes_in += len(data)
                if not data:
                    return
        except OSError:
            self.link.abort()
        finally:
            self.link.thread_done()

    def wait_for_room(self) -> None:
        """Stop reading while MAX_QUEUED_BYTES wait (TCP then slows the sender), as a full link would."""
        while self.bytes_in - self.bytes_out > MAX_QUEUED_BYTES and not self.link.aborted:
            self.room.clear()
            self.room.wait(BACKPRESSURE_POLL_S)

    def write(self) -> None:
        clock = PreciseClock()
        try:
            while (item := self.queue.get()) is not None:
                release_ns, data = item
                clock.wait_until(release_ns)
                if data == EOF_MARK:
                    self.target.shutdown(socket.SHUT_WR)
                    return
                self.target.sendall(data)
                self.bytes_out += len(data)
                self.room.set()
        except OSError:
            self.link.abort()
        finally:
            self.link.thread_done()

    def wake(self) -> None:
        """After an abort: the writer takes the sentinel, a reader waiting for room sees the flag."""
        self.queue.put(None)
        self.room.set()


def join_target(client: socket.socket, target: tuple[str, int], delay_ns: int) -> None:
    """Connect the accepted client to the target and start relaying; close it if the target is down."""
    try:
        upstream = socket.create_connection(target, timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        print(f"relay: cannot reach {target[0]}:{target[1]}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        client.close()
        return
    upstream.settimeout(None)
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if delay_ns:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    Link(client, upstream, delay_ns).start()


def serve(listener: socket.socket, target: tuple[str, int], rtt_ms: float) -> None:
    """Accept forever; each connection is joined to the target on its own thread."""
    delay_ns = round(rtt_ms * 1e6 / 2)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=join_target, args=(client, target, delay_ns), daemon=True).start()
        RELEASES.connections += 1


def listen(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(socket.SOMAXCONN)
    return listener


@dataclass
class DelayRelay(ChildProcess):
    """The relay as a child process in front of `target`, adding `rtt_ms` to every round trip."""

    target_host: str
    target_port: int
    rtt_ms: float
    log_path: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_url(cls, redis_url: str, rtt_ms: float, log_path: Path) -> DelayRelay:
        parts = urlsplit(redis_url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 6379, rtt_ms, log_path)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def url_through(self, redis_url: str) -> str:
        """The same Redis URL (password, db) pointed at the relay."""
        parts = urlsplit(redis_url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{self.host}:{self.port}" if credentials else f"{self.host}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def command(self) -> list[str]:
        return [*LAB_COMMAND, "relay", "--host", self.host, "--port", str(self.port),
                "--target-host", self.target_host, "--target-port", str(self.target_port),
                "--rtt-ms", repr(self.rtt_ms)]  # fmt: skip

    def start(self, timeout: float = 15.0) -> DelayRelay:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.launch(self.command(), os.environ, self.log_path, self.listening, timeout, f"relay on port {self.port}")
        return self

    def listening(self) -> bool:
        """Our process holds the listening socket (a connect could reach someone else's)."""
        if self.process is None:
            return False
        try:
            sockets = psutil.Process(self.process.pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            return False
        return any(conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.port for conn in sockets)

    def release_stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """The relay's own lateness since the last call (SIGUSR1; the answer is a line in its log).

        `late_us` is how long after its due time (arrival + RTT/2) a chunk was released: the
        relay's own error, apart from the endpoints' that a PING measurement also contains.
        """
        assert self.process is not None, "relay not started"
        offset = self.log_path.stat().st_size
        found: list[dict[str, Any]] = []

        def reported() -> bool:
            with self.log_path.open() as log:
                log.seek(offset)
                found.extend(json.loads(line[len(STATS_PREFIX):]) for line in log
                             if line.startswith(STATS_PREFIX) and line.endswith("\n"))
            return bool(found)

        self.process.send_signal(signal.SIGUSR1)
        wait_until(reported, timeout, f"relay on port {self.port}: stats", self.process, interval=0.01)
        return found[0]



def tolerance_ms(rtt_ms: float) -> float:
    """The lab's precision requirement: 0.1 ms, or 5 % of the RTT when that is more."""
    return max(0.1, 0.05 * rtt_ms)


class Pinger:
    """Redis PINGs over one raw RESP connection with blocking reads: as little client code as a round trip allows.

    Why not redis-py: its per-command Python work grows after the client has waited one RTT while
    the relay's threads ran on the same cores. Measured here (2026-11-27, quiet, 600 PINGs per RTT,
    relayed minus direct back-to-back minus the set RTT): through redis-py +0.09 / +0.20 / +0.46 ms at
    0.5 / 2 / 10 ms; through this client +0.04 / +0.06 / +0.25 ms; through a busy-polling one
    +0.03 / +0.05 / +0.10 ms. The relay's own release error is a median 0.05-0.1 µs (`release_stats`),
    so what is left is Redis and this client waking up after idling one RTT.
    """

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if parts.password is not None:
            user = [unquote(parts.username)] if parts.username else []
            self.command("AUTH", *user, unquote(parts.password))

    def command(self, *words: str) -> bytes:
        encoded = [word.encode() for word in words]
        self.sock.sendall(b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded))
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = self.sock.recv(256)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            reply += chunk
        if reply.startswith(b"-"):
            raise ConnectionError(reply[1:].decode(errors="replace").strip().split(" ")[0])  # the code, never the words
        return reply

    def ping_ms(self) -> float:
        started = time.perf_counter()
        self.command("PING")
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.sock.close()


def ping_rtts_ms(client: Pinger, count: int, idle_s: float = 0.0) -> list[float]:
    """PING round trips in ms; with `idle_s`, each PING follows that long a pause."""
    samples = []
    for _ in range(count):
        if idle_s:
            time.sleep(idle_s)
        samples.append(client.ping_ms())
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class PingSeries:
    """The three kinds of PING a calibration alternates between."""

    direct: list[float] = field(default_factory=list)
    direct_idle: list[float] = field(default_factory=list)
    relayed: list[float] = field(default_factory=list)


def measure_pings(relayed_url: str, direct_url: str, rtt_ms: float, pings: int, block: int) -> PingSeries:
    """Alternating blocks, so all three see the same machine load (this VM's speed drifts within minutes)."""
    direct, relayed = Pinger(direct_url), Pinger(relayed_url)
    series = PingSeries()
    try:
        for start in range(0, pings, block):
            count = min(block, pings - start)
            series.direct += ping_rtts_ms(direct, count)
            series.direct_idle += ping_rtts_ms(direct, count, idle_s=rtt_ms / 1000)
            series.relayed += ping_rtts_ms(relayed, count)
    finally:
        direct.close()
        relayed.close()
    return series


def calibrate(relayed_url: str, direct_url: str, rtt_ms: float, pings: int = 2000,
              relay: DelayRelay | None = None, block: int = 100) -> dict[str, Any]:
    """Measure what the relay really adds, with Redis PINGs, before an experiment trusts it.

    ADDED RTT = relayed median - direct median, back to back, through `Pinger` (a lean client:
    redis-py's own work after an idle wait showed as relay error). `passed`: that error against the
    set RTT is within `tolerance_ms` (0.1 ms, or 5 % of the RTT). On this VM the figure still holds
    the endpoints' cost of waking up after waiting one RTT, which a real network of that RTT would
    cost them too, so a third series, direct PINGs each after a pause of one RTT, is reported beside
    it as the idle-matched baseline (`passed_idle_matched`). With `relay`, the result has the
    relay's CPU (its own scheduler count) and its own release lateness over the same PINGs.
    """
    before = relay.release_stats() if relay is not None else None
    series = measure_pings(relayed_url, direct_url, rtt_ms, pings, block)
    after = relay.release_stats() if relay is not None else None
    direct, idle, relayed = (statistics.median(xs) for xs in (series.direct, series.direct_idle, series.relayed))
    cpu = after["cpu_seconds"] - before["cpu_seconds"] if after and before else None
    return {
        "rtt_ms": rtt_ms, "pings": pings, "tolerance_ms": tolerance_ms(rtt_ms),
        "direct_median_ms": direct, "direct_p99_ms": percentile(series.direct, 0.99),
        "direct_idle_median_ms": idle, "direct_idle_p99_ms": percentile(series.direct_idle, 0.99),
        "relayed_median_ms": relayed, "relayed_p99_ms": percentile(series.relayed, 0.99),
        "added_median_ms": relayed - direct,
        "added_p99_ms": percentile(series.relayed, 0.99) - direct,
        "error_ms": relayed - direct - rtt_ms,
        "added_vs_idle_median_ms": relayed - idle,
        "error_vs_idle_ms": relayed - idle - rtt_ms,
        "passed": abs(relayed - direct - rtt_ms) <= tolerance_ms(rtt_ms),
        "passed_idle_matched": abs(relayed - idle - rtt_ms) <= tolerance_ms(rtt_ms),
        "relay_cpu_seconds": cpu,
        "relay_cpu_us_per_ping": cpu / pings * 1e6 if cpu is not None else None,
        "relay_late_us": after["late_us"] if after else None,
    }  # fmt: skip


def run(host: str, port: int, target: tuple[str, int], rtt_ms: float) -> None:
    """Relay until SIGTERM (`lab relay`); SIGUSR1 prints the release statistics to the log."""
    if not math.isfinite(rtt_ms):
        raise ListenError(f"the round trip to add must be a finite number of ms, got {rtt_ms}")
    set_timer_slack_ns(1)
    threading.stack_size(THREAD_STACK_BYTES)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGUSR1, lambda *_: print(RELEASES.report(), flush=True))
    try:
        listener = listen(host, port)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    print(f"relay: {host}:{port} -> {target[0]}:{target[1]}, RTT +{rtt_ms} ms (pid {os.getpid()})", flush=True)
    serve(listener, target, rtt_ms)
