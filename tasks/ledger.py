"""The run ledger: what workers record about every task of a run, and the one place it is read.

The "0 lost" the lab reports rests on this module alone: it writes the records (in the
worker), reads them back, waits for a run to end, and does the accounting. Nothing else
parses a record or redoes the arithmetic.

The producer stamps each message of a run with the run id and its send time (message headers,
so task signatures stay clean). When a task of a run ends, its worker runs `RECORD_SCRIPT`, one
atomic step (a reader never sees a count without its timing line):

* `lab:run:<id>:count`    hash  state -> tasks that ended in that state
* `lab:run:<id>:seen`     hash  task id -> times it ended (more than 1 = duplicate)
* `lab:run:<id>:worker`   hash  task id -> the worker it first ended on
* `lab:run:<id>:dups`     list  "task-id first-worker again-worker" per extra ending
* `lab:run:<id>:timings`  list  "sent started finished cpu io state worker" per ending
* `lab:run:<id>:last`     hash  writer (worker, process, thread) -> token of its last record

`cpu` is the CPU time of the task's own thread from start to finish: the CPU ideal is computed
from it, in the same seconds as the throughput. `io` is the waiting the task itself observed (a
task reports it as `io_s` in a dict it returns), or `-`: observed over requested is the I/O
inflation a pool causes. `seen` and what follows are the harness's instrumentation: a run may
turn them off (`timing=False`) to measure their cost.

Cost: the record used to be a MULTI/EXEC pipeline of three commands (5 commands, ~110 us of
worker CPU per task, measured with benchmarks/ledger_cost.py); one EVALSHA of a cached script
is one command. A record is written before the task is acknowledged, so a worker killed between
the two runs the task again (a duplicate, counted) and never loses its record.

A record is retried until Redis takes it, and retrying is safe. Measured in the compose fault
runs (tests/compose/test_compose_faults.py): redis-py gives a pooled client's connections no
retry at all (`Retry(NoBackoff(), 0)`), and a worker whose network had been cut for 20 s failed
one record a minute later with EPIPE on a pooled connection; the task had run and its ack went
through, so the ledger showed it lost. A record that gives up while the ack later succeeds
(Redis restarting, a partition longer than the socket timeout) is that same phantom loss, so the
writer retries for as long as it takes, as the worker's own broker connection does; the task's
ack waits behind it. A retry after a reply was lost (the script ran) must not count twice: each
ending carries a token, and the script skips an ending whose token is already its writer's last.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

import redis
from celery import Celery, signals
from kombu.transport.redis import Channel
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from tasks.connections import BrokerUnreachable
from tasks.histogram import Histogram

LEDGER_PREFIX: Final = "lab:run:"
RUN_HEADER: Final = "lab_run"
SENT_HEADER: Final = "lab_sent"
TIMING_HEADER: Final = "lab_timing"
UNACKED_KEY: Final = Channel.unacked_key  # where kombu (and tasks.transport) keep delivered, unacked messages
UNACKED_INDEX_KEY: Final = Channel.unacked_index_key  # their delivery times (a sorted set)
PARTS: Final = ("count", "seen", "worker", "dups", "timings", "last")
MAX_LEDGER_CONNECTIONS = 10_000  # at most one per concurrent task of a worker process
DRAIN_CHUNK = 5000

RECORD_BACKOFF_CAP_S = 1.0  # a record retries every second at most while Redis does not answer
RECORD_BACKOFF_BASE_S = 0.01

# KEYS: count, seen, worker, dups, timings, last. ARGV: state, task id ('' = timing off), worker, timing
# line, writer, token. Returns -1 for a retry of an ending already recorded, else times the task ended.
RECORD_SCRIPT = """
if redis.call('HGET', KEYS[6], ARGV[5]) == ARGV[6] then return -1 end
redis.call('HSET', KEYS[6], ARGV[5], ARGV[6])
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if ARGV[2] == '' then return 0 end
local times = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if times == 1 then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
else
  redis.call('RPUSH', KEYS[4], ARGV[2] .. ' ' .. (redis.call('HGET', KEYS[3], ARGV[2]) or '?') .. ' ' .. ARGV[3])
