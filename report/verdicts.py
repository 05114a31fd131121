"""Every verdict the lab gives, in one place: the report's headline and the article's six claims.

Inputs are results.json's cells (and a claims run's side.json), so a verdict can be recomputed
from files alone. CPU-bound comparisons compare cores kept busy with task code (throughput x the
CPU time of one task), not raw rates: cells run minutes apart and this machine's speed drifts by
up to +-20 % in that time (a threads cell at c=8 did 28 % more squares/s than at c=1 only because
the CPU had sped up; both kept 0.90 cores busy). The report's headline and claim 1 therefore say
the same thing. `lab advise`'s recommendation and its prediction check are judged here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypedDict

from config.pools import POOL_NAMES
from experiments.advise_model import NEAR_BEST, Constraints, rank, violation
from experiments.schema import (
    AdviceProfile,
    CellResult,
    CrashRow,
    InProcessRow,
    Prediction,
    ProvedRow,
    Recommendation,
    Results,
    SharedStateRow,
    SideResults,
    StopAttemptRow,
    Verdict,
)
from report.findings import accounting

MODEL_TOLERANCE = 0.15  # a cell further than this from its model's ideal is a finding, not noise
LATENCY_SERVER_MAX_CORES = 0.5  # the latency server busier than this competes with the worker it serves
# The ledger's instrumentation may cost a cell at most this share of its wall-clock rate (timing on
# against off): past it, the harness would be part of what the cell measures.
HARNESS_OVERHEAD_GOAL = 0.05
# A worker that kept fewer than this share of the model's usable cores busy was short of cores: the
# model counts on all of them, so a miss then comes from the machine, not from the pool.
CORES_KEPT_BUSY = 0.85
# A task whose CPU time in the worker differs from its profile by more than this explains a missed
# prediction by itself: the prediction was made with the profile's CPU time.
TASK_CPU_DRIFT = 0.10


class CpuVerdict(TypedDict):
    concurrency: int
    prefork_per_s: float | None
    threads_per_s: float | None
    ratio: float  # cores kept busy with tasks, prefork over threads
    prefork_efficiency: float | None
    threads_efficiency: float | None


class IoVerdict(TypedDict):
    concurrency: int
    threads_per_s: float | None
    threads_efficiency: float | None
    min_threads_efficiency: float | None
    min_at: int
    threads_memory_mb: float | None
    prefork_memory_mb: float | None
    prefork_efficiency: float | None


def task_cores(cell: CellResult) -> float:
    """Cores' worth of task code a cell kept busy: throughput x the CPU time of one of its tasks.

    Falls back to the raw throughput when a cell has no task CPU time.
    """
    return _figure(cell["throughput_per_s"]) * (cell.get("task_cpu_s") or 1.0)


def _figure(value: float | None) -> float:
    """A figure a verdict is judged on: a cell that did not measure it cannot be judged."""
    if value is None:
        raise ValueError("a cell lacks a figure its verdict needs (see its worker log)")
    return value


# -- the report's headline -----------------------------------------------------------------------

def _capacity(cells: Iterable[CellResult]) -> list[CellResult]:
    """Capacity cells on the run's common settings (no per-cell knob)."""
    return [c for c in cells if c["arrival"] != "rate" and c["timing"] and c["throughput_per_s"]
            and not c.get("settings") and not c.get("worker_args")]


def _pair(cells: Sequence[CellResult], workload: str, cores: int) -> tuple[CellResult, CellResult] | None:
    """The prefork and threads cells of one workload at the concurrency where prefork can use every core."""
    by_pool: dict[str, dict[int, CellResult]] = {"prefork": {}, "threads": {}}
    for cell in _capacity(cells):
        if cell["workload"] == workload and cell["pool"] in by_pool:
            by_pool[cell["pool"]][cell["concurrency"]] = cell
    common = sorted(set(by_pool["prefork"]) & set(by_pool["threads"]))
    if not common:
        return None
    fitting = [level for level in common if level <= cores]
    level = fitting[-1] if fitting else common[0]
    return by_pool["prefork"][level], by_pool["threads"][level]


def cpu_verdict(cells: Sequence[CellResult], cores: int) -> CpuVerdict | None:
    """prefork against threads on square where prefork can use every core, in cores kept busy."""
    pair = _pair(cells, "square", cores)
    if pair is None:
        return None
    prefork, threads = pair
    return {
        "concurrency": prefork["concurrency"],
        "prefork_per_s": prefork["throughput_per_s"],
        "threads_per_s": threads["throughput_per_s"],
        "ratio": task_cores(prefork) / task_cores(threads),
        "prefork_efficiency": prefork["efficiency"],
        "threads_efficiency": threads["efficiency"],
    }


