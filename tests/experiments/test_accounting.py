"""A task lost on purpose (its message deleted from the prefilled queue) is reported as lost."""

from pathlib import Path

import pytest
import redis

from config import Settings
from experiments import targets
from experiments.measure import Context, run_repetition
from experiments.spec import parse
from experiments.summary import cell_result

CELL = parse("""
[[cells]]
pools = ["threads"]
concurrency = [2]
workload = "noop"
tasks = 20
repetitions = 1
""").cells[0]


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["threads", "threads-ft"])
def test_a_deleted_message_is_reported_lost_and_marks_the_cell(
        pool: str, settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    ctx = Context(settings, redis_client, tmp_path, ideal=lambda cell, c: None, stall_s=1.0)
    queue = settings.queue_for(pool)

    def lose_one() -> None:
        assert redis_client.llen(queue) == CELL.tasks
        assert redis_client.rpop(queue) is not None

    with targets.started(settings, pool, 2, (), tmp_path / "worker.log") as worker:
        rep = run_repetition(ctx, CELL, settings, worker, between=lose_one)
        clean = run_repetition(ctx, CELL, settings, worker)

    acc = rep.accounting
    assert (acc.sent, acc.completed, acc.lost, acc.queued, acc.duplicated) == (20, 19, 1, 0, 0)
    assert clean.accounting.lost == 0 and clean.accounting.completed == 20

    from experiments.measure import CellRun

    result = cell_result(CellRun(CELL, worker, None, None, [rep, clean]))
    assert (result["lost"], result["healthy"]) == (1, False)