end
redis.call('RPUSH', KEYS[5], ARGV[4])
return times
"""


# Every command the ledger sends, as Redis' INFO commandstats names them (a script's own calls are
# counted there too, so the record is its EVALSHA plus what the script runs): the worker's record
# (SCRIPT LOAD once per process), and the reader's polls, reads and accounting. redis_stats counts
# them apart from Celery's traffic; tests/tasks/test_ledger.py checks the list against the server.
RECORD_COMMANDS: Final = frozenset({"evalsha", "script|load", "hget", "hset", "hincrby", "rpush"})
READ_COMMANDS: Final = frozenset({"hgetall", "hlen", "lpop", "lrange", "llen", "hmget", "hscan", "zcount", "del"})
COMMANDS: Final = RECORD_COMMANDS | READ_COMMANDS


def key(run_id: str, part: str) -> str:
    return f"{LEDGER_PREFIX}{run_id}:{part}"


def keys(run_id: str) -> list[str]:
    return [key(run_id, part) for part in PARTS]


def timing_line(sent: float, started: float, finished: float, cpu_s: float, io_s: float | None, state: str,
                worker: str) -> str:
    """One task's timing record, as the worker writes it and `Timings.add` reads it."""
    io = "-" if io_s is None else f"{io_s:.6f}"
    return f"{sent:.6f} {started:.6f} {finished:.6f} {cpu_s:.6f} {io} {state} {worker}"


def run_headers(run_id: str, timing: bool = True) -> dict[str, Any]:
    """Headers the producer puts on every message of a run (the send time is added per message)."""
    return {RUN_HEADER: run_id, TIMING_HEADER: timing}


# -- writing, in the worker ---------------------------------------------------------------------

_started: dict[str, tuple[float, float]] = {}  # task id -> (wall clock, thread CPU) at start
_scripts: dict[int, Any] = {}  # pid -> the record script on that process's client
_scripts_lock = threading.Lock()


def install(app: Celery) -> None:
    """Connect the ledger to the worker's task signals (no I/O happens here)."""

    def record() -> Any:
        """One pooled, thread-safe client per process (prefork children get their own)."""
        pid = os.getpid()
        with _scripts_lock:  # two threads building clients at once: the loser's is closed by GC mid-use
            if pid not in _scripts:
                _scripts[pid] = writer_client(app.conf.lab_settings.require_ledger()).register_script(RECORD_SCRIPT)
        return _scripts[pid]

    @signals.task_prerun.connect(weak=False)
    def remember_start(task_id: str, **_: Any) -> None:
        _started[task_id] = (time.time(), time.thread_time())

    @signals.task_postrun.connect(weak=False)
    def record_end(task_id: str, task: Any, state: str | None = None, retval: Any = None, **_: Any) -> None:
        finished, cpu_now = time.time(), time.thread_time()
        started, cpu_at_start = _started.pop(task_id, (finished, cpu_now))
        request = task.request
        run_id = getattr(request, RUN_HEADER, None)
        if not run_id:
            return
        worker = request.hostname or "?"
        line = ""
        if getattr(request, TIMING_HEADER, True):
            sent = float(getattr(request, SENT_HEADER, None) or started)
            line = timing_line(sent, started, finished, cpu_now - cpu_at_start, _observed_io(retval), str(state),
                               worker)
        writer = f"{worker} {os.getpid()} {threading.get_ident()}"
        record()(keys=keys(run_id), args=[state or "UNKNOWN", task_id if line else "", worker, line, writer,
                                          os.urandom(8).hex()])


def writer_client(url: str) -> redis.Redis:
    """The worker's client for records: pooled, thread-safe, and retrying until Redis takes the record.

    Retries forever, backing off to once a second: nothing may be acknowledged without its record.
    redis-py caps a pool at 100 connections by default; a threads worker at concurrency 128 needs
    one per busy thread, or a record fails with MaxConnectionsError (tasks look lost).
    """
    retry = Retry(ExponentialBackoff(cap=RECORD_BACKOFF_CAP_S, base=RECORD_BACKOFF_BASE_S), retries=-1)
    return redis.Redis.from_url(url, socket_timeout=10, max_connections=MAX_LEDGER_CONNECTIONS, retry=retry,
                                retry_on_error=[redis.ConnectionError, redis.TimeoutError])


def _observed_io(retval: Any) -> float | None:
    """The waiting a task reports having observed (`{"io_s": seconds, ...}`), if it does."""
    io = retval.get("io_s") if isinstance(retval, dict) else None
    return float(io) if isinstance(io, (int, float)) and not isinstance(io, bool) else None


# -- reading ---------------------------------------------------------------------------------------

