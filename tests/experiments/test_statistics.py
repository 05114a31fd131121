"""The reduction of repetitions to a cell, against inputs whose answers are known."""

from config import Settings
from experiments import redis_stats
from experiments.flower_check import succeeded_in
from experiments.measure import CellRun, Repetition
from experiments.spec import Cell, parse
from experiments.summary import cell_result
from experiments.targets import Target
from tasks.ledger import Accounting, Timings, timing_line


def one_cell(pool: str, concurrency: int, workload: str, params: str, repetitions: int) -> Cell:
    """The single cell of a one-block experiment file."""
    return parse(f"""
[[cells]]
pools = ["{pool}"]
concurrency = [{concurrency}]
workload = "{workload}"
params = {params}
tasks = 100
repetitions = {repetitions}
""").cells[0]


CELL = one_cell("threads", 4, "sleep", "{ seconds = 0.1 }", 3)
SQUARE = one_cell("prefork", 1, "square", "{ work = 1000 }", 2)


def timings(n: int, span: float, wait: float, run: float, cpu: float | None = None) -> Timings:
    """n tasks evenly started over `span` seconds, each waiting `wait`, running `run`, using `cpu`."""
    t = Timings()
    for i in range(n):
        started = 1000.0 + i * span / (n - 1)
        t.add(timing_line(started - wait, started, started + run, run if cpu is None else cpu, None, "SUCCESS", "w@h"))
    return t


def repetition(span: float, lost: int = 0, duplicated: int = 0) -> Repetition:
    t = timings(100 - lost, span, wait=0.5, run=0.1)
    acc = Accounting(sent=100, completed=100 - lost, failed=0, duplicated=duplicated, queued=0, lost=lost)
    calls = {"brpop": 100, "lpush": 100, "multi": 200, "hincrby": 200, "rpush": 100}
    return Repetition(acc, t, t.drain_rate(), 90.0, 0.5, 40.0 + span, calls)


def run_of(*reps: Repetition) -> CellRun:
    target = Target(Settings(), None, "threads@h", "threads", 4, 1.5, None)
    return CellRun(CELL, target, 40.0, None, list(reps))


def test_throughput_is_the_median_of_repetitions_with_min_and_max() -> None:
    # 100 tasks, first start to last finish = span + 0.1 s run time
    result = cell_result(run_of(repetition(2.4), repetition(1.9), repetition(4.9)))
    assert result["throughput_per_s"] == 40.0  # 100 / (2.4 + 0.1)
    assert result["throughput_min"] == 20.0  # 100 / 5.0
    assert result["throughput_max"] == 50.0  # 100 / 2.0
    assert result["efficiency"] == 1.0
    assert result["throughput_runs"] == [40.0, 50.0, 20.0]
    assert result["worker_memory_mb"] == 44.9  # the largest repetition
    assert result["startup_s"] == 1.5


def test_the_cpu_ideal_of_each_repetition_comes_from_its_own_tasks_cpu_time() -> None:
    """A slower minute (more CPU per task) lowers that repetition's ideal, not its efficiency."""
    acc = Accounting(sent=100, completed=100, failed=0, duplicated=0, queued=0, lost=0)
    fast = timings(100, 2.475, wait=0.0, run=0.025, cpu=0.02)  # 40/s against an ideal of 50/s
    slow = timings(100, 4.95, wait=0.0, run=0.05, cpu=0.04)  # 20/s against 25/s
    reps = [Repetition(acc, t, t.drain_rate(), 0.0, None, None, {}) for t in (fast, slow)]
    target = Target(Settings(), None, "prefork@h", "prefork", 1, 1.0, None)
    result = cell_result(CellRun(SQUARE, target, 30.0, None, reps))
    assert result["efficiency_runs"] == [0.8, 0.8]
    assert result["efficiency"] == 0.8
    assert result["ideal_per_s"] == 37.5  # median of 50 and 25
    assert result["task_cpu_s"] == 0.03
    assert (result["ideal_before_run_per_s"], result["efficiency_before_run"]) == (30.0, 1.0)  # 30/s median


