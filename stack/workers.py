"""A running worker or Flower as an object: start it, wait until it is ready, stop it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from config import Settings
from stack import processes
from tasks.connections import client_app

LAB_COMMAND = (sys.executable, "-m", "cli")  # the `lab` entry point, as compose runs it


@dataclass
class Worker(processes.ChildProcess):
    """One `lab worker POOL` process (Celery parent plus its pool's children).

    `stop()` is Celery's warm shutdown: running tasks finish (for up to `stop_grace_s`),
    unstarted ones go back to the queue.
    """

    stop_grace_s = 30.0

    settings: Settings
    pool: str
    concurrency: int
    log_path: Path
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    startup_s: float = 0.0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = processes.worker_name(self.pool, socket.gethostname())

    def command(self) -> list[str]:
        return [*LAB_COMMAND, "worker", self.pool, "--concurrency", str(self.concurrency), *self.extra_args]

    def start(self, timeout: float = 60.0) -> Worker:
        """Start it and return once it answers a Celery ping by name (one client app for all polls)."""
        started = time.monotonic()
        with client_app(self.settings) as app:
            self.launch(self.command(), processes.child_env(self.settings), self.log_path,
                        lambda: bool(app.control.ping(destination=[self.name], timeout=0.5)), timeout,
                        f"worker {self.name}", 0.1)
        self.startup_s = time.monotonic() - started
        return self

    def memory_mb(self) -> float:
        return processes.tree_memory_mb(self.pid)

    def kill(self) -> None:
        """SIGKILL the parent, as a crash would; its pool children die with it."""
        if self.process is not None:
            processes.stop_process(self.process, grace=10, sig=signal.SIGKILL)
            self.process = None


@dataclass
class Flower(processes.ChildProcess):
    """Flower on 127.0.0.1 with basic auth."""

    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def auth(self) -> tuple[str, str]:
        return (self.settings.flower_user, self.settings.flower_password)

    def start(self, timeout: float = 60.0) -> Flower:
        self.launch([*LAB_COMMAND, "flower"], processes.child_env(self.settings), self.log_path, self.healthy,
                    timeout, "flower", 0.1)
        return self

    def healthy(self) -> bool:
        try:
            response = requests.get(f"{self.settings.flower_url}/healthcheck", auth=self.auth, timeout=2)
        except requests.RequestException:
            return False
        return response.status_code == 200

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(f"{self.settings.flower_url}{path}", auth=self.auth, params=params, timeout=10)
