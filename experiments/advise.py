"""`lab advise TARGET`: profile the user's callable, predict every pool x concurrency, then prove
the shortlist on real workers, as the experiments measure.

Step 1 (experiments.advise_profile) and step 2 (experiments.advise_model) need no broker. Step 3
starts a private embedded Redis and, for each shortlisted configuration, a real worker serving
`tasks.advised` (LAB_ADVISE_TARGET: the worker imports the target itself), prefills the queue,
drains it, and accounts for every task by id through the ledger (experiments.measure). A latency
server of advise's own runs throughout, its address in LAB_LATENCY_SERVER, for targets that wait
on a socket (examples/io_socket.py). Judging the result (the recommendation, the prediction's
miss) is report.verdicts'; this module only measures.

Every process advise starts is stopped on the way out, whatever happened: bad input is one line
and exit 2, with no worker left behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from config import Settings
from config.settings import check_target_spec
from experiments.advise_model import Constraints, predict, predictions, shortlist
from experiments.advise_profile import AdviseError, Profile, profile
from experiments.measure import Context, measure_cell, run_repetition, worker_for
from experiments.progress import CellProgress
from experiments.schema import Advice, CalibratedPrediction, CellResult, Prediction, ProvedRow
from experiments.spec import Arrival, Cell
from experiments.summary import cell_result
from experiments.targets import Target
from stack import processes
from stack.latency_server import LatencyServer
from stack.redis_server import RedisServer
from tasks import connections
from tasks.workloads import Costs, Workload, advised

REPETITIONS = 2
MAX_TASKS = 20_000
CALIBRATION_TASKS = 300  # about a second of noop


@dataclass(frozen=True)
class Request:
    """What the user asked: the target, its JSON arguments, and the constraints."""

    target: str
    args: list[Any]
    kwargs: dict[str, Any]
    calls: int = 50
    constraints: Constraints = field(default_factory=Constraints)
    timeout_s: float = 30.0
    prove_s: float = 10.0  # of draining per configuration, at its predicted rate


def parse_request(target: str, args: str, kwargs: str, **options: Any) -> Request:
    """Check everything a user can get wrong before anything starts (AdviseError, one line)."""
    try:
        check_target_spec(target)
    except ValueError as exc:
        raise AdviseError(str(exc)) from None
    return Request(target, _json(args, "--args", list), _json(kwargs, "--kwargs", dict), **options)


def run_dir_for(base: Path, target: str) -> Path:
    """results/advise/<module.name>/<timestamp>/: logs, the private Redis, advice.json and advice.md."""
    return base / target.replace(":", ".") / time.strftime("%Y%m%d-%H%M%S")


def _json(text: str, option: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise AdviseError(f"{option} is not JSON: {exc}") from None
    if not isinstance(value, kind):
        expected = "a JSON list" if kind is list else "a JSON object"
        raise AdviseError(f"{option} must be {expected}, got {type(value).__name__} {text[:60]!r}")
    return value


def run_advice(settings: Settings, request: Request, run_dir: Path, console: Console) -> Advice:
    """Profile, predict, prove; the advice as one JSON-ready dict (judged by report.verdicts)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with LatencyServer(run_dir / "latency-server.log") as latency:
        settings = _advise_settings(settings, request, f"{latency.host}:{latency.port}", run_dir)
        console.print(f"profiling {request.target}: {request.calls} calls, then on threads ...")
        env = processes.child_env(settings)
        measured = profile(request.target, request.args, request.kwargs, request.calls, request.timeout_s, env,
                           run_dir / "profile.log")
        rows = predictions(measured)
        chosen = shortlist(rows, request.constraints)
        if not chosen:
            raise AdviseError(f"no configuration is predicted to meet {_constraints_text(request.constraints)}")
        proved = _prove(settings, request, measured, chosen, run_dir, latency, console)
    return {
        "target": request.target, "args": request.args, "kwargs": request.kwargs,
        "constraints": {"max_memory_mb": request.constraints.max_memory_mb,
                        "p95_ms": request.constraints.p95_s * 1000 if request.constraints.p95_s else None},
        "environment": {"cores": os.cpu_count(), "python": platform.python_version(),
                        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "profile": measured.as_dict(os.cpu_count()),
        "predictions": rows,
        "proved": proved,
    }  # fmt: skip


def _constraints_text(constraints: Constraints) -> str:
    parts = [f"--max-memory-mb {constraints.max_memory_mb:g}" if constraints.max_memory_mb is not None else "",
             f"--p95-ms {constraints.p95_s * 1000:g}" if constraints.p95_s is not None else ""]
    return " and ".join(part for part in parts if part) or "the constraints"


def _advise_settings(settings: Settings, request: Request, latency: str, run_dir: Path) -> Settings:
    """The experiments' measuring settings (no events, no results, quiet logs), advise's own queues."""
    return settings.replace(advise_target=request.target, latency_server=latency, events=False, results=False,
                            loglevel="WARNING", probes=False, state_dir=run_dir / ".lab",
                            queue_prefix=f"advise{int(time.time() * 1000) % 10**9:x}")


def _prove(settings: Settings, request: Request, measured: Profile, chosen: list[Prediction], run_dir: Path,
           latency: LatencyServer, console: Console) -> list[ProvedRow]:
    """Each shortlisted configuration on a real worker: its measured row beside its prediction."""
    workload = advised(request.args, request.kwargs, Costs(cpu_s=measured.cpu_s, io_s=measured.io_s))
    cells = [_cell(number, row, workload, request.prove_s) for number, row in enumerate(chosen, 1)]
    predicted: dict[str, Prediction] = {cell.id: row for cell, row in zip(cells, chosen, strict=True)}
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    with _broker(settings, run_dir) as settings, \
            connections.redis_client(settings.require_broker(), timeout=30) as client:
        ctx = Context(settings, client, logs, lambda cell, _c: predicted[cell.id]["predicted_per_s"],
                      latency=latency)
        rows = []
        with CellProgress(console, cells, cells, ctx.ideal) as progress:
            ctx.on_progress = progress.tasks_done
            for cell in cells:
                progress.start(cell)
                with worker_for(ctx, cell, settings) as target:
                    calibrated = _calibrated(ctx, cell, target, measured, predicted[cell.id])
                    predicted[cell.id] = calibrated
                    result = cell_result(measure_cell(ctx, cell, shared=target))
                progress.finish(cell, result)
                rows.append(_measured_row(calibrated, result, measured))
    return rows


def _calibrated(ctx: Context, cell: Cell, target: Target, measured: Profile, row: Prediction) -> CalibratedPrediction:
    """The prediction again, with the worker's own cost per task measured on this very worker.

    A burst of `noop` tasks (nothing to do: what is left is Celery's consumer, dispatch, ack and the
    ledger's record) on the worker at its concurrency, just before the target's burst: 1 / its rate
    is the worker's serial work per task. The figure in config.pools was measured at one
    concurrency on a quiet machine; at c=32, or while another program takes a core, it differs.
    The shortlist's prediction (the pool's figure) is kept beside it.
    """
    noop = Cell(index=cell.index, label="calibrate", pool=cell.pool, concurrency=cell.concurrency, workload="noop",
                params=(), tasks=max(CALIBRATION_TASKS, 8 * cell.concurrency), repetitions=1)
    rate = run_repetition(ctx, noop, ctx.settings, target).drain_per_s
    overhead = 1 / rate if rate > 0 and math.isfinite(rate) else None
    again = predict(measured, cell.pool, cell.concurrency, overhead_s=overhead)
    return {**again, "predicted_before_per_s": row["predicted_per_s"], "noop_per_s": round(rate, 1)}


def _cell(number: int, row: Prediction, workload: Workload, prove_s: float) -> Cell:
    """A prefilled burst lasting about `prove_s` at the predicted rate, in REPETITIONS repetitions."""
    per_rep = math.ceil(row["predicted_per_s"] * prove_s / REPETITIONS)
    tasks = min(MAX_TASKS, max(per_rep, 4 * row["concurrency"], 10))
    return Cell(index=number, label="advise", pool=row["pool"], concurrency=row["concurrency"], workload="advised",
                params=(), tasks=tasks, repetitions=REPETITIONS, arrival=Arrival("prefill"), definition=workload)


def _measured_row(row: CalibratedPrediction, result: CellResult, measured: Profile) -> ProvedRow:
    """The prediction with what the worker did: tasks/s, p95 run time, memory, and the clues to a miss."""
    worker_cpu = result["task_cpu_s"]
    return {**row,
            "measured_per_s": result["throughput_per_s"], "measured_min": result["throughput_min"],
            "measured_max": result["throughput_max"], "measured_p95_s": result["run_time"]["p95_s"],
            "measured_memory_mb": result["worker_memory_mb"], "efficiency": result["efficiency"],
            "tasks": result["tasks"], "repetitions": result["repetitions"], "completed": result["completed"],
            "failed": result["failed"], "lost": result["lost"], "duplicated": result["duplicated"],
            "healthy": result["healthy"], "startup_s": result["startup_s"], "worker_cpu_cores": result["cpu_cores"],
            "task_cpu_s": worker_cpu,
            "task_cpu_ratio": round(worker_cpu / measured.cpu_s, 3) if worker_cpu and measured.cpu_s > 0 else None}


@contextlib.contextmanager
def _broker(settings: Settings, run_dir: Path) -> Iterator[Settings]:
    """A private embedded Redis, whatever LAB_BROKER_URL says: advise's workers share nothing."""
    with RedisServer(run_dir / "redis") as server:
        yield settings.replace(broker_url=server.url)