def io_verdict(cells: Sequence[CellResult]) -> IoVerdict | None:
    """threads on the slowest sleep: efficiency at the top concurrency both pools ran, and memory."""
    sleeps = [c for c in _capacity(cells) if c["workload"] == "sleep"]
    if not sleeps:
        return None
    slowest = max(c["params"].get("seconds", 0) for c in sleeps)  # the I/O-bound curve, not Celery's ceiling
    group = [c for c in sleeps if c["params"].get("seconds", 0) == slowest]
    threads = [c for c in group if c["pool"] == "threads"]
    if not threads:
        return None
    preforks = {c["concurrency"]: c for c in group if c["pool"] == "prefork"}
    both = [c for c in threads if c["concurrency"] in preforks]
    top = max(both or threads, key=lambda c: c["concurrency"])
    threads = [c for c in threads if c["concurrency"] <= top["concurrency"]]
    prefork = preforks.get(top["concurrency"])
    worst = min(threads, key=lambda c: c["efficiency"] or 0)
    return {
        "concurrency": top["concurrency"],
        "threads_per_s": top["throughput_per_s"],
        "threads_efficiency": top["efficiency"],
        "min_threads_efficiency": worst["efficiency"],
        "min_at": worst["concurrency"],
        "threads_memory_mb": top["worker_memory_mb"],
        "prefork_memory_mb": prefork["worker_memory_mb"] if prefork else None,
        "prefork_efficiency": prefork["efficiency"] if prefork else None,
    }


def headline(results: Results) -> str:
    """One line for the first plot's title and the report's opening."""
    parts = []
    cpu = cpu_verdict(results["cells"], cores(results))
    if cpu:
        parts.append(f"CPU: prefork {cpu['ratio']:.2f}x threads at c={cpu['concurrency']}"
                     f" ({_pct(cpu['prefork_efficiency'])} of ideal)")
    io = io_verdict(results["cells"])
    if io:
        memory = f", {io['threads_memory_mb']:.0f} MB vs prefork {io['prefork_memory_mb']:.0f} MB" \
            if io["threads_memory_mb"] and io["prefork_memory_mb"] else ""
        parts.append(f"I/O: threads {_pct(io['threads_efficiency'])} of ideal at c={io['concurrency']}{memory}")
    totals = accounting(results["cells"])
    parts.append(f"{totals['lost']} lost, {totals['duplicated']} duplicated")
    return "; ".join(parts)


def misses_model(efficiency: float | None) -> bool:
    """A measurement further than MODEL_TOLERANCE from its model (efficiency = measured / model)."""
    return efficiency is not None and abs(1 - efficiency) > MODEL_TOLERANCE


def model_misses(cells: Iterable[CellResult]) -> list[CellResult]:
    """Cells whose measurement is further than MODEL_TOLERANCE from the model's ideal."""
    return [c for c in cells if misses_model(c["efficiency"])]


def within_overhead_goal(overhead: float | None) -> bool:
    """Timing on vs off within HARNESS_OVERHEAD_GOAL: the harness is not what the cell measured."""
    return overhead is not None and overhead <= HARNESS_OVERHEAD_GOAL


def miss_reason(cell: CellResult) -> str:
    """What the data says about a cell's model miss: the waiting grew, the cores were short, or per-task overhead.

    The experiments' model is the task's own cost (Celery's per-task work is left out), so what is
    left when the task waited as asked and had its cores is that work.
    """
    inflation = cell.get("io_inflation")
    if cell["efficiency"] is not None and cell["efficiency"] > 1 + MODEL_TOLERANCE:
        return "faster than the model: its inputs (task CPU time, cores) were underestimated"
    if inflation is not None and inflation > 1 + MODEL_TOLERANCE:
        return (f"the tasks' waiting grew {inflation:.2f}x: after its I/O a thread waits for the GIL "
                f"(the convoy effect, bpo-7946)")
    if cell["cpu_cores"] is not None and cell["cpu_cores"] < CORES_KEPT_BUSY * cell.get("usable_cores", 1):
        others = cell.get("others_cores")
        busy = f"; {others:.2f} cores were busy outside it" if others is not None else ""
        return (f"the worker kept only {cell['cpu_cores']:.2f} cores busy of the {cell.get('usable_cores')} the "
                f"model counts on (a busy machine, or Celery's own per-task work{busy})")
    return "Celery's own per-task work, which the model leaves out, is a large part of a task this short"


