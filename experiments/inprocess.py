"""Claim 1 without a queue: the article's own patterns, timed on the same `square` work.

`threading.Thread`, `ThreadPoolExecutor`, `multiprocessing.Process` and
`ProcessPoolExecutor` each run the same number of `square` calls with 1, 2, 4...
workers. Threads stay at about one core whatever their number (the GIL);
processes scale to the core count. Comparing with the queue's throughput for the
same work gives the queue's own overhead per task.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from experiments.schema import InProcessRow
from tasks.work import square

PATTERNS = ("threading.Thread", "ThreadPoolExecutor", "multiprocessing.Process", "ProcessPoolExecutor")


def _run_slice(count: int, work: int) -> None:
    for i in range(count):
        square(i, work)


def _split(tasks: int, workers: int) -> list[int]:
    return [tasks // workers + (1 if i < tasks % workers else 0) for i in range(workers)]


def with_threads(tasks: int, workers: int, work: int) -> None:
    threads = [threading.Thread(target=_run_slice, args=(n, work)) for n in _split(tasks, workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def with_thread_pool(tasks: int, workers: int, work: int) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(square, range(tasks), [work] * tasks))


def with_processes(tasks: int, workers: int, work: int) -> None:
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_run_slice, args=(n, work)) for n in _split(tasks, workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()


def with_process_pool(tasks: int, workers: int, work: int) -> None:
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(square, range(tasks), [work] * tasks, chunksize=max(1, tasks // (workers * 4))))


RUNNERS: dict[str, Callable[[int, int, int], None]] = {
    "threading.Thread": with_threads,
    "ThreadPoolExecutor": with_thread_pool,
    "multiprocessing.Process": with_processes,
    "ProcessPoolExecutor": with_process_pool,
}


def measure(pattern: str, workers: int, tasks: int, work: int, repetitions: int = 3) -> InProcessRow:
    """Wall-clock throughput of `tasks` square calls, median and range over repetitions.

    Process start-up is inside the timing on purpose: it is part of what using
    processes costs.
    """
    rates = []
    for _ in range(repetitions):
        started = time.perf_counter()
        RUNNERS[pattern](tasks, workers, work)
        rates.append(tasks / (time.perf_counter() - started))
    return {"pattern": pattern, "workers": workers, "tasks": tasks, "throughput_per_s": statistics.median(rates),
            "throughput_min": min(rates), "throughput_max": max(rates)}


def sweep(workers: Sequence[int], tasks: int, work: int, repetitions: int = 3) -> list[InProcessRow]:
    return [measure(pattern, n, tasks, work, repetitions) for pattern in PATTERNS for n in workers]


def sweep_on(python: str, workers: Sequence[int], tasks: int, work: int, repetitions: int = 3) -> list[InProcessRow]:
    """The same sweep on another interpreter (the free-threaded one), in a process of its own."""
    code = (f"import json; from experiments.inprocess import sweep; "
            f"print(json.dumps(sweep({list(workers)}, {tasks}, {work}, {repetitions})))")
    return list(json.loads(_run_on(python, code)))


def single_thread_cost(python: str, work: int, calls: int = 40) -> dict[str, float | str]:
    """One `square(work)` call's CPU time on an interpreter, alone on one thread (median of `calls`).

    The free-threaded build pays for its missing GIL in single-thread speed (3.13t disables the
    specialising interpreter): this is the price a threads worker there pays per task.
    """
    code = ("import json, statistics, time; from tasks.work import square\n"
            f"square(3, {work})\n"
            "samples = []\n"
            f"for _ in range({calls}):\n"
            "    t = time.thread_time(); square(3, " + str(work) + "); samples.append(time.thread_time() - t)\n"
            "print(json.dumps({'cpu_s': statistics.median(samples)}))")
    return {"python": python_label(python), **json.loads(_run_on(python, code))}


def python_label(python: str) -> str:
    """`3.11.7`, or `3.13.5t` for a free-threaded build: how reports name an interpreter."""
    return _run_on(python, "import platform, sysconfig; print(platform.python_version() + "
                           "('t' if sysconfig.get_config_var('Py_GIL_DISABLED') == 1 else ''))")


def _run_on(python: str, code: str) -> str:
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise RuntimeError(f"{python}: {last[0]}")
    return done.stdout.strip().splitlines()[-1]
