"""The report from a results.json made here: files, verdict numbers, unhealthy cells marked."""

import json
from pathlib import Path
from typing import Any

import pytest

from report import findings, verdicts
from report.build import rebuild, write_report


def cell(pool: str, workload: str, c: int, per_s: float, ideal: float | None, memory: float, **extra: Any) -> dict:
    base = {
        "id": f"{workload}-{pool}-c{c}", "label": extra.pop("label", workload), "pool": pool, "workload": workload,
        "concurrency": c, "tasks": 100, "repetitions": 3, "sent": 300, "completed": 300, "failed": 0, "queued": 0,
        "lost": 0, "duplicated": 0, "throughput_per_s": per_s, "throughput_min": per_s * 0.95,
        "throughput_max": per_s * 1.05, "ideal_per_s": ideal, "efficiency": per_s / ideal if ideal else None,
        "worker_memory_mb": memory, "startup_s": 1.2, "p50_s": 0.2, "p95_s": 0.4, "p99_s": 0.5,
        "params": {"seconds": 0.5} if workload == "sleep" else {}, "arrival": "prefill", "arrival_rate_per_s": None,
        "timing": True, "worker_args": [], "settings": {}, "attached": False, "wall_per_s": per_s * 0.98,
        "wall_min": per_s * 0.9, "wall_max": per_s, "cpu_cores": 1.0,
        "queue_wait": {"p50_s": 0.1, "p95_s": 0.3, "p99_s": 0.4}, "run_time": {"p50_s": 0.05, "p95_s": 0.06,
                                                                               "p99_s": 0.07},
        "redis": {"celery_commands_per_task": 12.0, "harness_commands_per_task": 3.0, "calls": {"brpop": 300}},
        "flower": None, "throughput_runs": [per_s] * 3, "healthy": True,
    }  # fmt: skip
    base.update(extra)
    return base


def results_fixture() -> dict[str, Any]:
    cells = [
        cell("prefork", "square", 2, 38.0, 40.0, 55.0),
        cell("threads", "square", 2, 19.0, 40.0, 48.0),
        cell("threads", "sleep", 8, 15.8, 16.0, 49.0),
        cell("threads", "sleep", 64, 125.0, 128.0, 58.0),
        cell("prefork", "sleep", 8, 15.9, 16.0, 210.0),
        cell("prefork", "sleep", 64, 120.0, 128.0, 1700.0, lost=2, completed=298, healthy=False),
        cell("threads", "noop", 4, 680.0, None, 48.0, label="overhead"),
        cell("threads", "noop", 4, 700.0, None, 48.0, label="overhead", timing=False, wall_per_s=700.0,
             p50_s=None, p95_s=None, p99_s=None, id="noop-threads-c4-notiming"),
    ]
    return {
        "experiment": {"name": "fixture", "description": "made by the test", "digest": "0", "cells_planned": 8},
        "environment": {"cpu_count": 2, "celery": "5.6.3", "square_task_cpu_s": {"800000": 0.05}},
        "cells": cells,
        "enqueue": {"tasks": 2000, "repetitions": 3, "used": "batch", "methods": {
            "apply_async": {"median_per_s": 900.0, "min_per_s": 850.0, "max_per_s": 950.0},
            "batch": {"median_per_s": 2500.0, "min_per_s": 2400.0, "max_per_s": 2600.0},
            "processes_2": {"median_per_s": 3000.0, "min_per_s": 2800.0, "max_per_s": 3100.0}}},
        "redis": {"method": "redis-benchmark", "ops_per_s": 60000.0, "per_command": {},
                  "celery_commands_per_task": 12.0, "ceiling_tasks_per_s": 5000.0},
    }  # fmt: skip


def test_findings_from_known_numbers() -> None:
    results = results_fixture()
    cpu = verdicts.cpu_verdict(results["cells"], cores=2)
    assert cpu is not None and cpu["ratio"] == pytest.approx(2.0) and cpu["prefork_efficiency"] == 0.95
    io = verdicts.io_verdict(results["cells"])
    assert io is not None
    assert (io["concurrency"], io["threads_memory_mb"], io["prefork_memory_mb"]) == (64, 58.0, 1700.0)
    (overhead,) = findings.overheads(results["cells"])
    assert overhead["overhead"] == pytest.approx(1 - 680 * 0.98 / 700)
    margin = findings.producer_margin(results)
    assert margin is not None and margin["margin"] == pytest.approx(2400 / 735.0)
    assert findings.accounting(results["cells"])["lost"] == 2
    assert "prefork 2.00x threads at c=2 (95% of ideal)" in verdicts.headline(results)


