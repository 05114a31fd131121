"""Claim 6 on real workers: shared state and a crash per pool (claim 5's runaway: tests/faults/test_pool_limits.py)."""

from pathlib import Path

import pytest

from config import Settings
from experiments.claims import isolation


@pytest.mark.parametrize(("pool", "shared"), [("threads", True), ("prefork", False)])
def test_module_state_is_shared_by_threads_not_by_processes(
    pool: str, shared: bool, settings: Settings, tmp_path: Path
) -> None:
    result = isolation.shared_state(settings.replace(concurrency={**settings.concurrency, "prefork": 2}),
                                    tmp_path, pool, concurrency=2, tasks=20)
    assert result["shared"] is shared
    assert result["processes_seen"] == (1 if shared else 2)


def test_a_crashing_prefork_child_loses_nothing_with_acks_late(settings: Settings, tmp_path: Path) -> None:
    result = isolation.crash_loss(settings, tmp_path, "prefork", acks_late=True, concurrency=2, tasks=12)
    assert not result["worker_died"]
    assert (result["completed"], result["lost"]) == (13, 0)