def cores(results: Results) -> int:
    return int(results.get("environment", {}).get("cpu_count") or 1)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


# -- the article's claims --------------------------------------------------------------------------

def _cells(cells: Iterable[CellResult], label: str, pool: str | None = None) -> list[CellResult]:
    return [c for c in cells if c["label"] == label and (pool is None or c.get("pool") == pool)]


def _by_concurrency(cells: Iterable[CellResult]) -> dict[int, CellResult]:
    return {int(c["concurrency"]): c for c in cells}


def _verdict(claim: int, holds: bool, partly: bool, figure: float | None, unit: str, detail: str) -> Verdict:
    verdict = "holds" if holds else "partly" if partly else "does not hold"
    return {"claim": claim, "verdict": verdict, "figure": None if figure is None else round(figure, 3),
            "unit": unit, "detail": detail}


def gil(cells: Sequence[CellResult], cores: int, inprocess: Sequence[InProcessRow], interpreter: str,
        label: str = "claim1", threads_pool: str = "threads", prefork_pool: str = "prefork",
        free_threaded: bool = False) -> Verdict:
    """Claim 1: prefork/threads square work rate at concurrency = cores; threads flat across concurrency.

    Judged once per interpreter: on a free-threaded CPython (cells labelled `claim1-ft`, pools
    threads-ft/prefork-ft) threads are expected to scale, and the claim *not* to hold.
    """
    threads = _by_concurrency(_cells(cells, label, pool=threads_pool))
    prefork = _by_concurrency(_cells(cells, label, pool=prefork_pool))
    c = min(cores, max(threads))
    ratio = task_cores(prefork[c]) / task_cores(threads[c])
    flat = max(task_cores(t) for t in threads.values()) / task_cores(threads[1])
    busy = ", ".join(f"c={k}: {task_cores(v):.2f}" for k, v in sorted(threads.items()))
    in_threads = max((r["throughput_per_s"] for r in inprocess if "Thread" in r["pattern"]), default=0.0)
    in_procs = max((r["throughput_per_s"] for r in inprocess if "Process" in r["pattern"]), default=0.0)
    detail = (f"on Python {interpreter}, square at concurrency {c}: prefork {prefork[c]['throughput_per_s']:.1f}/s vs "
              f"threads {threads[c]['throughput_per_s']:.1f}/s; cores busy with tasks: prefork "
              f"{task_cores(prefork[c]):.2f} vs threads {task_cores(threads[c]):.2f}; threads by concurrency: {busy} "
              f"(best/1-thread = {flat:.2f}); in-process best: threads {in_threads:.1f}/s, processes {in_procs:.1f}/s")
    holds = ratio >= 0.8 * min(c, cores) and flat <= 1.25
    verdict = _verdict(1, holds, ratio >= 1.3, ratio, "x (prefork/threads square throughput, per CPU-second of task)",
                       detail)
    verdict["interpreter"] = interpreter
    verdict["free_threaded"] = free_threaded
    return verdict


def io(cells: Sequence[CellResult]) -> Verdict:
    """Claim 2: threads sleep throughput tracks concurrency / seconds up to 256."""
    threads = _by_concurrency(_cells(cells, "claim2", pool="threads"))
    worst = min(_figure(c["efficiency"]) for c in threads.values())
    top = max(threads)
    rates = ", ".join(f"c={k}: {v['throughput_per_s']:.0f}/s ({v['efficiency']:.0%})"
                      for k, v in sorted(threads.items()))
    gevent = _cells(cells, "claim2", pool="gevent")
    extra = f"; gevent c={gevent[0]['concurrency']}: {gevent[0]['efficiency']:.0%} of ideal" if gevent else ""
    return _verdict(2, worst >= 0.9, worst >= 0.7, worst, f"lowest efficiency of threads sleep up to c={top}",
                    f"threads sleep: {rates}{extra}")


