"""Reading a run's ledger back: counts, duplicates, timings, and what is still queued."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from producer.stats import Histogram
from tasks.ledger import key

DRAIN_CHUNK = 5000


@dataclass
class Timings:
    """What the timings stream says about a run, folded as it is read (bounded memory)."""

    queue_wait: Histogram = field(default_factory=Histogram)
    run_time: Histogram = field(default_factory=Histogram)
    end_to_end: Histogram = field(default_factory=Histogram)
    first_sent: float = math.inf
    first_started: float = math.inf
    last_finished: float = -math.inf
    per_worker: Counter[str] = field(default_factory=Counter)
    per_pool_run_time: dict[str, Histogram] = field(default_factory=dict)
    task_cpu_s: float = 0.0  # summed over tasks: CPU time of the task's own thread

    def add(self, line: str) -> None:
        sent_s, started_s, finished_s, cpu_s, _state, worker = line.split(" ", 5)
        sent, started, finished = float(sent_s), float(started_s), float(finished_s)
        self.task_cpu_s += float(cpu_s)
        self.queue_wait.add(started - sent)
        self.run_time.add(finished - started)
        self.end_to_end.add(finished - sent)
        self.first_sent = min(self.first_sent, sent)
        self.first_started = min(self.first_started, started)
        self.last_finished = max(self.last_finished, finished)
        self.per_worker[worker] += 1
        self.per_pool_run_time.setdefault(pool_of(worker), Histogram()).add(finished - started)

    @property
    def count(self) -> int:
        return self.end_to_end.total

    def done_per_pool(self) -> Counter[str]:
        """Tasks whose timing line has been read, per pool (workers are named `pool@host`)."""
        done: Counter[str] = Counter()
        for worker, count in self.per_worker.items():
            done[pool_of(worker)] += count
        return done

    def mean_task_cpu_s(self) -> float:
        return self.task_cpu_s / self.count if self.count else math.nan

    def drain_rate(self) -> float:
        """Tasks per second from the first start to the last finish: the pool's own speed."""
        span = self.last_finished - self.first_started
        return self.count / span if self.count and span > 0 else math.nan

    def elapsed_since_sent(self) -> float:
        return self.last_finished - self.first_sent if self.count else math.nan


@dataclass
class Accounting:
    """Every task of a run, accounted for: done, failed, still queued or running, lost."""

    sent: int
    completed: int
    failed: int
    duplicated: int
    queued: int
    lost: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class RunLedger:
    """The reader's side of `tasks.ledger` for one run id."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.timings = Timings()

    def counts(self) -> dict[str, int]:
        raw = self.client.hgetall(key(self.run_id, "count"))
        return {_text(k): int(v) for k, v in raw.items()}

    def finished(self) -> int:
        return sum(self.counts().values())

    def drain_timings(self) -> int:
        """Move new timing lines from Redis into the histograms; return how many were read."""
        read = 0
        while True:
            lines = self.client.lpop(key(self.run_id, "timings"), DRAIN_CHUNK)
            if not lines:
                return read
            for line in lines:
                self.timings.add(_text(line))
            read += len(lines)

    def distinct_finished(self) -> int:
        """Distinct task ids that ended (a redelivered duplicate must not make a wait stop early).

        Counted from the `seen` hash when the run records timings; the state counts otherwise.
        """
        return int(self.client.hlen(key(self.run_id, "seen"))) or self.finished()

    def duplicated(self) -> int:
        """Tasks that ended more than once (by task id), counted once each."""
        return sum(1 for _, times in self.client.hscan_iter(key(self.run_id, "seen")) if int(times) > 1)

    def wait(self, expected: int, timeout: float,
             on_progress: Callable[[int], None] | None = None) -> bool:
        """Poll until `expected` tasks have ended or `timeout` passes; True if all ended."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.distinct_finished()
            if on_progress:
                on_progress(done)
            if done >= expected:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def account(self, sent: int, queues: Sequence[str]) -> Accounting:
        counts = self.counts()
        completed = counts.get("SUCCESS", 0)
        duplicated = self.duplicated()
        failed = sum(counts.values()) - completed
        unique_ended = sum(counts.values()) - duplicated_extra(self.client, self.run_id)
        in_broker = pending_in_broker(self.client, queues) if unique_ended < sent else 0
        lost = max(0, sent - unique_ended - in_broker)
        return Accounting(sent, completed, failed, duplicated, in_broker, lost)

    def delete(self) -> None:
        self.client.delete(*(key(self.run_id, part) for part in ("count", "seen", "timings")))


def pool_of(worker: str) -> str:
    """The pool part of a worker name (`threads@host` -> `threads`)."""
    return worker.split("@", 1)[0]


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def duplicated_extra(client: redis.Redis, run_id: str) -> int:
    """How many endings beyond the first there were, over all tasks of a run."""
    return sum(max(0, int(times) - 1) for _, times in client.hscan_iter(key(run_id, "seen")))


def pending_in_broker(client: redis.Redis, queues: Sequence[str]) -> int:
    """Messages still waiting in the queues, plus those delivered but not yet acknowledged."""
    waiting = sum(int(client.llen(queue)) for queue in queues)
    unacked = 0
    for _, payload in client.hscan_iter("unacked"):
        try:
            routing_key = json.loads(payload)[2]
        except (ValueError, IndexError):
            continue
        unacked += routing_key in queues
    return waiting + unacked
