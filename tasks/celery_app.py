"""The worker's Celery app with the lab's tasks, under stable names (`tasks.square`...).

`celery -A tasks.celery_app worker` imports this module in the worker and in each
prefork child, so the tasks live here, not in test files. Importing it reads
settings from the environment but opens no connection. Producers send tasks by
name and never import it.
"""

from __future__ import annotations

from config import Settings
from config.constants import DEFAULT_SQUARE_WORK
from tasks import claims, faults, ledger, transport
from tasks import work as workloads
from tasks.app import make_app

app = make_app(Settings.from_env())
ledger.install(app)
transport.install(app)  # workers take messages atomically: none lost between pop and ack record
faults.register(app)  # tasks.spin, tasks.hold: only for fault and pool-limit tests


@app.task(name="tasks.square")
def square(x: int, work: int = DEFAULT_SQUARE_WORK) -> int:
    return workloads.square(x, work)


@app.task(name="tasks.sleep")
def sleep(seconds: float = 0.1) -> dict[str, float]:
    return workloads.sleep(seconds)


@app.task(name="tasks.noop")
def noop() -> None:
    return workloads.noop()


@app.task(name="tasks.bump")
def bump() -> dict[str, int]:
    return claims.bump()


@app.task(name="tasks.crash_once")
def crash_once(marker: str) -> str:
    return claims.crash_once(marker)
