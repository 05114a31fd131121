"""Real socket I/O for the mixed workload: a blocking client of the lab's latency server.

Why a server and not `time.sleep`: a thread that returns from a blocking socket call has to
take the GIL back from CPU-bound threads, and under the old and new GIL alike it can wait a
whole switch interval (5 ms) or more for it: the convoy effect, bpo-7946. `time.sleep` shows
the same hand-off, but a real `recv()` is what a task doing I/O actually does, and gevent and
eventlet patch the `socket` module, so this one client is cooperative on green pools and a
real blocking syscall (the thread sleeps in the kernel, GIL released) on threads and prefork.

Protocol (one ASCII line each way, `\\n`-terminated; `stack/latency_server.py` serves it):

* request `<ms>`: a decimal number of milliseconds, 0 <= ms <= MAX_IO_MS (e.g. `200` or
  `0.5`); the server answers `ok` after at least that long, counted from when it read the line;
* request `stats`: the server answers at once with one line of JSON (its own CPU seconds,
  requests served, current and peak connections, ...);
* anything else (not a number, negative, NaN, too large, a line longer than MAX_LINE bytes):
  the server answers `error <reason>` and closes the connection.

Several requests may follow one another on a connection (keep-alive); requests sent before
the previous answer came are answered in order (each delay counted from when its turn came).

Connection reuse: `request()` keeps one connection per thread (per greenlet under gevent or
eventlet, whose monkey-patching makes `threading.local` greenlet-local) and reuses it, like a
pooled database or HTTP client would. Connecting per request (`fresh=True`) costs an extra
handshake and `close()` each call (measured on the lab's 2-core VM with io_ms=0: 41-48 µs per
request kept alive vs 270-580 µs fresh, benchmarks/latency_server.py), and it leaves one
TIME_WAIT socket per request on the client: at 1,000 requests/s that is 60,000 sockets after
the 60 s TIME_WAIT, more than the 28,232 ephemeral ports Linux has by default, so a long
experiment would fail with EADDRNOTAVAIL. The connection is tied to the process id too, so
a prefork child never shares a socket it inherited from its parent.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from typing import Any, Final

DEFAULT_PORT: Final = 7070
MAX_IO_MS: Final = 600_000.0
MAX_LINE: Final = 64
DEFAULT_TIMEOUT_S: Final = 30.0
STATS_REQUEST: Final = b"stats"
OK_REPLY: Final = b"ok"
ERROR_PREFIX: Final = b"error"
NEWLINE: Final = b"\n"


class LatencyServerError(ConnectionError):
    """The latency server refused the request, or the connection broke before its answer."""


_server: tuple[str, int] | None = None


def use_server(address: str | None) -> None:
    """The server tasks ask (`host:port`, the worker's LAB_LATENCY_SERVER), set once at worker start."""
    global _server
    if address:
        host, _, port = address.rpartition(":")
        _server = (host, int(port))


def ask(io_ms: float) -> float:
    """`request` to the worker's configured server; the seconds the task waited."""
    if _server is None:
        raise LatencyServerError("no latency server configured (LAB_LATENCY_SERVER=host:port)")
    return request(*_server, io_ms)


def check_io_ms(value: object) -> float:
    """A delay the server accepts, or a one-line `TypeError`/`ValueError` before any I/O."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"io_ms must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or not 0 <= value <= MAX_IO_MS:
        raise ValueError(f"io_ms must be a finite number between 0 and {MAX_IO_MS:g}, got {value!r}")
    return float(value)


def encode_request(io_ms: float) -> bytes:
    return repr(check_io_ms(io_ms)).encode("ascii") + NEWLINE


def parse_request(line: bytes) -> float | None:
    """The delay in ms a request line asks for, None for `stats`; ValueError for anything else."""
    text = line.strip()
    if text == STATS_REQUEST:
        return None
    try:
        value = float(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"not a delay in ms: {text[:MAX_LINE]!r}") from None
    return check_io_ms(value)


def request(host: str, port: int, io_ms: float, timeout: float = DEFAULT_TIMEOUT_S, *,
            fresh: bool = False) -> float:
    """Ask the server to answer after `io_ms`; return the wall seconds the call took.

    The time runs from before the connect (if one is needed) and send to after the answer was
    read, so it is what the calling task waited. `timeout` bounds each socket operation.
    """
    payload = encode_request(io_ms)
    started = time.perf_counter()
    sock = _fresh_connection(host, port, timeout) if fresh else _thread_connection(host, port, timeout)
    try:
        sock.sendall(payload)
        reply = read_line(sock)
    except OSError:
        _forget(sock)
        raise
    finally:
        if fresh:
            sock.close()
    elapsed = time.perf_counter() - started
    _check_reply(reply, sock)
    return elapsed


def stats(host: str, port: int, timeout: float = 5.0) -> dict[str, Any]:
    """The server's own counters: cpu_seconds, requests, connections, peak_connections, ..."""
    with _fresh_connection(host, port, timeout) as sock:
        sock.sendall(STATS_REQUEST + NEWLINE)
        reply = read_line(sock)
    if reply.startswith(ERROR_PREFIX):
        raise LatencyServerError(reply.decode("ascii", "replace"))
    result: dict[str, Any] = json.loads(reply)
    return result


def close_connection() -> None:
    """Close this thread's kept-alive connection, if it has one."""
    cached = _cache().connection
    if cached is not None:
        _forget(cached[2])


def read_line(sock: socket.socket) -> bytes:
    """Read up to and without the newline; replies are short, usually one `recv`."""
    buffer = b""
    while NEWLINE not in buffer:
        chunk = sock.recv(4096)
        if not chunk:
            raise LatencyServerError("latency server closed the connection before answering")
        buffer += chunk
    line, _, rest = buffer.partition(NEWLINE)
    if rest:
        raise LatencyServerError(f"unexpected bytes after the answer: {rest[:MAX_LINE]!r}")
    return line


def _check_reply(reply: bytes, sock: socket.socket) -> None:
    if reply != OK_REPLY:
        _forget(sock)
        raise LatencyServerError(f"latency server answered {reply[:MAX_LINE].decode('ascii', 'replace')!r}")


def _fresh_connection(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Cache(threading.local):
    connection: tuple[int, tuple[str, int], socket.socket] | None = None


_local: _Cache | None = None
_local_lock = threading.Lock()


def _cache() -> _Cache:
    """Created on first use, not at import, so a gevent/eventlet patch applied after importing
    this module still makes it greenlet-local (else greenlets would share one socket)."""
    global _local
    with _local_lock:
        if _local is None:
            _local = _Cache()
        return _local


def _thread_connection(host: str, port: int, timeout: float) -> socket.socket:
    cache = _cache()
    cached = cache.connection
    if cached is not None and cached[0] == os.getpid() and cached[1] == (host, port):
        cached[2].settimeout(timeout)
        return cached[2]
    if cached is not None and cached[0] == os.getpid():
        cached[2].close()
    sock = _fresh_connection(host, port, timeout)
    cache.connection = (os.getpid(), (host, port), sock)
    return sock


def _forget(sock: socket.socket) -> None:
    cache = _cache()
    if cache.connection is not None and cache.connection[2] is sock:
        cache.connection = None
    sock.close()
