"""What every test that runs a command as a user would also checks: no traceback ever reaches them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from config import Settings

ROOT = Path(__file__).resolve().parent.parent


def assert_no_traceback(out: str, err: str) -> None:
    """Whatever a user did, the lab answers in one line, never with a traceback."""
    assert "Traceback" not in err and "Traceback" not in out, f"a traceback reached the user:\n{err[-3000:]}"


def producer(settings: Settings, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`producer send ARGS` in the background, with the test's settings."""
    full_env = {**os.environ, **settings.to_env(), "COLUMNS": "200", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "cli.producer", "send", *args], env=full_env, cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(run: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Wait for a background command; its output, checked for a traceback."""
    out, err = run.communicate(timeout=timeout)
    assert_no_traceback(out, err)
    return out, err
