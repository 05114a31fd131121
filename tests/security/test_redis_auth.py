"""Redis needs a password: the native stack refuses a Redis without one, and a wrong one, clearly."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from stack.redis_server import RedisServer

Run = Callable[..., subprocess.CompletedProcess[str]]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_native_stack_refuses_a_redis_url_without_password(
    run_cli: Run, redis_server: RedisServer, tmp_path: Path
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    line = one_error_line(run_cli("up", "--run-dir", str(tmp_path), module="cli", env={"LAB_BROKER_URL": url}))
    assert line.startswith("lab: error:") and "has no password" in line


@pytest.mark.parametrize("command", [("up", "--run-dir", "{tmp}"), ("worker", "threads"), ("flower",)])
def test_wrong_redis_password_is_refused_with_a_clear_message(
    command: tuple[str, ...], run_cli: Run, redis_server: RedisServer, tmp_path: Path
) -> None:
    url = f"redis://:not-the-password@127.0.0.1:{redis_server.port}/0"
    args = [part.format(tmp=tmp_path) for part in command]
    line = one_error_line(run_cli(*args, module="cli", env={"LAB_BROKER_URL": url}))
    assert "refused the password" in line
    assert "not-the-password" not in line and redis_server.password not in line
