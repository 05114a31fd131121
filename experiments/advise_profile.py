"""`lab advise`, step 1: profile the user's callable in-process, in a child process of its own.

Per call: wall time, the calling thread's CPU time, and the rest as waiting; the memory a call
holds at its peak and what importing the target costs. Then how much of its CPU holds the GIL:
CPU time is not GIL time (hashlib or zlib on a large buffer release the GIL), so the target runs
on enough threads at once to keep every core busy were there no GIL, then on as many processes,
and the cores' worth of its CPU each delivers (throughput x one call's CPU time alone) gives the
GIL-holding share `g` through Amdahl's law (config.pools.Pool.usable_cores_for_task): threads
against processes measured a second apart, so cores that another program is using at the time
count against neither. What the processes delivered is also the cores prefork can expect now.

Why a child process: the target is code the lab has never seen. A call that hangs must be
stopped (the child is killed at the deadline; a thread cannot be), a target that exits or crashes
its interpreter must not take `lab advise` with it, and peak memory is only meaningful in a fresh
interpreter. The child speaks one JSON object per line on a descriptor of its own (the target may
print to stdout: that goes to stderr, the child's log).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import resource
import selectors
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from config.errors import UserError
from experiments.schema import AdviceProfile
from tasks import advised

MIN_GIL_PHASE_S = 1.5  # long enough for a few switch intervals and calls per thread
MAX_THREADS = 64  # enough to saturate 2 cores with a task that waits 97 % of its time
EXCERPT = 200
FILLS_CORES = 0.9  # threads that ask for 90 % of the cores' CPU could have kept every core busy


class AdviseError(UserError, RuntimeError):
    """The target cannot be advised as given (one line, exit 2)."""


@dataclass(frozen=True)
class Profile:
    """What one call of the target costs, measured alone, and how it scales on threads."""

    calls: int
    wall_s: float  # mean per call
    cpu_s: float  # mean thread CPU per call
    io_s: float  # mean wall - cpu: waiting (I/O, sleeps, a lock)
    wall_p95_s: float
    peak_mb: float  # what one call holds at its peak (Python allocations or RSS growth)
    import_mb: float  # RSS the import of the target's module added
    threads: int  # threads the GIL phase ran
    gil_phase_per_s: float  # calls per second on those threads
    gil_cores: float  # cores' worth of the target's CPU the threads delivered
    gil_share: float  # share of its CPU that holds the GIL (1: pure Python)
    gil_measured: bool  # False: waiting dominates, the threads could not reach one core's worth
    process_cores: float  # cores' worth of its CPU as many processes delivered (what prefork can use now)

    @property
    def busy_share(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self, cores: int | None) -> AdviceProfile:
        """As advice.json keeps it (figures to 6 digits), with the machine's cores."""
        return {"calls": self.calls, "wall_s": round(self.wall_s, 6), "cpu_s": round(self.cpu_s, 6),
                "io_s": round(self.io_s, 6), "wall_p95_s": round(self.wall_p95_s, 6), "peak_mb": round(self.peak_mb, 6),
                "import_mb": round(self.import_mb, 6), "threads": self.threads,
                "gil_phase_per_s": round(self.gil_phase_per_s, 6), "gil_cores": round(self.gil_cores, 6),
                "gil_share": round(self.gil_share, 6), "gil_measured": self.gil_measured,
                "process_cores": round(self.process_cores, 6), "busy_share": round(self.busy_share, 4), "cores": cores}


def fills_cores(threads: int, busy_share: float, cores: int) -> bool:
    """Whether the profile's threads, each busy `busy_share` of its time, asked for (nearly) every core.

    Only then does what they and the processes delivered say something about the cores: fewer than
    asked means another program had the rest (advise_model.available_cores), and a GIL share that
    could not be measured is blamed on busy cores rather than on the task's waiting (report.advise).
    """
    return threads * busy_share >= FILLS_CORES * cores


def gil_share(delivered_cores: float, parallel: float) -> float:
    """Invert Amdahl's law: `delivered = 1 / (g + (1 - g) / parallel)`, g clamped to [0, 1]."""
    if parallel <= 1 or delivered_cores <= 0:
        return 1.0
    share = (parallel / delivered_cores - 1) / (parallel - 1)
    return min(1.0, max(0.0, share))


# -- the parent's side --------------------------------------------------------------------------

def profile(spec: str, args: list[Any], kwargs: dict[str, Any], calls: int, timeout_s: float,
            env: dict[str, str], log_path: Path) -> Profile:
    """Run the profile child; AdviseError (one line) if the target fails, hangs or the child dies."""
    request = json.dumps({"spec": spec, "args": args, "kwargs": kwargs, "calls": calls,
                          "cores": os.cpu_count() or 1})
    read, write = os.pipe()
    with open(log_path, "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "experiments.advise_profile", str(write)], env=env,
                                 stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, pass_fds=(write,))
    os.close(write)
    try:
        assert child.stdin is not None
        child.stdin.write(request.encode())
        child.stdin.close()
        with os.fdopen(read, "rb") as channel:
            return _result(spec, _messages(channel, timeout_s), log_path)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)


def _messages(channel: IO[bytes], timeout_s: float) -> Iterator[dict[str, Any]]:
    """The child's messages; each must come within the deadline (one call, or the GIL phase)."""
    with selectors.DefaultSelector() as selector:
        selector.register(channel, selectors.EVENT_READ)
        deadline = timeout_s
        while True:
            if not selector.select(deadline):
                raise AdviseError(f"did not return within {deadline:g} s (--timeout); stopped it")
            line = channel.readline()
            if not line:
                return
            message: dict[str, Any] = json.loads(line)
            yield message
            # The GIL phase runs several calls per thread and at least MIN_GIL_PHASE_S.
            deadline = timeout_s * 4 + MIN_GIL_PHASE_S if message.get("event") == "timed" else timeout_s