def memory(cells: Sequence[CellResult]) -> Verdict:
    """Claim 3: prefork/threads worker memory (PSS of the tree) at the largest concurrency both ran."""
    threads = _by_concurrency(_cells(cells, "claim3", pool="threads"))
    prefork = _by_concurrency(_cells(cells, "claim3", pool="prefork"))
    c = max(set(threads) & set(prefork))
    ratio = _figure(prefork[c]["worker_memory_mb"]) / _figure(threads[c]["worker_memory_mb"])
    per_task = {pool: _by_concurrency(_cells(cells, "claim3", pool=pool)).get(c) for pool in POOL_NAMES}
    detail = "; ".join(f"{pool} {cell['worker_memory_mb']:.0f} MB "
                       f"({_figure(cell['worker_memory_mb']) / c:.2f} MB per in-flight task)"
                       for pool, cell in per_task.items() if cell)
    return _verdict(3, ratio >= 2, ratio > 1.2, ratio, f"x (prefork/threads memory at concurrency {c})",
                    f"PSS of the whole worker at c={c}: {detail}")


def startup(cells: Sequence[CellResult]) -> Verdict:
    """Claim 4: prefork start-up grows with concurrency; recycling children costs throughput."""
    threads = _by_concurrency(_cells(cells, "claim3", pool="threads"))
    prefork = _by_concurrency(_cells(cells, "claim3", pool="prefork"))
    c = max(set(threads) & set(prefork))
    ratio = _figure(prefork[c]["startup_s"]) / _figure(threads[c]["startup_s"])
    keep = _figure(_cells(cells, "claim4", pool="prefork")[0]["throughput_per_s"])
    recycle = _figure(_cells(cells, "claim4-recycle", pool="prefork")[0]["throughput_per_s"])
    cost = 1 - recycle / keep
    detail = (f"start-up to ready at c={c}: prefork {prefork[c]['startup_s']:.2f} s, "
              f"threads {threads[c]['startup_s']:.2f} s; max_tasks_per_child=1 cuts short-task throughput "
              f"from {keep:.0f}/s to {recycle:.0f}/s ({cost:.0%})")
    return _verdict(4, ratio >= 1.5 and cost >= 0.2, ratio > 1.1 or cost >= 0.2, ratio,
                    f"x (prefork/threads start-up time at concurrency {c})", detail)


def killable(attempts: Sequence[StopAttemptRow]) -> Verdict:
    """Claim 5: the threads pool cannot stop a runaway task; prefork can."""
    threads_killed = any(a["killed"] for a in attempts if a["pool"] == "threads")
    prefork_killed = all(a["killed"] for a in attempts if a["pool"] == "prefork")
    detail = "; ".join(f"{a['pool']} {a['method']}: {'stopped' if a['killed'] else 'ran to its end'} "
                       f"(backend said {a['reported_state']})" for a in attempts)
    return _verdict(5, not threads_killed and prefork_killed, not threads_killed, float(threads_killed),
                    "threads pool killed the runaway task (1 yes, 0 no)", detail)


def shared(states: Sequence[SharedStateRow], crashes: Sequence[CrashRow]) -> Verdict:
    """Claim 6: threads share module state and die together; prefork children do not."""
    by_pool = {s["pool"]: s for s in states}
    threads_shared = by_pool["threads"]["shared"] and not by_pool["prefork"]["shared"]
    crash = {(c["pool"], c["acks_late"]): c for c in crashes}
    died_together = crash[("threads", True)]["worker_died"] and not crash[("prefork", True)]["worker_died"]
    lost_early = crash[("threads", False)]["lost"]
    detail = (f"bump: threads saw {by_pool['threads']['processes_seen']} process(es), count up to "
              f"{by_pool['threads']['largest_count_seen']}; prefork {by_pool['prefork']['processes_seen']} processes, "
              f"count up to {by_pool['prefork']['largest_count_seen']}. os._exit: "
              + "; ".join(f"{c['pool']} acks_late={c['acks_late']}: worker died={c['worker_died']}, lost {c['lost']}"
                          for c in crashes))
    return _verdict(6, threads_shared and died_together, threads_shared or died_together, float(lost_early),
                    "tasks lost when a threads worker crashed with early acks", detail)


def gil_python(results: Results) -> str:
    """The version of the interpreter with a GIL that ran the run (the harness's, which its workers share)."""
    return str(results["environment"].get("python", "with a GIL"))


def judge(results: Results, side: SideResults) -> list[Verdict]:
    """The six claims' verdicts, from a claims run's results.json and side.json.

    Claim 1 is judged again on the free-threaded interpreter when the run measured it.
    """
    cells, cores_ = results["cells"], side["cores"]
    found = [gil(cells, cores_, side["inprocess"], gil_python(results))]
    if _cells(cells, "claim1-ft"):
        found.append(gil(cells, cores_, side.get("inprocess_ft", []), side.get("freethreaded_python", "free-threaded"),
                         "claim1-ft", "threads-ft", "prefork-ft", free_threaded=True))
    return [*found, io(cells), memory(cells), startup(cells), killable(side["runaway"]),
            shared(side["shared_state"], side["crash"])]


