"""Verdicts from known inputs: each claim's rule holds, fails, or is partial where it should."""

from pathlib import Path
from typing import Any

from report import verdicts
from report.claims import write_claims_report


def cell(label: str, pool: str, c: int, **values: Any) -> dict[str, Any]:
    return {"label": label, "pool": pool, "concurrency": c, **values}


def test_gil_holds_when_prefork_doubles_threads_and_threads_stay_flat() -> None:
    cells = [cell("claim1", "threads", c, throughput_per_s=100.0) for c in (1, 2, 4)]
    cells += [cell("claim1", "prefork", c, throughput_per_s=100.0 * min(c, 2)) for c in (1, 2, 4)]
    verdict = verdicts.gil(cells, 2, [{"pattern": "threading.Thread", "throughput_per_s": 100.0},
                                      {"pattern": "ProcessPoolExecutor", "throughput_per_s": 195.0}], "3.12.1")
    assert (verdict["claim"], verdict["verdict"], verdict["figure"]) == (1, "holds", 2.0)
    assert (verdict["interpreter"], verdict["free_threaded"]) == ("3.12.1", False)
    assert verdict["detail"].startswith("on Python 3.12.1,")


def test_gil_does_not_hold_when_threads_scale_like_processes() -> None:
    cells = [cell("claim1", pool, c, throughput_per_s=100.0 * min(c, 2))
             for pool in ("threads", "prefork") for c in (1, 2, 4)]
    assert verdicts.gil(cells, 2, [], "3.13.5t", free_threaded=True)["verdict"] == "does not hold"


def test_io_verdict_is_the_worst_efficiency() -> None:
    cells = [cell("claim2", "threads", 8, throughput_per_s=79.0, efficiency=0.99),
             cell("claim2", "threads", 256, throughput_per_s=200.0, efficiency=0.78)]
    verdict = verdicts.io(cells)
    assert (verdict["verdict"], verdict["figure"]) == ("partly", 0.78)


def test_memory_ratio_at_largest_common_concurrency() -> None:
    cells = [cell("claim3", "threads", c, worker_memory_mb=50.0 + c) for c in (4, 32)]
    cells += [cell("claim3", "prefork", c, worker_memory_mb=30.0 * c) for c in (4, 32)]
    verdict = verdicts.memory(cells)
    assert verdict["verdict"] == "holds"
    assert verdict["figure"] == round(960 / 82, 3)


def test_startup_and_recycling() -> None:
    cells = [cell("claim3", "threads", 32, startup_s=2.0), cell("claim3", "prefork", 32, startup_s=6.0),
             cell("claim4", "prefork", 2, throughput_per_s=100.0),
             cell("claim4-recycle", "prefork", 2, throughput_per_s=40.0)]
    verdict = verdicts.startup(cells)
    assert (verdict["verdict"], verdict["figure"]) == ("holds", 3.0)


def test_killable_holds_only_if_threads_ran_on_and_prefork_stopped() -> None:
    attempts = [{"pool": "threads", "method": "time_limit", "killed": False, "reported_state": "SUCCESS"},
                {"pool": "prefork", "method": "time_limit", "killed": True, "reported_state": "FAILURE"}]
    assert verdicts.killable(attempts)["verdict"] == "holds"
    attempts[0]["killed"] = True
    assert verdicts.killable(attempts)["verdict"] == "does not hold"


def test_shared_memory_and_crash() -> None:
    states = [{"pool": "threads", "shared": True, "processes_seen": 1, "largest_count_seen": 40},
              {"pool": "prefork", "shared": False, "processes_seen": 4, "largest_count_seen": 12}]
    crashes = [{"pool": p, "acks_late": late, "worker_died": p == "threads",
                "lost": 4 if (p, late) == ("threads", False) else 0}
               for p in ("threads", "prefork") for late in (True, False)]
    verdict = verdicts.shared(states, crashes)
    assert (verdict["verdict"], verdict["figure"]) == ("holds", 4.0)


