"""No secret in any output: a password in the broker URL never reaches stdout, stderr or a log.

Error messages end up in CI logs and `docker compose logs`, so settings errors never hold the
secret in the first place (config.settings redacts at the source), for every entry point.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pytest
from celery import Celery

from config import Settings
from stack.redis_server import RedisServer, free_port
from stack.workers import Flower, Worker

Run = Callable[..., subprocess.CompletedProcess[str]]
SECRET = "S3cr3t-pw-4711"
SPECIAL = "p%40ss:w@rd%2F%25x"  # '@', ':', '/' and '%', percent-encoded where a URL needs it

# name -> (URL with {secret}, {closed} and {open} placeholders, the secret inside it)
URLS = {
    "bad port": ("redis://:{secret}@localhost:99999/0", SECRET),
    "port 0": ("redis://:{secret}@localhost:0/0", SECRET),
    "bad scheme": ("http://:{secret}@localhost:6379/0", SECRET),
    "bad host": ("redis://:{secret}@no-such-host.invalid:6379/0", SECRET),
    "bad db": ("redis://:{secret}@127.0.0.1:{closed}/abc", SECRET),
    "special characters": ("redis://:{secret}@127.0.0.1:{closed}/0", SPECIAL),
    "unencoded slash": ("redis://:{secret}@127.0.0.1:{closed}/0", "pass/word9"),
    "user and password": ("redis://admin:{secret}@127.0.0.1:{closed}/0", SECRET),
    "wrong password": ("redis://:{secret}@127.0.0.1:{open}/0", SECRET),
}
ENTRY_POINTS = {
    "producer send": ("cli.producer", ("send", "-n", "1")),
    "lab up": ("cli", ("up", "--run-dir", "{tmp}")),
    "lab worker": ("cli", ("worker", "threads")),
    "lab flower": ("cli", ("flower",)),
}


def leaks(text: str, secret: str) -> bool:
    return any(form in text for form in {secret, unquote(secret)})


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", URLS)
def test_a_bad_or_unreachable_broker_url_never_shows_its_secret(
    case: str, entry: str, run_cli: Run, redis_server: RedisServer, tmp_path: Path
) -> None:
    template, secret = URLS[case]
    url = template.format(secret=secret, closed=free_port(), open=redis_server.port)
    module, args = ENTRY_POINTS[entry]
    result = run_cli(*(arg.format(tmp=tmp_path) for arg in args), module=module,
                     env={"LAB_BROKER_URL": url, "LAB_BROKER_WAIT_S": "1"})
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not leaks(result.stdout + result.stderr, secret), result.stderr


def test_worker_and_flower_logs_and_the_lab_up_state_hold_no_secret_in_their_output(
    settings: Settings, redis_server: RedisServer, app: Celery, start_worker: Callable[..., Worker],
    start_flower: Callable[[], Flower],
) -> None:
    worker = start_worker("threads")
    flower = start_flower()
    assert app.send_task("tasks.noop", queue=settings.queue_for("threads")).get(timeout=30) is None
    assert flower.get("/api/workers").status_code == 200
    for log in (worker.log_path, flower.log_path):
        text = log.read_text()
        assert "redis://" in text or "127.0.0.1" in text, f"{log.name} says nothing about its broker"
        assert redis_server.password not in text, f"the Redis password is in {log.name}"
        assert settings.flower_password not in text, f"the Flower password is in {log.name}"