@dataclass
class Timings:
    """What the timing lines say about a run, folded as they are read (bounded memory)."""

    queue_wait: Histogram = field(default_factory=Histogram)
    run_time: Histogram = field(default_factory=Histogram)
    end_to_end: Histogram = field(default_factory=Histogram)
    io_observed: Histogram = field(default_factory=Histogram)
    first_sent: float = math.inf
    first_started: float = math.inf
    last_finished: float = -math.inf
    per_worker: Counter[str] = field(default_factory=Counter)
    per_pool_run_time: dict[str, Histogram] = field(default_factory=dict)
    task_cpu_s: float = 0.0  # summed over tasks: CPU time of the task's own thread

    def add(self, line: str) -> None:
        sent_s, started_s, finished_s, cpu_s, io_s, _state, worker = line.split(" ", 6)
        sent, started, finished = float(sent_s), float(started_s), float(finished_s)
        self.task_cpu_s += float(cpu_s)
        if io_s != "-":
            self.io_observed.add(float(io_s))
        self.queue_wait.add(started - sent)
        self.run_time.add(finished - started)
        self.end_to_end.add(finished - sent)
        self.first_sent = min(self.first_sent, sent)
        self.first_started = min(self.first_started, started)
        self.last_finished = max(self.last_finished, finished)
        self.per_worker[worker] += 1
        self.per_pool_run_time.setdefault(pool_of(worker), Histogram()).add(finished - started)

    def merge(self, other: Timings) -> None:
        """Fold another run's timings in (the latency histograms, e.g. over repetitions)."""
        for mine, theirs in ((self.queue_wait, other.queue_wait), (self.run_time, other.run_time),
                             (self.end_to_end, other.end_to_end), (self.io_observed, other.io_observed)):
            mine.merge(theirs)

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


class AccountingCounts(TypedDict):
    """Accounting as JSON: what results.json's cells and the soak's summary carry (experiments.schema).

    The same six fields as `Accounting` below, declared twice only because mypy cannot derive a
    TypedDict from a dataclass; mypy checks `Accounting.as_dict` against this, and
    tests/tasks/test_ledger.py fails if the dataclass gains a field this lacks.
    """

    sent: int
    completed: int
    failed: int
    duplicated: int
    queued: int
    lost: int


@dataclass
class Accounting:
    """Every task of a run, accounted for: done, failed, still queued or running, lost."""

    sent: int
    completed: int
    failed: int
    duplicated: int
    queued: int
    lost: int

    def as_dict(self) -> AccountingCounts:
        return AccountingCounts(sent=self.sent, completed=self.completed, failed=self.failed,
                                duplicated=self.duplicated, queued=self.queued, lost=self.lost)


@dataclass(frozen=True)
class Duplicate:
    """A task that ended more than once, and where: at-least-once delivery made visible."""

    task_id: str
    first_worker: str
    again_worker: str


@dataclass(frozen=True)
class WaitResult:
    ended: bool  # every expected task ended
    at: float  # monotonic time of the poll that saw it (or gave up)
    done: int


class BrokerLost(BrokerUnreachable):
    """The broker stopped answering while a run was awaited, for longer than the wait allows."""


