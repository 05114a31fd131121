"""I/O-bound: one request to a slow service that answers after `ms` milliseconds.

The service is the lab's latency server (one line `<ms>` in, `ok` back after that long); `lab
advise` starts one and gives its address as LAB_LATENCY_SERVER=host:port. The client keeps one
connection per thread, as a pooled HTTP or database client does. While it waits, the thread
holds no GIL and burns no CPU: threads suit it, at a fraction of prefork's memory.

    lab advise examples.io_socket:fetch --args '[50]'
"""

from __future__ import annotations

import os

from tasks import latency


def server() -> tuple[str, int]:
    host, _, port = os.environ.get("LAB_LATENCY_SERVER", "127.0.0.1:7070").rpartition(":")
    return host, int(port)


def fetch(ms: float = 50.0) -> float:
    """Ask the service for an answer after `ms`; the seconds the call took."""
    return latency.request(*server(), ms)
