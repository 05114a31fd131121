"""The runner end to end on tests/experiments/tiny.toml: real Redis, real workers, real Flower."""

import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery
from rich.console import Console

from config import Settings
from experiments import runner
from experiments.spec import SpecError, load, parse
from report.build import write_report
from stack.workers import Worker

TINY = Path(__file__).with_name("tiny.toml")
SCHEMA = ("pool", "workload", "concurrency", "tasks", "repetitions", "completed", "lost", "duplicated",
          "throughput_per_s", "throughput_min", "throughput_max", "ideal_per_s", "efficiency", "worker_memory_mb",
          "startup_s", "p50_s", "p95_s", "p99_s")  # fmt: skip


@pytest.mark.slow
def test_tiny_experiment_runs_reports_and_resumes(settings: Settings, tmp_path: Path) -> None:
    experiment = load(TINY)
    run_dir = tmp_path / "run"
    console = Console(file=io.StringIO(), width=200)
    results = runner.run_experiment(experiment, settings, run_dir, console=console)
    write_report(results, run_dir)

    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk == results
    assert set(results["environment"]) >= {"cpu_count", "celery", "redis_server", "events", "task_cpu_s_before_run"}
    assert len(results["cells"]) == len(experiment.cells)
    for cell in results["cells"]:
        assert set(SCHEMA) <= set(cell), cell["id"]
        assert cell["completed"] == cell["tasks"] * (cell["repetitions"] + cell["untimed_repetitions"]), cell["id"]
        assert (cell["lost"], cell["duplicated"], cell["healthy"]) == (0, 0, True)
        assert cell["throughput_min"] <= cell["throughput_per_s"] <= cell["throughput_max"]
        assert cell["worker_memory_mb"] > 10 and cell["startup_s"] > 0
        assert cell["flower"]["mismatches"] == 0, "every run cross-checked against Flower"
    timed = [c for c in results["cells"] if c["timing"]]
    assert all(c["p50_s"] <= c["p95_s"] <= c["p99_s"] for c in timed)
    assert all(c["efficiency"] > 0 for c in timed if c["ideal_per_s"])
    rate_cell = next(c for c in results["cells"] if c["arrival"] == "rate")
    assert rate_cell["arrival_rate_per_s"] == pytest.approx(rate_cell["ideal_per_s"])

    assert set(results["enqueue"]["methods"]) == {"apply_async", "batch", "processes_2"}
    assert results["redis"]["ops_per_s"] > 1000 and results["redis"]["ceiling_tasks_per_s"] > 0
    report = (run_dir / "report.md").read_text()
    assert "## Harness overhead" in report and "timing off" in report and "Not measured" not in report
    (paired,) = [c for c in results["cells"] if c["untimed_repetitions"]]
    assert paired["repetitions"] == paired["untimed_repetitions"] == 2 and len(paired["overhead_runs"]) == 2
    assert paired["untimed"]["wall_min"] <= paired["untimed"]["wall_per_s"] <= paired["untimed"]["wall_max"]
    assert "Flower cross-check" in report and "all match" in report
    for plot in ("throughput", "efficiency", "memory", "latency"):
        assert (run_dir / "plots" / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '<img src="plots/throughput.png"' in (run_dir / "report.html").read_text()

    # Resume: forget one cell; only that one is measured again, the others are kept as they were.
    cells = sorted((run_dir / "cells").glob("*.json"))
    kept = {path.name: path.stat().st_mtime_ns for path in cells[1:]}
    cells[0].unlink()
    runner.run_experiment(experiment, settings, run_dir, console=console)
    assert cells[0].exists()
    assert {path.name: path.stat().st_mtime_ns for path in cells[1:]} == kept


def test_resume_refuses_a_directory_of_another_file(tmp_path: Path) -> None:
    (tmp_path / runner.SPEC_COPY).write_text("name = 'other'")
    with pytest.raises(SpecError, match="different experiment file"):
        runner.check_resumable(tmp_path, load(TINY))
    with pytest.raises(SpecError, match="not an experiment run directory"):
        runner.check_resumable(tmp_path / "missing", parse(TINY.read_text()))


@pytest.mark.parametrize("args, message", [
    (["bench", "nope.toml"], "cannot read experiment file"),
    (["bench", str(TINY), "--resume", "."], "not an experiment run directory"),
])  # fmt: skip
def test_cli_bad_input_is_one_line_and_exit_2(run_cli: Callable[..., subprocess.CompletedProcess[str]],
                                              args: list[str], message: str) -> None:
    result = run_cli(*args, module="cli")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert result.stdout == ""


def test_cli_rejects_an_invalid_file(run_cli: Callable[..., subprocess.CompletedProcess[str]],
                                     tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[cells]]\npools = ['threads']\nconcurrency = [2]\nworkload = 'square'\n")
    result = run_cli("bench", str(bad), module="cli")
    assert result.returncode == 2
    assert result.stderr.strip() == "lab: error: [[cells]] block 1: give exactly one of tasks, rounds or duration"


FREE_THREADED = """
name = "ft"
[[cells]]
pools = ["threads", "threads-ft"]
concurrency = [2]
workload = "square"
tasks = 10
"""


@pytest.mark.parametrize("command", ["bench", "claims", "map"])
def test_a_missing_free_threaded_interpreter_is_one_line_before_anything_starts(
        run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path, command: str) -> None:
    spec_file = tmp_path / "ft.toml"
    spec_file.write_text(FREE_THREADED)
    missing = tmp_path / "no-venv-ft" / "bin" / "python"
    result = run_cli(command, str(spec_file), "--out", str(tmp_path / "out"), module="cli",
                     env={"LAB_FREETHREADED_PYTHON": str(missing)})  # run_cli asserts no traceback
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == (f"lab: error: pool threads-ft runs on the free-threaded interpreter, not found "
                                     f"at {missing}: run `make freethreaded` or set LAB_FREETHREADED_PYTHON")
    assert result.stdout == ""
    assert not (tmp_path / "out").exists(), "no run directory: nothing was started"


INTERPRETERS = """
name = "interpreters"
enqueue = false
redis_benchmark = false
[settings]
loglevel = "WARNING"
[[cells]]
pools = ["threads", "threads-ft"]
concurrency = [4]
workload = "mixed"
params = { cpu_ms = 1.0, io_ms = 10.0, io = "socket" }
tasks = 600            # enough requests that the server's CPU is above psutil's 10 ms resolution
repetitions = 1
"""


@pytest.mark.slow
def test_a_run_records_each_interpreter_as_its_workers_saw_it_and_the_latency_servers_cpu(
        settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(latency_server=None)  # the run starts its own, whose CPU it then measures
    run_dir = tmp_path / "run"
    results = runner.run_experiment(parse(INTERPRETERS), settings, run_dir, console=Console(file=io.StringIO()))
    environment = results["environment"]
    by_user = {user: entry for entry in environment["interpreters"] for user in entry["used_by"]}
    assert set(by_user) == {"harness", "threads", "threads-ft"}
    assert by_user["harness"] is by_user["threads"] and by_user["threads"]["gil_enabled"] is True
    free = by_user["threads-ft"]
    assert free["free_threaded_build"] is True and free["gil_enabled"] is False and free["python"].endswith("t")
    assert set(environment["single_thread_square"]["cpu_ms"]) == {by_user["threads"]["python"], free["python"]}
    assert all(ms > 0 for ms in environment["single_thread_square"]["cpu_ms"].values())
    for cell in results["cells"]:
        assert cell["gil_enabled"] is (cell["pool"] == "threads")
        assert cell["latency_server_cpu_s"] is not None and cell["latency_server_cpu_s"] > 0
        assert cell.get("latency_server_cores") is not None and 0 < cell["latency_server_cores"] < 2

    text = write_report(results, run_dir).read_text()
    assert f"| {free['python']} | free-threaded | off | threads-ft | " in text
    assert "## The latency server's own CPU" in text


ATTACH = """
name = "attach"
enqueue = false
redis_benchmark = false
[[cells]]
pools = ["threads"]
concurrency = [1]
workload = "noop"
tasks = 30
repetitions = 1
"""


@pytest.mark.slow
def test_attach_measures_the_running_worker_and_leaves_it_consuming(
        settings: Settings, start_worker: Callable[..., Worker], app: Celery, tmp_path: Path) -> None:
    worker = start_worker("threads", concurrency=3)
    results = runner.run_experiment(parse(ATTACH), settings, tmp_path / "run", attach=True,
                                    console=Console(file=io.StringIO()))
    (cell,) = results["cells"]
    assert (cell["attached"], cell["concurrency"], cell["completed"], cell["lost"]) == (True, 3, 30, 0)
    assert cell["worker_memory_mb"] > 10 and cell["startup_s"] is None
    assert results["environment"]["broker"] == "attached"
    assert app.send_task("tasks.noop", queue=settings.queue_for("threads")).get(timeout=30) is None
    assert app.control.ping(destination=[worker.name], timeout=5)


def test_cli_report_needs_a_results_json(run_cli: Callable[..., subprocess.CompletedProcess[str]],
                                         tmp_path: Path) -> None:
    result = run_cli("report", str(tmp_path), module="cli")
    assert result.returncode == 2
    assert result.stderr.strip() == f"lab: error: {tmp_path} has no results.json"