def _result(spec: str, messages: Iterator[dict[str, Any]], log_path: Path) -> Profile:
    try:
        for message in messages:
            if message["event"] == "error":
                raise AdviseError(message["message"])
            if message["event"] == "result":
                return Profile(**message["profile"])
    except AdviseError as exc:
        raise AdviseError(f"{spec}: {exc}") from None
    raise AdviseError(f"{spec}: the profile ended without a result ({_last_line(log_path)})")


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return lines[-1][:EXCERPT] if lines else "no output; see the log"


# -- the child's side ---------------------------------------------------------------------------

def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _call(target: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> tuple[float, float]:
    """One call: (wall seconds, this thread's CPU seconds)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    target(*args, **kwargs)
    return time.perf_counter() - wall, time.thread_time() - cpu


def _first_call(target: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> None:
    try:
        target(*args, **kwargs)
    except BaseException as exc:  # SystemExit too: the user's code, reported in one line
        text = str(exc).strip().splitlines()[0][:EXCERPT] if str(exc).strip() else ""
        raise AdviseError(f"raised on the given arguments: {type(exc).__name__}: {text}".rstrip(": ")) from None


def _peak_mb(target: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> float:
    """Python allocations a call holds at its peak (one call traced: tracing slows Python 2-3x)."""
    tracemalloc.start()
    try:
        target(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _on_threads(target: Callable[..., Any], args: list[Any], kwargs: dict[str, Any],
                threads: int) -> tuple[int, float]:
    """Every thread calls the target back to back for MIN_GIL_PHASE_S; (calls done, wall seconds)."""
    stop = threading.Event()
    done = [0] * threads

    def loop(slot: int) -> None:
        while not stop.is_set():
            target(*args, **kwargs)
            done[slot] += 1

    workers = [threading.Thread(target=loop, args=(slot,), daemon=True) for slot in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    time.sleep(MIN_GIL_PHASE_S)
    stop.set()
    for worker in workers:
        worker.join()
    return sum(done), time.perf_counter() - started


_forked: tuple[Callable[..., Any], list[Any], dict[str, Any]] | None = None


def _calls_for(seconds: float) -> int:
    """In a forked process: call the target back to back for `seconds`; how many calls ended."""
    assert _forked is not None
    target, args, kwargs = _forked
    deadline, count = time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline:
        target(*args, **kwargs)
        count += 1
    return count


def _on_processes(target: Callable[..., Any], args: list[Any], kwargs: dict[str, Any],
                  processes: int) -> float:
    """Calls per second on `processes` forked processes, each calling back to back for MIN_GIL_PHASE_S."""
    global _forked
    _forked = (target, args, kwargs)
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        counts = pool.map(_calls_for, [MIN_GIL_PHASE_S] * processes, chunksize=1)
    return sum(counts) / MIN_GIL_PHASE_S


def _measure(request: dict[str, Any], send: Callable[..., None]) -> dict[str, Any]:
    before = _rss_mb()
    target = advised.load(request["spec"])
    import_mb = max(0.0, _rss_mb() - before)
    args, kwargs, cores = request["args"], request["kwargs"], int(request["cores"])
    _first_call(target, args, kwargs)
    send(event="first")
    rss_before_calls = _max_rss_mb()
    samples = []
    for _ in range(int(request["calls"])):
        samples.append(_call(target, args, kwargs))
        send(event="call")
    send(event="timed")
    walls, cpus = [s[0] for s in samples], [s[1] for s in samples]
    wall, cpu = statistics.fmean(walls), statistics.fmean(cpus)
    peak = max(_peak_mb(target, args, kwargs), _max_rss_mb() - rss_before_calls)
    busy = cpu / wall if wall > 0 else 1.0
    threads = max(cores, min(MAX_THREADS, math.ceil(cores / max(busy, 1e-9))))
    count, elapsed = _on_threads(target, args, kwargs, threads)
    per_s = count / elapsed
    delivered = per_s * cpu
    on_processes = _on_processes(target, args, kwargs, threads) * cpu
    parallel = min(threads * busy, cores, on_processes)  # cores the threads could keep busy were there no GIL
    measured = parallel > 1.2  # below that, even a GIL held throughout would not be the limit
    return {"calls": len(samples), "wall_s": wall, "cpu_s": cpu, "io_s": max(0.0, wall - cpu),
            "wall_p95_s": statistics.quantiles(walls, n=20)[-1] if len(walls) > 1 else wall,
            "peak_mb": peak, "import_mb": import_mb, "threads": threads, "gil_phase_per_s": per_s,
            "gil_cores": delivered, "gil_share": gil_share(delivered, parallel) if measured else 1.0,
            "gil_measured": measured, "process_cores": on_processes}


def main() -> None:
    """The child: read the request on stdin, answer on the descriptor given as argv[1]."""
    channel = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    os.dup2(2, 1)  # the target's prints go to the log, never into the answers

    def send(**message: Any) -> None:
        channel.write(json.dumps(message) + "\n")

    try:
        send(event="result", profile=_measure(json.loads(sys.stdin.read()), send))
    except UserError as exc:
        send(event="error", message=str(exc))
    finally:
        channel.flush()
        os._exit(0)  # daemon threads of the target must not delay or break the exit


if __name__ == "__main__":
    main()
