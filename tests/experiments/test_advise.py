"""`lab advise`: bad input is one line and exit 2 with no process left behind; end to end on a tiny target."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from config.pools import POOLS
from experiments.advise_model import Constraints, predict, rank, shortlist
from experiments.advise_profile import Profile, gil_share

TARGETS = "tests.experiments.advise_targets"
RunCli = Callable[..., subprocess.CompletedProcess[str]]


def left_behind(mark: str) -> list[str]:
    """Processes still running with the test's mark in their environment (workers, servers, the profile)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.environ().get("LAB_TEST_MARK") == mark:
                found.append(" ".join(proc.info["cmdline"] or [])[:200])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def advise(run_cli: RunCli, tmp_path: Path, *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str],
                                                                                      list[str]]:
    mark = uuid.uuid4().hex
    result = run_cli("advise", *args, "--out", str(tmp_path / "advise"), module="cli", env={"LAB_TEST_MARK": mark},
                     timeout=timeout)
    return result, left_behind(mark)


@pytest.mark.parametrize("args, message", [
    ([f"{TARGETS}_missing:tiny"], f"cannot import '{TARGETS}_missing': ModuleNotFoundError"),
    ([f"{TARGETS}:absent"], f"'{TARGETS}' has no attribute 'absent'"),
    ([f"{TARGETS}:NOT_CALLABLE"], "is not callable (it is a int)"),
    ([f"{TARGETS}:fails", "--args", "[3]"], "raised on the given arguments: ValueError: cannot handle 3"),
    ([f"{TARGETS}:tiny", "--args", "[1,"], "--args is not JSON"),
    ([f"{TARGETS}:tiny", "--args", '{"n": 1}'], "--args must be a JSON list, got dict"),
    ([f"{TARGETS}:tiny", "--kwargs", "[1]"], "--kwargs must be a JSON object, got list"),
    ([f"{TARGETS}:tiny", "--args", '["x"]'], "raised on the given arguments: TypeError"),
    ([f"{TARGETS}:hangs", "--timeout", "1"], "did not return within 1 s (--timeout); stopped it"),
    (["no_colon_here"], "target must be module:name"),
])  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_leaves_no_process(run_cli: RunCli, tmp_path: Path, args: list[str],
                                                            message: str) -> None:
    result, leftovers = advise(run_cli, tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("lab: error: "), result.stderr
    assert message in result.stderr
    assert leftovers == []


def test_gil_share_inverts_amdahl_and_the_threads_pool_uses_it() -> None:
    assert gil_share(1.0, 2) == 1.0 and gil_share(2.0, 2) == 0.0
    assert gil_share(1.9, 2) == pytest.approx(0.0526, abs=1e-3)
    threads, prefork = POOLS["threads"], POOLS["prefork"]
    assert threads.usable_cores_for_task(8, 1.0, cores=2) == 1.0
    assert threads.usable_cores_for_task(8, 0.0526, cores=2) == pytest.approx(1.9, abs=1e-3)
    assert threads.usable_cores_for_task(1, 0.0, cores=2) == 1.0
    assert prefork.usable_cores_for_task(8, 1.0, cores=2) == 2.0


def profile(cpu_ms: float, io_ms: float, gil: float, peak_mb: float = 1.0) -> Profile:
    wall = (cpu_ms + io_ms) / 1000
    return Profile(calls=10, wall_s=wall, cpu_s=cpu_ms / 1000, io_s=io_ms / 1000, wall_p95_s=wall, peak_mb=peak_mb,
                   import_mb=0.0, threads=2, gil_phase_per_s=0.0, gil_cores=1 / (gil + (1 - gil) / 2), gil_share=gil,
                   gil_measured=True, process_cores=2.0)


def test_a_task_holding_the_gil_is_predicted_faster_on_prefork() -> None:
    pure = profile(cpu_ms=20, io_ms=0, gil=1.0)
    threads, prefork = predict(pure, "threads", 2, cores=2), predict(pure, "prefork", 2, cores=2)
    assert prefork["predicted_per_s"] > 1.7 * threads["predicted_per_s"]
    assert prefork["predicted_memory_mb"] > threads["predicted_memory_mb"]
    assert shortlist([threads, prefork], Constraints())[0] is prefork


def test_a_task_releasing_the_gil_goes_to_threads_for_memory_unless_a_constraint_decides() -> None:
    hashing = profile(cpu_ms=50, io_ms=50, gil=0.02)  # hashing a download: half waiting, half C code
    rows = [predict(hashing, pool, c, cores=2) for pool in ("threads", "prefork") for c in (1, 2, 4, 8)]
    best = rank(rows, "predicted", Constraints())[0]
    assert (best["pool"], best["concurrency"]) == ("threads", 4)
    pure = profile(cpu_ms=50, io_ms=50, gil=1.0)  # the same in pure Python: threads stay at one core
    rows = [predict(pure, pool, c, cores=2) for pool in ("threads", "prefork") for c in (1, 2, 4, 8)]
    assert rank(rows, "predicted", Constraints())[0]["pool"] == "prefork"
    assert rank(rows, "predicted", Constraints(max_memory_mb=54))[0]["pool"] == "threads"


def test_memory_saving_less_than_near_best_does_not_outrank_throughput() -> None:
    rows = [{"pool": "threads", "concurrency": 32, "measured_per_s": 245.0, "measured_memory_mb": 51.9},
            {"pool": "threads", "concurrency": 64, "measured_per_s": 226.0, "measured_memory_mb": 50.2}]
    assert rank(rows, "measured", Constraints())[0]["concurrency"] == 32


@pytest.mark.slow
def test_advise_end_to_end_on_a_tiny_target(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "advice.json"
    result, leftovers = advise(run_cli, tmp_path, f"{TARGETS}:tiny", "--args", "[20000]", "--kwargs",
                               '{"wait_ms": 2}', "--calls", "10", "--prove-seconds", "1", "--json", str(out),
                               timeout=240)
    assert result.returncode == 0, result.stderr
    assert leftovers == []
    advice = json.loads(out.read_text())
    assert advice["profile"]["cpu_s"] > 0 and advice["profile"]["io_s"] > 0.001
    assert len(advice["proved"]) == 3 and {row["pool"] for row in advice["proved"]} == {"threads", "prefork"}
    for row in advice["proved"]:
        assert row["completed"] == row["tasks"] * row["repetitions"] and (row["lost"], row["failed"]) == (0, 0)
        assert row["measured_per_s"] > 0 and row["measured_memory_mb"] > 10 and row["measured_p95_s"] > 0
        assert row["noop_per_s"] > 0 and row["predicted_before_per_s"] > 0  # calibrated on the worker itself
    recommendation = advice["recommendation"]
    assert (recommendation["pool"], recommendation["concurrency"]) in {(r["pool"], r["concurrency"])
                                                                      for r in advice["proved"]}
    assert recommendation["decided_by"] and isinstance(recommendation["prediction_holds"], bool)
    assert "Recommended:" in result.stdout and "meas/pred" in result.stdout
    assert (tmp_path / "advise").rglob("advice.md")