# -- lab advise ------------------------------------------------------------------------------------

ADVICE_TOLERANCE = 0.20  # advise's promise: the recommended configuration does within 20 % of its prediction


def recommend(rows: Sequence[ProvedRow], constraints: Constraints) -> Recommendation:
    """The proved configuration to use, on its measurements, and the constraint that decided it.

    The rule is advise's ranking (experiments.advise_model.rank), applied to what the workers did;
    the same rule on the predictions chose what to prove, so the two choices are compared too.
    """
    ranked = rank(rows, "measured", constraints)
    predicted = rank(rows, "predicted", constraints)
    if not ranked:
        return {"pool": None, "concurrency": None, "decided_by": "no proved configuration met the constraints",
                "prediction_holds": None, "miss": None, "predicted_choice": _name(predicted[0]) if predicted else None}
    choice = ranked[0]
    measured = _figure(choice["measured_per_s"])  # ranked rows were measured
    miss = measured / choice["predicted_per_s"] - 1
    return {"pool": choice["pool"], "concurrency": choice["concurrency"],
            "decided_by": _decided_by(choice, rows, constraints),
            "measured_per_s": measured, "predicted_per_s": choice["predicted_per_s"],
            "miss": round(miss, 4), "prediction_holds": abs(miss) <= ADVICE_TOLERANCE,
            "predicted_choice": _name(predicted[0]) if predicted else None}


def model_missed(row: ProvedRow) -> bool:
    """A proved row further than the model tolerance from its prediction: the report says why."""
    return misses_model(row.get("efficiency"))


def advice_miss_reason(row: ProvedRow, profile: AdviceProfile) -> str:
    """What a proved worker did differently from the profile: its tasks' CPU, its cores, lost or failed tasks.

    Unlike an experiment's model (miss_reason), advise's prediction includes the worker's own work
    per task, measured on that worker just before: what is left to explain a miss is the task
    itself (its CPU time in the worker against the profile's) and the cores the worker got.
    """
    clues = []
    ratio, task_cpu_s = row.get("task_cpu_ratio"), row.get("task_cpu_s")
    if ratio and task_cpu_s is not None and abs(ratio - 1) > TASK_CPU_DRIFT:
        clues.append(f"a task took {ratio:.2f}x its profiled CPU in the worker "
                     f"({task_cpu_s * 1000:.1f} vs {profile['cpu_s'] * 1000:.1f} ms)")
    if (worker_cores := row.get("worker_cpu_cores")) is not None:
        clues.append(f"the worker kept {worker_cores:.2f} cores busy (model: "
                     f"{row['usable_cores']:.2f} usable for the task)")
    if row.get("failed") or row.get("lost"):
        clues.append(f"{row['failed']} failed, {row['lost']} lost")
    return "; ".join(clues) or "no clue in the worker's figures"


def _decided_by(choice: ProvedRow, rows: Sequence[ProvedRow], constraints: Constraints) -> str:
    def measured(row: ProvedRow) -> float:
        return row.get("measured_per_s") or 0.0

    per_s = measured(choice)
    faster = [row for row in rows if measured(row) > per_s]
    excluded = [row for row in faster if violation(row, "measured", constraints)]
    if excluded:
        best = max(excluded, key=measured)
        return (f"{violation(best, 'measured', constraints)}: {_name(best)} did {best['measured_per_s']:g}/s "
                f"but needed {best['measured_memory_mb']:g} MB, p95 {_ms(best['measured_p95_s'])}")
    if faster:
        best = max(faster, key=measured)
        return (f"memory: within {NEAR_BEST:.0%} of the best tasks/s ({_name(best)}, {best['measured_per_s']:g}/s) "
                f"with {choice['measured_memory_mb']:g} MB instead of {best['measured_memory_mb']:g} MB")
    others = sorted((row for row in rows if row is not choice and row.get("measured_per_s")),
                    key=lambda row: -measured(row))
    runner_up = f"; next {_name(others[0])} at {others[0]['measured_per_s']:g}/s" if others else ""
    return f"tasks/s: the most of the proved configurations ({per_s:g}/s{runner_up})"


def _name(row: Prediction) -> str:
    return f"{row['pool']} c={row['concurrency']}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"
