"""Claims 5 and 6 on real workers: what each pool does to a runaway, to shared state, to a crash."""

from pathlib import Path

import pytest

from config import Settings
from experiments.claims import isolation, killability


@pytest.mark.parametrize(("pool", "shared"), [("threads", True), ("prefork", False)])
def test_module_state_is_shared_by_threads_not_by_processes(
    pool: str, shared: bool, settings: Settings, tmp_path: Path
) -> None:
    result = isolation.shared_state(settings.replace(concurrency={**settings.concurrency, "prefork": 2}),
                                    tmp_path, pool, concurrency=2, tasks=20)
    assert result.shared is shared
    assert result.processes_seen == (1 if shared else 2)


@pytest.mark.slow
@pytest.mark.parametrize(("pool", "killed"), [("threads", False), ("prefork", True)])
def test_a_runaway_is_stopped_on_prefork_and_runs_on_threads(
    pool: str, killed: bool, settings: Settings, tmp_path: Path
) -> None:
    attempts = killability.stop_runaway(settings, tmp_path, pool)
    assert [a.killed for a in attempts] == [killed, killed]


def test_a_crashing_prefork_child_loses_nothing_with_acks_late(settings: Settings, tmp_path: Path) -> None:
    result = isolation.crash_loss(settings, tmp_path, "prefork", acks_late=True, concurrency=2, tasks=12)
    assert not result.worker_died
    assert (result.completed, result.lost) == (13, 0)
