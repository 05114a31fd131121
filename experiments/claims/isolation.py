"""Claim 6: threads share memory, processes do not; a crash takes down what shares it.

Two small experiments on real workers:

* `shared_state`: `tasks.bump` appends to a module-level list. On threads every
  task sees the one list (one pid, counts up to N); on prefork each child counts
  on its own copy.
* `crash_loss`: `tasks.crash_once` calls `os._exit` in the middle of a run of
  sleep tasks. Prefork loses one child (the parent replaces it); threads lose the
  whole worker and everything it had taken from the queue. With `acks_late` those
  messages come back after the visibility timeout (0 lost after a restart);
  with early acks they are gone, and we count them.
"""

from __future__ import annotations

import time
from pathlib import Path

from config import Settings
from experiments.schema import CrashRow, SharedStateRow
from producer.publish import SendPlan, publish
from stack.processes import wait_until
from stack.workers import Worker
from tasks import connections, ledger, probes
from tasks.app import MAX_RESTORE_INTERVAL_S

CRASH_VISIBILITY_TIMEOUT = 5
# Workers sweep expired unacked messages back every visibility_timeout / 5 seconds, at most every
# MAX_RESTORE_INTERVAL_S (tasks.app): a crashed worker's tasks come back within vt + one sweep.
RESTORE_INTERVAL_S = max(1, min(MAX_RESTORE_INTERVAL_S, CRASH_VISIBILITY_TIMEOUT // 5))


def shared_state(settings: Settings, run_dir: Path, pool: str, concurrency: int = 4,
                 tasks: int = 40) -> SharedStateRow:
    """`tasks` bumps on one worker: shared when there was one list for all of them (one process, and
    the count reached every task)."""
    worker = Worker(settings, pool, concurrency, run_dir / f"shared-{pool}.log").start()
    try:
        with connections.client_app(settings) as app:
            pending = [app.send_task(probes.BUMP_TASK, queue=settings.queue_for(pool)) for _ in range(tasks)]
            values = [result.get(timeout=60) for result in pending]
            pending.clear()  # results are released while their backend is still open
    finally:
        worker.stop()
    processes, largest = len({v["pid"] for v in values}), max(v["seen"] for v in values)
    return {"pool": pool, "tasks": tasks, "processes_seen": processes, "largest_count_seen": largest,
            "shared": processes == 1 and largest == tasks}


def crash_loss(settings: Settings, run_dir: Path, pool: str, acks_late: bool, concurrency: int = 4,
               tasks: int = 40, seconds: float = 0.2) -> CrashRow:
    """Crash the interpreter mid-run; restart the worker if it died; count what never finished."""
    s = settings.replace(acks_late=acks_late, visibility_timeout=CRASH_VISIBILITY_TIMEOUT, results=False)
    log = run_dir / f"crash-{pool}-{'late' if acks_late else 'early'}.log"
    marker = run_dir / f"crash-{pool}-{acks_late}.marker"
    marker.unlink(missing_ok=True)
    worker = Worker(s, pool, concurrency, log).start()
    first = SendPlan("sleep", tasks // 4, (pool,), {"seconds": seconds})
    rest = SendPlan("sleep", tasks - first.count, (pool,), {"seconds": seconds}, run_id=first.run_id)
    with connections.client_app(s) as app:
        publish(app, s, first)
        app.send_task(probes.CRASH_ONCE_TASK, args=[str(marker)], queue=s.queue_for(pool),
                      headers=ledger.run_headers(first.run_id, timing=False))
        publish(app, s, rest)
    started = time.monotonic()
    wait_until(marker.exists, 60, "the crash task to run")
    died = _wait_for_exit(worker, 5.0)
    if died:
        worker = Worker(s, pool, concurrency, log).start()
    with connections.redis_client(s.require_broker()) as client:
        run = ledger.RunLedger(client, first.run_id)
        run.wait(tasks + 1, timeout=CRASH_VISIBILITY_TIMEOUT + 2 * RESTORE_INTERVAL_S + tasks * seconds, poll_s=0.1)
        recovered = time.monotonic() - started
        worker.stop()
        accounting = run.account(tasks + 1, [s.queue_for(pool)])
    return {"pool": pool, "acks_late": acks_late, "tasks": tasks, "completed": accounting.completed,
            "lost": accounting.lost, "worker_died": died, "seconds_to_recover": recovered}


def _wait_for_exit(worker: Worker, timeout: float) -> bool:
    process = worker.process
    assert process is not None
    try:
        wait_until(lambda: process.poll() is not None, timeout, "worker exit")
    except TimeoutError:
        return False
    worker.process = None
    return True