def test_report_files_and_what_they_say(tmp_path: Path) -> None:
    results = results_fixture()
    (tmp_path / "results.json").write_text(json.dumps(results))
    report_md = rebuild(tmp_path)
    text = report_md.read_text()
    assert text.startswith("# Experiment `fixture`")
    assert "**Verdict:** CPU: prefork 2.00x threads" in text
    assert text.index("plots/throughput.png") < text.index("## Summary"), "the verdict plot comes first"
    assert "| sleep-prefork-c64 ⚠ |" in text, "a cell with lost tasks is marked"
    assert "1 cell(s) with lost, duplicated or unfinished tasks" in text
    assert "| noop-threads-c4 | 666.4 | 700.0 | +4.8% | - | yes |" in text
    assert "`batch`" in text and "never the bottleneck" in text
    assert "**5,000.0 tasks/s**" in text
    html = (tmp_path / "report.html").read_text()
    assert '<tr class="bad"><td>sleep-prefork-c64 ⚠</td>' in html
    assert "<strong>Verdict:</strong>" in html and "<script" not in html
    for name in ("throughput", "efficiency", "memory", "latency"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_report_of_a_partial_run_says_so(tmp_path: Path) -> None:
    results = results_fixture()
    results["cells"] = results["cells"][:2]
    results["enqueue"] = results["redis"] = None
    text = write_report(results, tmp_path).read_text()
    assert "Only 2 of 8 cells were measured" in text
    assert "Not measured: no cell has a twin with timing off." in text


def test_a_paired_cell_is_its_own_overhead_row() -> None:
    paired = cell("prefork", "noop", 2, 450.0, None, 53.0, label="overhead", untimed_repetitions=3,
                  untimed={"wall_per_s": 470.0, "wall_min": 460.0, "wall_max": 480.0},
                  overhead=0.03, overhead_runs=[0.01, 0.03, 0.06])  # fmt: skip
    (row,) = findings.overheads([paired])
    assert (row["overhead"], row["runs"], row["off"]["wall_per_s"]) == (0.03, [0.01, 0.03, 0.06], 470.0)


def test_the_report_names_each_interpreter_its_build_and_its_gil(tmp_path: Path) -> None:
    results = results_fixture()
    results["environment"]["interpreters"] = [
        {"python": "3.11.2", "free_threaded_build": False, "gil_enabled": True, "used_by": ["harness", "threads"]},
        {"python": "3.13.5t", "free_threaded_build": True, "gil_enabled": False, "used_by": ["threads-ft"]},
        {"python": "3.13.5t", "free_threaded_build": True, "gil_enabled": True, "used_by": ["prefork-ft"]},
        {"python": "3.12.1", "free_threaded_build": False, "gil_enabled": None, "used_by": ["gevent"]},
    ]  # fmt: skip
    text = write_report(results, tmp_path).read_text()
    section = text[text.index("## Interpreters"):text.index("## Environment")]
    assert "| 3.11.2 | with a GIL | on | harness, threads |" in section
    assert "| 3.13.5t | free-threaded | off | threads-ft |" in section
    assert "| 3.13.5t | free-threaded | ⚠ on (turned back on) | prefork-ft |" in section
    assert "| 3.12.1 | with a GIL | not reported | gevent |" in section
    assert "interpreters" not in text[text.index("## Environment"):], "not again as a raw row"


def test_the_report_prints_each_interpreters_cost_per_square_and_the_latency_servers_cpu(tmp_path: Path) -> None:
    results = results_fixture()
    results["environment"]["interpreters"] = [
        {"python": "3.11.2", "free_threaded_build": False, "gil_enabled": True, "used_by": ["harness", "threads"]},
        {"python": "3.13.5t", "free_threaded_build": True, "gil_enabled": False, "used_by": ["threads-ft"]},
    ]  # fmt: skip
    results["environment"]["single_thread_square"] = {"work": 800000, "cpu_ms": {"3.11.2": 40.0, "3.13.5t": 50.0}}
    socket = {"cpu_ms": 5.0, "io_ms": 45.0, "io": "socket", "order": "cpu-io"}
    results["cells"] += [
        cell("threads", "mixed", 8, 120.0, 160.0, 50.0, id="mixed-threads-c8", params=socket,
             latency_server_cpu_s=1.2, latency_server_cores=0.12),
        cell("threads-ft", "mixed", 8, 150.0, 160.0, 52.0, id="mixed-threads-ft-c8", params=socket,
             pool_label="threads@3.13t", latency_server_cpu_s=9.0, latency_server_cores=0.62),
        cell("threads", "mixed", 8, 150.0, 160.0, 50.0, id="mixed-sleep-c8", params={**socket, "io": "sleep"},
             latency_server_cpu_s=0.01, latency_server_cores=0.001),
    ]  # fmt: skip
    results["experiment"]["cells_planned"] = len(results["cells"])
    text = write_report(results, tmp_path).read_text()

    interpreters = text[text.index("## Interpreters"):text.index("## Environment")]
    assert "`square(work=800000)` alone on one thread" in interpreters
    assert "| 3.11.2 | with a GIL | on | harness, threads | 40.00 ms (1.00x) |" in interpreters
    assert "| 3.13.5t | free-threaded | off | threads-ft | 50.00 ms (1.25x) |" in interpreters
    assert "single_thread_square" not in text[text.index("## Environment"):]

    limit = verdicts.LATENCY_SERVER_MAX_CORES
    server = text[text.index("## The latency server's own CPU"):]
    server = server[:server.index("\n## ")]
    assert "| mixed-threads-c8 | threads | " in server and "| 1.20 | 0.12 | ok |" in server
    assert "| mixed-threads-ft-c8 | threads@3.13t | " in server and f"| 9.00 | 0.62 | ⚠ above {limit:g} |" in server
    assert "mixed-sleep-c8" not in server, "a cell whose tasks did not ask the server is not listed"
    assert f"⚠ Above {limit:g} core in `mixed-threads-ft-c8`" in server


def test_a_run_without_socket_tasks_or_free_threading_has_neither_section(tmp_path: Path) -> None:
    text = write_report(results_fixture(), tmp_path).read_text()
    assert "## Interpreters" not in text and "## The latency server's own CPU" not in text
