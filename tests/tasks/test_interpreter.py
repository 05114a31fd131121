"""The free-threaded worker: its interpreter in `inspect stats`, and a refusal to run with a GIL."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from celery import Celery

from stack.workers import Worker

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_a_threads_ft_worker_says_which_python_it_runs_and_that_the_gil_is_off(
    app: Celery, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker("threads-ft", concurrency=2)
    stats = app.control.inspect([worker.name], timeout=5).stats() or {}
    interpreter = stats[worker.name]["interpreter"]
    assert interpreter["free_threaded_build"] is True and interpreter["gil_enabled"] is False
    assert interpreter["python"].endswith("t")
    normal = start_worker("threads", concurrency=1)
    assert (app.control.inspect([normal.name], timeout=5).stats() or {})[normal.name]["interpreter"]["gil_enabled"]


def test_a_threads_ft_worker_on_a_python_with_a_gil_refuses_in_one_line(run_cli: Run) -> None:
    result = run_cli("worker", "threads-ft", module="cli", env={"LAB_FREETHREADED_PYTHON": sys.executable})
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("lab: error:")]
    assert len(lines) == 1 and "must run without the GIL" in lines[0] and "not a free-threaded build" in lines[0]


def test_a_threads_ft_worker_on_the_free_threaded_python_with_its_gil_turned_on_refuses_in_one_line(
    run_cli: Run
) -> None:
    """PYTHON_GIL=1 turns the GIL back on in a free-threaded build, as an unsupported extension would."""
    result = run_cli("worker", "threads-ft", module="cli", env={"PYTHON_GIL": "1"})  # run_cli: no traceback
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("lab: error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert re.search(r"must run without the GIL, but Python 3\.\d+\.\d+t has its GIL on \(PYTHON_GIL=1", lines[0]), \
        lines[0]


def test_a_missing_free_threaded_interpreter_is_one_line(run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("worker", "threads-ft", module="cli", env={"LAB_FREETHREADED_PYTHON": str(tmp_path / "nope")})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "make freethreaded" in result.stderr