class RunLedger:
    """The reader's side for one run id: counts, timings, waiting and accounting."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.timings = Timings()

    def counts(self) -> dict[str, int]:
        raw = self.client.hgetall(key(self.run_id, "count"))
        return {_text(k): int(v) for k, v in raw.items()}

    def finished(self) -> int:
        return sum(self.counts().values())

    def distinct_finished(self) -> int:
        """Distinct task ids that ended (a redelivered duplicate must not make a wait stop early).

        Counted from the `seen` hash when the run records timings; the state counts otherwise.
        """
        return int(self.client.hlen(key(self.run_id, "seen"))) or self.finished()

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

    def duplicates(self) -> list[Duplicate]:
        """Every extra ending: which task, where it ended first, and where again."""
        lines = self.client.lrange(key(self.run_id, "dups"), 0, -1)
        return [Duplicate(*_text(line).split(" ", 2)) for line in lines]

    def duplicate_count(self) -> int:
        """Extra endings so far: the index the next one will have in `duplicates()`."""
        return int(self.client.llen(key(self.run_id, "dups")))

    def not_ended(self, task_ids: Collection[str]) -> set[str]:
        """Those of `task_ids` that have not ended yet (needs a run that records timings)."""
        ids = list(task_ids)
        ended = self.client.hmget(key(self.run_id, "seen"), ids) if ids else []
        return {task_id for task_id, times in zip(ids, ended, strict=True) if times is None}

    def wait(self, expected: int, timeout: float, on_progress: Callable[[int], None] | None = None,
             queues: Sequence[str] = (), stall_s: float | None = None, poll_s: float = 0.05,
             broker_patience_s: float = 60.0, drain_every_s: float = 1.0) -> WaitResult:
        """Poll until `expected` distinct tasks ended, `timeout` passed, or the run stalled.

        Stalled: nothing ended for `stall_s` and nothing of `queues` is queued or unacked (the
        rest are lost). Timing lines are folded in as they arrive, so memory stays bounded.
        Redis may go away meanwhile (a restart): polls fail and are retried; past
        `broker_patience_s` without an answer, BrokerLost says how far the run got.
        """
        started = last_move = last_answer = last_drain = time.monotonic()
        done = -1
        while True:
            now = time.monotonic()
            try:
                seen = self.distinct_finished()
                if seen != done:
                    done, last_move = seen, now
                    if on_progress:
                        on_progress(done)
                if now - last_drain > drain_every_s:
                    self.drain_timings()
                    last_drain = now
                stalled = stall_s is not None and now - last_move > stall_s and not pending_in_broker(
                    self.client, queues)
            except (redis.ConnectionError, redis.TimeoutError):
                if now - last_answer > broker_patience_s:
                    raise BrokerLost(self._lost_message(now - last_answer, expected, max(done, 0))) from None
                time.sleep(min(1.0, poll_s * 10))
                continue
            last_answer = now
            if done >= expected or stalled or now - started > timeout:
                return WaitResult(done >= expected, now, done)
            time.sleep(poll_s)

    def account(self, sent: int, queues: Sequence[str]) -> Accounting:
        """Completed and failed endings, duplicates, what is still in Redis, and what is lost."""
        counts = self.counts()
        ended = sum(counts.values())
        completed = counts.get("SUCCESS", 0)
        times = [int(n) for _, n in self.client.hscan_iter(key(self.run_id, "seen"))]
        duplicated = sum(1 for n in times if n > 1)
        distinct = ended - sum(n - 1 for n in times if n > 1)
        queued = pending_in_broker(self.client, queues) if distinct < sent else 0
        lost = max(0, sent - distinct - queued)
        return Accounting(sent, completed, ended - completed, duplicated, queued, lost)

    def delete(self) -> None:
        self.client.delete(*keys(self.run_id))

    def _lost_message(self, gone_s: float, sent: int, done: int) -> str:
        where = self.client.connection_pool.connection_kwargs
        return (f"broker at {where.get('host', '?')}:{where.get('port', '?')} unreachable for {gone_s:.0f} s; "
                f"sent {sent}, done {done}, unknown {sent - done}")


def pending_in_broker(client: redis.Redis, queues: Sequence[str]) -> int:
    """Messages of `queues` still waiting, plus those delivered to a worker and not acknowledged."""
    if not queues:
        return 0
    return sum(int(client.llen(queue)) for queue in queues) + unacked_for(client, queues)


def unacked_for(client: redis.Redis, queues: Sequence[str]) -> int:
    """Messages of `queues` delivered to a worker and not acknowledged (kombu's unacked records)."""
    count = 0
    for _, record in client.hscan_iter(UNACKED_KEY):
        try:
            routing_key = json.loads(record)[2]
        except (ValueError, IndexError, TypeError):
            continue
        count += routing_key in queues
    return count


def unacked_task_ids(client: redis.Redis, queues: Sequence[str]) -> set[str]:
    """Task ids of the messages of `queues` delivered to a worker and not acknowledged: what is in flight."""
    ids = set()
    for _, record in client.hscan_iter(UNACKED_KEY):
        try:
            message, _exchange, routing_key = json.loads(record)
            task_id = message["headers"]["id"]
        except (ValueError, KeyError, TypeError):
            continue
        if routing_key in queues:
            ids.add(str(task_id))
    return ids


def unacked_delivered_before(client: redis.Redis, when: float) -> int:
    """Messages delivered to a worker before `when` (epoch seconds) and still not acknowledged.

    After a fault strikes at `when`, this reaching 0 means every message a worker held then was
    acknowledged or handed out again (kombu's sweep restores it once the visibility timeout passed).
    """
    return int(client.zcount(UNACKED_INDEX_KEY, "-inf", f"({when}"))


def pool_of(worker: str) -> str:
    """The pool part of a worker name (`threads@host` -> `threads`)."""
    return worker.split("@", 1)[0]


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