def claims_run(free_threaded: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """A claims run's results.json and side.json, made of known numbers."""
    cells = [cell("claim1", "threads", c, throughput_per_s=40.0, task_cpu_s=0.025, worker_memory_mb=50.0,
                  ideal_per_s=40.0, startup_s=1.0) for c in (1, 2, 4)]
    cells += [cell("claim1", "prefork", c, throughput_per_s=40.0 * min(c, 2), task_cpu_s=0.025,
                   worker_memory_mb=90.0, ideal_per_s=40.0 * min(c, 2), startup_s=2.0) for c in (1, 2, 4)]
    if free_threaded:  # without the GIL threads scale like processes
        cells += [cell("claim1-ft", pool, c, throughput_per_s=34.0 * min(c, 2), task_cpu_s=0.029,
                       worker_memory_mb=60.0, ideal_per_s=34.0 * min(c, 2), startup_s=1.0)
                  for pool in ("threads-ft", "prefork-ft") for c in (1, 2, 4)]
    cells += [cell("claim2", "threads", c, throughput_per_s=c * 0.95, efficiency=0.95, ideal_per_s=float(c),
                   worker_memory_mb=50.0, startup_s=1.0) for c in (8, 64)]
    cells += [cell("claim3", pool, c, worker_memory_mb=(30.0 * c if pool == "prefork" else 50.0 + c),
                   startup_s=(2.0 if pool == "threads" else 6.0), throughput_per_s=1.0, ideal_per_s=1.0)
              for pool in ("threads", "prefork") for c in (4, 32)]
    cells += [cell("claim4", "prefork", 2, throughput_per_s=100.0, ideal_per_s=None, worker_memory_mb=80.0,
                   startup_s=2.0),
              cell("claim4-recycle", "prefork", 2, throughput_per_s=40.0, ideal_per_s=None, worker_memory_mb=80.0,
                   startup_s=2.0)]
    side: dict[str, Any] = {
        "cores": 2,
        "inprocess": [{"pattern": "threading.Thread", "workers": 2, "tasks": 60, "throughput_per_s": 38.0},
                      {"pattern": "ProcessPoolExecutor", "workers": 2, "tasks": 60, "throughput_per_s": 76.0}],
        "runaway": [{"pool": "threads", "method": "time_limit=1s", "killed": False, "reported_state": "SUCCESS",
                     "ran_s": 6.0},
                    {"pool": "prefork", "method": "time_limit=1s", "killed": True, "reported_state": "FAILURE",
                     "ran_s": None}],
        "shared_state": [{"pool": "threads", "shared": True, "processes_seen": 1, "largest_count_seen": 40},
                         {"pool": "prefork", "shared": False, "processes_seen": 4, "largest_count_seen": 12}],
        "crash": [{"pool": p, "acks_late": late, "worker_died": p == "threads", "completed": 40,
                   "lost": 4 if (p, late) == ("threads", False) else 0} for p in ("threads", "prefork")
                  for late in (True, False)],
        "mixed": [{"scenario": "routed", "tasks": 200, "completed": 200, "lost": 0, "throughput_per_s": 90.0}],
    }
    if free_threaded:
        side["inprocess_ft"] = [{"pattern": "ThreadPoolExecutor", "workers": 2, "tasks": 60, "throughput_per_s": 66.0}]
        side["freethreaded_python"] = "3.13.5t"
    return {"cells": cells, "environment": {"python": "3.11.7"}}, side


def test_claim_1_is_judged_per_interpreter_and_does_not_hold_without_the_gil() -> None:
    results, side = claims_run(free_threaded=True)
    found = verdicts.judge(results, side)  # type: ignore[arg-type]
    gil_on, gil_off = (v for v in found if v["claim"] == 1)
    assert (gil_on["interpreter"], gil_on["verdict"]) == ("3.11.7", "holds")  # the run's own, not a constant
    assert (gil_off["interpreter"], gil_off["verdict"]) == ("3.13.5t", "does not hold")
    assert len(verdicts.judge(*claims_run(free_threaded=False))) == 6  # type: ignore[arg-type]


def test_claims_report_says_plainly_that_claim_1_falls_without_the_gil(tmp_path: Path) -> None:
    results, side = claims_run(free_threaded=True)
    found = verdicts.judge(results, side)  # type: ignore[arg-type]
    text = write_claims_report(results, side, found, tmp_path).read_text()  # type: ignore[arg-type]
    assert "## Claim 1 without the GIL (Python 3.13.5t)" in text
    assert "Without the GIL the claim **does not hold**" in text
    assert "| 1 | 3.13.5t | does not hold |" in text
    assert "| 1 | 3.11.7 | holds |" in text and "| 2 | 3.11.7 |" in text
    assert (tmp_path / "plots" / "claim-1ft.png").read_bytes()[:4] == b"\x89PNG"