def test_a_paired_cell_gives_the_overhead_of_each_pair_and_their_median() -> None:
    acc = Accounting(sent=100, completed=100, failed=0, duplicated=0, queued=0, lost=0)

    def rep(wall: float) -> Repetition:
        return Repetition(acc, Timings(), float("nan"), wall, None, None, {})

    timed, untimed = [rep(90.0), rep(80.0), rep(99.0)], [rep(100.0), rep(100.0), rep(100.0)]
    target = Target(Settings(), None, "threads@h", "threads", 4, 1.5, None)
    result = cell_result(CellRun(CELL, target, 40.0, None, timed, 0, untimed))
    assert result["overhead_runs"] == [0.1, 0.2, 0.01]
    assert result["overhead"] == 0.1
    assert result["untimed"] == {"wall_per_s": 100.0, "wall_min": 100.0, "wall_max": 100.0}
    assert (result["repetitions"], result["untimed_repetitions"], result["sent"]) == (3, 3, 600)


def test_latency_percentiles_are_over_all_repetitions() -> None:
    result = cell_result(run_of(repetition(2.4), repetition(1.9), repetition(4.9)))
    assert abs(result["p50_s"] - 0.6) / 0.6 < 0.015
    assert abs(result["queue_wait"]["p99_s"] - 0.5) / 0.5 < 0.015
    assert abs(result["run_time"]["p95_s"] - 0.1) / 0.1 < 0.015


def test_accounting_sums_and_marks_an_unhealthy_cell() -> None:
    healthy = cell_result(run_of(repetition(2.0), repetition(2.0), repetition(2.0)))
    assert (healthy["sent"], healthy["completed"], healthy["lost"], healthy["healthy"]) == (300, 300, 0, True)
    sick = cell_result(run_of(repetition(2.0), repetition(2.0, lost=1), repetition(2.0, duplicated=2)))
    assert (sick["completed"], sick["lost"], sick["duplicated"], sick["healthy"]) == (299, 1, 2, False)


def test_redis_commands_per_task_split_celery_from_harness() -> None:
    result = cell_result(run_of(repetition(2.0), repetition(2.0), repetition(2.0)))
    assert result["redis"]["celery_commands_per_task"] == 4.0  # brpop + lpush + 2 multi
    assert result["redis"]["harness_commands_per_task"] == 3.0  # 2 hincrby + rpush
    assert redis_stats.ceiling(80_000, 4.0) == 20_000
    assert redis_stats.delta({"get": 5, "set": 1}, {"get": 7, "set": 1, "del": 2}) == {"get": 2, "del": 2}


def test_counts_only_repetitions_fall_back_to_the_wall_clock_rate() -> None:
    acc = Accounting(sent=100, completed=100, failed=0, duplicated=0, queued=0, lost=0)
    rep = Repetition(acc, Timings(), float("nan"), 90.0, None, None, {})
    result = cell_result(run_of(rep, rep, rep))
    assert result["throughput_per_s"] == 90.0
    assert result["p50_s"] is None and result["cpu_cores"] is None and result["worker_memory_mb"] is None


def test_flower_metrics_are_summed_per_worker() -> None:
    text = """# HELP flower_events_total Number of events
# TYPE flower_events_total counter
flower_events_total{task="tasks.noop",type="task-succeeded",worker="threads@h"} 7.0
flower_events_total{task="tasks.sleep",type="task-succeeded",worker="threads@h"} 3.0
flower_events_total{task="tasks.sleep",type="task-received",worker="threads@h"} 10.0
flower_events_total{task="tasks.sleep",type="task-succeeded",worker="prefork@h"} 4.0
"""
    assert succeeded_in(text, "threads@h") == 10.0
    assert succeeded_in(text, "solo@h") == 0.0
