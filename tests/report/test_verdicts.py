"""Verdicts from known inputs: each claim's rule holds, fails, or is partial where it should."""

from typing import Any

from report import verdicts


def cell(label: str, pool: str, c: int, **values: Any) -> dict[str, Any]:
    return {"label": label, "pool": pool, "concurrency": c, **values}


def test_gil_holds_when_prefork_doubles_threads_and_threads_stay_flat() -> None:
    cells = [cell("claim1", "threads", c, throughput_per_s=100.0) for c in (1, 2, 4)]
    cells += [cell("claim1", "prefork", c, throughput_per_s=100.0 * min(c, 2)) for c in (1, 2, 4)]
    verdict = verdicts.gil(cells, 2, [{"pattern": "threading.Thread", "throughput_per_s": 100.0},
                                      {"pattern": "ProcessPoolExecutor", "throughput_per_s": 195.0}])
    assert (verdict["claim"], verdict["verdict"], verdict["figure"]) == (1, "holds", 2.0)


def test_gil_does_not_hold_when_threads_scale_like_processes() -> None:
    cells = [cell("claim1", pool, c, throughput_per_s=100.0 * min(c, 2))
             for pool in ("threads", "prefork") for c in (1, 2, 4)]
    assert verdicts.gil(cells, 2, [])["verdict"] == "does not hold"


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
