"""The shape of results.json (and of a claims run's side.json), typed, in one place.

The runner writes these, and the report, the verdicts and the plots read them: with one typed
schema mypy checks every key on both sides. Numbers are rounded floats or None (never NaN: JSON
has no NaN). Latency percentiles are in seconds.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from tasks.ledger import AccountingCounts


class Percentiles(TypedDict):
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None


class RedisCalls(TypedDict):
    celery_commands_per_task: float | None
    harness_commands_per_task: float | None
    calls: dict[str, int]


class FlowerRun(TypedDict):
    flower_succeeded: int
    ledger_completed: int
    match: bool


class FlowerChecks(TypedDict):
    checked: int
    mismatches: int
    runs: list[FlowerRun]


class WallRates(TypedDict):
    wall_per_s: float | None
    wall_min: float | None
    wall_max: float | None


class CellResult(AccountingCounts):
    """One measured cell: repetitions reduced to median and range, every task accounted for."""

    id: str
    label: str
    pool: str
    python: str | None  # the worker's interpreter (`3.13.5t` for a free-threaded one)
    pool_label: str  # `threads`, or `threads@3.13t` (config.pools.pool_label)
    gil_enabled: NotRequired[bool | None]  # as the worker reported it in `inspect stats`; None: it did not say
    workload: str
    concurrency: int
    tasks: int
    repetitions: int
    untimed_repetitions: int
    throughput_per_s: float | None  # median drain rate (first start to last finish)
    throughput_min: float | None
    throughput_max: float | None
    ideal_per_s: float | None  # the model (tasks.workloads) with the cell's own measured task CPU
    efficiency: float | None  # median over repetitions of throughput / ideal
    usable_cores: int  # U of the model: cores the pool can keep busy with Python code
    worker_memory_mb: float | None  # PSS summed over the worker's whole tree (stack.processes.tree_memory_mb)
    startup_s: float | None
    p50_s: float | None  # end to end: sent -> finished
    p95_s: float | None
    p99_s: float | None
    params: dict[str, Any]
    arrival: str
    arrival_rate_per_s: float | None
    timing: bool
    worker_args: list[str]
    settings: dict[str, Any]
    attached: bool
    wall_per_s: float | None
    wall_min: float | None
    wall_max: float | None
    cpu_cores: float | None  # the worker tree's CPU time over the drain time
    others_cores: float | None  # cores busy outside the worker meanwhile (harness, Redis, other work)
    task_cpu_s: float | None  # median over repetitions of one task's mean CPU time in the worker
    ideal_before_run_per_s: float | None
    efficiency_before_run: float | None
    efficiency_runs: list[float | None]
    queue_wait: Percentiles
    run_time: Percentiles
    io_observed: Percentiles  # the waiting tasks observed (workloads that report `io_s`)
    io_inflation: float | None  # observed / requested waiting, median task
    latency_server_cpu_s: float | None  # the latency server's own CPU over the cell (it must stay small)
    latency_server_cores: NotRequired[float | None]  # that CPU over the cell's drain time: cores it kept busy
    rtt_ms: NotRequired[float]  # round trip added between the worker and Redis (0: direct)
    prefetch_multiplier: NotRequired[int | None]  # the cell's own worker_prefetch_multiplier, if it set one
    relay_cpu_s: NotRequired[float | None]  # the delaying relay's CPU over the cell (it must not be the limit)
    relay_cpu_us_per_task: NotRequired[float | None]
    redis_cpu_us_per_task: NotRequired[float | None]  # Redis' CPU per task (INFO cpu), the ledger's record included
    redis: RedisCalls
    flower: FlowerChecks | None
    throughput_runs: list[float | None]
    ledger_write_errors: int
    untimed: NotRequired[WallRates]  # a paired cell's timing-off twin
    overhead: NotRequired[float | None]
    overhead_runs: NotRequired[list[float | None]]
    healthy: bool  # no task lost, duplicated or left queued


class EnqueueRates(TypedDict):
    median_per_s: float
    min_per_s: float
    max_per_s: float


class EnqueueResult(TypedDict):
    tasks: int
    repetitions: int
    used: str
    methods: dict[str, EnqueueRates]


class RedisCeiling(TypedDict):
    method: str
    ops_per_s: float
    per_command: dict[str, float]
    celery_commands_per_task: float | None
    ceiling_tasks_per_s: float | None


class ExperimentInfo(TypedDict):
    name: str
    description: str
    digest: str
    cells_planned: int


class Delay(TypedDict):
    """How the workers' broker RTT was made, and the relay's calibration (experiments.delay)."""

    mechanism: str  # "relay"
    netem_available: bool
    why: str
    calibration: list[dict[str, Any]]  # stack.relay.calibrate, one per RTT
    round_trips: dict[str, dict[str, Any]]  # pool -> experiments.round_trips.summarise, at the largest RTT


class Interpreter(TypedDict):
    """An interpreter the run used (results.json's `environment.interpreters`), as it reported itself.

    The harness describes itself in-process; each worker in `inspect stats` (tasks.interpreter), so
    `gil_enabled` is the state a worker measured under, not what its build promises.
    """

    python: str  # `3.11.2`, or `3.13.5t` for a free-threaded build
    free_threaded_build: bool
    gil_enabled: bool | None  # None: a worker that did not report it
    used_by: list[str]  # "harness", and the pools whose workers ran on it


class SingleThreadCost(TypedDict):
    """One `square(work)` call's CPU time alone on one thread, per interpreter the run's pools use.

    What a free-threaded build costs each task before any parallelism (experiments.inprocess).
    """

    work: int
    cpu_ms: dict[str, float]  # interpreter (`3.11.2`, `3.13.5t`) -> milliseconds


class Results(TypedDict):
    experiment: ExperimentInfo
    environment: dict[str, Any]  # experiments.environment.describe, shown as a table
    cells: list[CellResult]
    enqueue: EnqueueResult | None
    redis: RedisCeiling | None
    delay: NotRequired[Delay]  # experiments with cells behind a delaying relay


class InProcessRow(TypedDict):
    pattern: str
    workers: int
    tasks: int
    throughput_per_s: float
    throughput_min: float
    throughput_max: float


class StopAttemptRow(TypedDict):
    pool: str
    method: str
    reported_state: str
    ran_s: float | None
    killed: bool


class SharedStateRow(TypedDict):
    pool: str
    tasks: int
    processes_seen: int
    largest_count_seen: int
    shared: bool


class CrashRow(TypedDict):
    pool: str
    acks_late: bool
    tasks: int
    completed: int
    lost: int
    worker_died: bool
    seconds_to_recover: float


class RoutingRow(TypedDict):
    scenario: str
    tasks: int
    completed: int
    lost: int
    throughput_per_s: float


class SideResults(TypedDict):
    """A claims run's side experiments (side.json)."""

    cores: int
    inprocess: list[InProcessRow]
    runaway: list[StopAttemptRow]
    shared_state: list[SharedStateRow]
    crash: list[CrashRow]
    mixed: list[RoutingRow]
    inprocess_ft: NotRequired[list[InProcessRow]]  # the article's patterns on the free-threaded interpreter
    freethreaded_python: NotRequired[str]  # e.g. 3.13.5t


class ConvoyPoint(TypedDict):
    """Short socket tasks sharing a worker with a share of CPU tasks (experiments.convoy)."""

    pool: str
    concurrency: int
    cpu_share: float
    rate_per_s: float
    io_tasks: int
    cpu_tasks: int
    io_requested_s: float
    io_p50_s: float | None  # the socket tasks' observed waiting
    io_p99_s: float | None
    io_tasks_p99_s: float | None  # the socket tasks' end to end (sent -> finished)
    cpu_tasks_p99_s: float | None
    worker_memory_mb: float
    lost: int
    duplicated: int


class Verdict(TypedDict):
    claim: int
    verdict: str  # "holds", "partly", "does not hold"
    figure: float | None
    unit: str
    detail: str
    interpreter: NotRequired[str]  # claim 1 is judged per interpreter
    free_threaded: NotRequired[bool]  # judged on the free-threaded interpreter


# -- lab advise: advice.json (experiments.advise measures, report.advise judges and writes) ----------

class AdviceConstraints(TypedDict):
    max_memory_mb: float | None
    p95_ms: float | None


class AdviceEnvironment(TypedDict):
    cores: int | None
    python: str
    measured_at: str  # UTC, ISO 8601


class AdviceProfile(TypedDict):
    """One call of the target, measured alone (experiments.advise_profile.Profile), and the machine's cores."""

    calls: int
    wall_s: float  # mean per call
    cpu_s: float  # mean thread CPU per call
    io_s: float  # mean wall - cpu: waiting
    wall_p95_s: float
    peak_mb: float
    import_mb: float
    threads: int  # threads the GIL phase ran
    gil_phase_per_s: float
    gil_cores: float
    gil_share: float
    gil_measured: bool
    process_cores: float
    busy_share: float  # cpu / wall
    cores: int | None


class Prediction(TypedDict):
    """One pool x concurrency as the model predicts it (experiments.advise_model.predict)."""

    pool: str
    concurrency: int
    usable_cores: float
    overhead_ms: float  # the worker's own serial work per task the prediction assumed
    predicted_per_s: float
    predicted_p95_s: float
    predicted_memory_mb: float


class CalibratedPrediction(Prediction):
    """The prediction again with the worker's own cost per task, measured on it just before (noop/s)."""

    predicted_before_per_s: float  # the shortlist's prediction, with the pool's figure from config.pools
    noop_per_s: float


class ProvedRow(CalibratedPrediction):
    """A shortlisted configuration proved on a real worker: its measurements beside its prediction."""

    measured_per_s: float | None
    measured_min: float | None
    measured_max: float | None
    measured_p95_s: float | None  # a task's run time in the worker
    measured_memory_mb: float | None
    efficiency: float | None  # measured / predicted
    tasks: int
    repetitions: int
    completed: int
    failed: int
    lost: int
    duplicated: int
    healthy: bool
    startup_s: float | None
    worker_cpu_cores: float | None
    task_cpu_s: float | None  # a task's CPU time in the worker
    task_cpu_ratio: float | None  # that over the profile's
    why_missed: NotRequired[str | None]  # report.verdicts.advice_miss_reason, when the model missed


class Recommendation(TypedDict):
    """The proved configuration to use (report.verdicts.recommend); pool None when none met the constraints."""

    pool: str | None
    concurrency: int | None
    decided_by: str
    prediction_holds: bool | None
    miss: float | None  # measured / predicted - 1
    predicted_choice: str | None  # what the predictions alone would have chosen
    measured_per_s: NotRequired[float]
    predicted_per_s: NotRequired[float]


class Advice(TypedDict):
    target: str
    args: list[Any]
    kwargs: dict[str, Any]
    constraints: AdviceConstraints
    environment: AdviceEnvironment
    profile: AdviceProfile
    predictions: list[Prediction]
    proved: list[ProvedRow]


class JudgedAdvice(Advice):
    """advice.json as written: the advice with its recommendation."""

    recommendation: Recommendation


# -- lab demo and lab soak: their summary.json ------------------------------------------------------

class DemoRun(TypedDict):
    pool: str
    workload: str
    concurrency: int
    tasks: int
    completed: int
    failed: int
    lost: int
    throughput_per_s: float  # drain rate of the burst
    ideal_per_s: float
    efficiency: float | None
    worker_memory_mb: float
    task_cpu_ms: float


class DemoSummary(TypedDict):
    environment: dict[str, Any]  # experiments.environment.describe
    runs: list[DemoRun]


class SoakEvent(TypedDict):
    at_s: float
    event: str
    ended: int | None  # tasks ended when it happened


class SoakSummary(AccountingCounts):
    elapsed_s: float
    tasks_per_s: float
    events: list[SoakEvent]
    tasks_requested: int
    square_work: int
    visibility_timeout_s: int
    concurrency: dict[str, int]
