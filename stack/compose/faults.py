"""Host faults on the compose stack, and what each one cost (the fault tests' and benchmark's harness).

Every container is a host with its own address on the compose network. The harness runs on the
host: it follows the run in the ledger through Redis published on 127.0.0.1 by compose/faults.yml
(test/benchmark only: users' docker-compose.yml publishes no Redis), asks the workers over
Celery's control channel, and breaks things with the engine's own commands:

* partition: `network disconnect` of one worker container for longer than the visibility timeout
  (until every message delivered before the cut has been handed out again), then `network connect`;
* host loss: the container's main process SIGKILLed from the host, a crash the restart policy
  (`unless-stopped`) answers by starting it again (`Engine.crash` says why not `docker kill`);
* broker restart: `compose restart redis` (AOF on its volume);
* rolling restart: `restart` of every worker container in turn (SIGTERM: Celery's warm shutdown,
  bounded by `stop_grace_period`), each answering a ping before the next goes.

A fault has recovered when every worker answers a ping, no message delivered before it struck is
still unacknowledged (the visibility timeout handed them out again), and every task the workers it
hit held then (active or prefetched, asked just before) has ended and is held by them no more: a
partitioned worker that comes back finishes what it still held, and those endings belong to it.
Each duplicate is attributed to the fault that caught its task in flight (Redis' unacknowledged
messages just before the fault, or what the hit workers said they held), else to the fault in
whose window (its start to the next one's) it was recorded: the ledger appends them in order.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from config import Settings
from stack.compose import engine as en
from stack.processes import wait_until
from stack.redis_server import free_port
from tasks import connections
from tasks.ledger import Duplicate, RunLedger, pending_in_broker, unacked_delivered_before, unacked_task_ids

FAULTS_FILES = (*en.COMPOSE_FILES, en.COMPOSE_DIR / "faults.yml")
POOLS = ("threads", "prefork")
CONTROL_TIMEOUT_S = 3.0  # a starved worker answers a ping late; a missing answer is asked again
RECOVERY_TIMEOUT_S = 300.0


def env_file(path: Path, replicas: int, visibility_timeout: int, concurrency: dict[str, int]) -> dict[str, str]:
    """.env.example with fresh passwords, free ports, the replicas and a short visibility timeout (0600)."""
    return en.example_env(path, LAB_FLOWER_PORT=str(free_port()), LAB_FAULTS_REDIS_PORT=str(free_port()),
                          LAB_THREADS_REPLICAS=str(replicas), LAB_PREFORK_REPLICAS=str(replicas),
                          LAB_VISIBILITY_TIMEOUT=str(visibility_timeout),
                          LAB_THREADS_CONCURRENCY=str(concurrency["threads"]),
                          LAB_PREFORK_CONCURRENCY=str(concurrency["prefork"]))


@dataclass
class Fault:
    """One fault: whom it hit, what they held, and how long it and the recovery took."""

    name: str
    workers: tuple[str, ...]  # worker names (pool@hostname) it hit
    done_at: int  # distinct tasks ended when it struck
    dups_from: int  # index of its first duplicate in the ledger's list
    wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    held: set[str] = field(default_factory=set)  # task ids the hit workers said they held when it struck
    in_flight: set[str] = field(default_factory=set)  # task ids delivered and unacknowledged (Redis) then
    fault_s: float = 0.0  # cut off / down / restarting
    recovered_s: float = 0.0  # from the strike until recovered (module docstring)
    dups_to: int | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def involves(self, duplicate: Duplicate) -> bool:
        """The task ran, first or again, on a worker this fault hit."""
        return duplicate.first_worker in self.workers or duplicate.again_worker in self.workers

    def caught(self, task_id: str) -> bool:
        """The task was in flight when this fault struck (Redis' unacked messages, or a hit worker said so)."""
        return task_id in self.in_flight or task_id in self.held

    def summary(self, mine: list[Duplicate]) -> dict[str, Any]:
        """Its figures, and its duplicates (`attribute`) with what explains them."""
        return {"fault": self.name, "workers": list(self.workers), "done_at": self.done_at, "held": len(self.held),
                "in_flight": len(self.in_flight), "fault_s": round(self.fault_s, 1),
                "recovered_s": round(self.recovered_s, 1), "duplicated": len(mine),
                "in_flight_when_struck": sum(self.caught(d.task_id) for d in mine),
                "first_on_hit_worker": sum(d.first_worker in self.workers for d in mine),
                "again_on_hit_worker": sum(d.again_worker in self.workers for d in mine),
                "not_involving_hit_worker": [d.task_id for d in mine if not self.involves(d)],
                "duplicates": [[d.task_id, d.first_worker, d.again_worker, self.caught(d.task_id)] for d in mine]}


def attribute(faults: list[Fault], duplicates: list[Duplicate]) -> tuple[list[list[Duplicate]], list[Duplicate]]:
    """Each duplicate to the fault that caught its task in flight (the latest, if several did), else to
    the fault in whose window it was recorded; the duplicates no fault explains, apart."""
    mine: list[list[Duplicate]] = [[] for _ in faults]
    unexplained: list[Duplicate] = []
    for index, duplicate in enumerate(duplicates):
        caught = [n for n, fault in enumerate(faults) if fault.caught(duplicate.task_id)]
        during = [n for n, fault in enumerate(faults)
                  if fault.dups_from <= index and (fault.dups_to is None or index < fault.dups_to)]
        chosen = caught or during
        (mine[chosen[-1]] if chosen else unexplained).append(duplicate)
    return mine, unexplained


@dataclass
class FaultStack:
    """The compose project with Redis published on 127.0.0.1, and the host-side view of it."""

    project: en.ComposeProject
    values: dict[str, str]  # the env file: holds passwords, never printed
    workers: dict[str, str] = field(default_factory=dict)  # container -> worker name

    @classmethod
    def create(cls, engine: en.Engine, directory: Path, replicas: int = 2, visibility_timeout: int = 10,
               concurrency: dict[str, int] | None = None) -> FaultStack:
        env_path = directory / "lab.env"
        values = env_file(env_path, replicas, visibility_timeout, concurrency or {"threads": 4, "prefork": 2})
        project = en.ComposeProject(engine, f"labfaults{secrets.token_hex(4)}", env_path, files=FAULTS_FILES)
        return cls(project, values)

    @property
    def engine(self) -> en.Engine:
        return self.project.engine

    @property
    def settings(self) -> Settings:
        """The host's settings: the broker as published on 127.0.0.1, the stack's queues and timeout."""
        url = f"redis://:{self.values['REDIS_PASSWORD']}@127.0.0.1:{self.values['LAB_FAULTS_REDIS_PORT']}/0"
        return Settings(broker_url=url, queue_prefix=self.values["LAB_QUEUE_PREFIX"],
                        visibility_timeout=int(self.values["LAB_VISIBILITY_TIMEOUT"]))

    @property
    def visibility_timeout(self) -> int:
        return int(self.values["LAB_VISIBILITY_TIMEOUT"])

    @property
    def queues(self) -> list[str]:
        return [self.settings.queue_for(pool) for pool in POOLS]

    def in_flight_limit(self, worker: str) -> int:
        """What one worker can hold: running plus prefetched (concurrency x (multiplier + 1))."""
        concurrency = int(self.values[f"LAB_{worker.split('@')[0].upper()}_CONCURRENCY"])
        return concurrency * (self.settings.prefetch_multiplier + 1)

    def up(self, app: Celery) -> None:
        """Base image, `up --build --wait`, then every worker replica answering a ping."""
        self.engine.ensure_base_image()
        self.engine.build_and_up(self.project)
        for pool in POOLS:
            for container in self.project.containers(f"worker-{pool}"):
                self.workers[container] = f"{pool}@{self.engine.state(container, '{{.Config.Hostname}}')}"
        wait_until(lambda: answering(app, self.workers.values()) == set(self.workers.values()), 120,
                   "every worker replica answering a ping", interval=0.5)

    def save_logs(self, directory: Path) -> None:
        """Every container's whole log, one file each, with the stack's passwords masked (a precaution)."""
        directory.mkdir(parents=True, exist_ok=True)
        secrets_ = [value for name, value in self.values.items() if "PASSWORD" in name]
        for container in self.project.containers():
            result = self.engine.cli("logs", "--timestamps", container, check=False, timeout=120)
            text = result.stdout + result.stderr
            for secret in secrets_:
                text = text.replace(secret, "***")
            (directory / f"{container}.log").write_text(text)

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.project.compose("down", "-v", check=False)

    @property
    def network(self) -> str:
        (network,) = self.project.networks()
        return network

    def start_producer(self, run_id: str, per_pool: int, workload: list[str], log: Path,
                       timeout_s: float) -> subprocess.Popen[str]:
        """The producer service in the compose network: send, wait, summarise as JSON (run `run_id`)."""
        return self.project.popen("run", "--rm", "-T", "producer", "send", "-n", str(per_pool), "--pool", "both",
                                  *workload, "--wait", "--json", "--timeout", str(timeout_s), "--run-id", run_id,
                                  log=log, profile="producer")

    @contextmanager
    def clients(self) -> Iterator[tuple[Celery, redis.Redis]]:
        with connections.client_app(self.settings) as app, connections.redis_client(self.settings.require_broker(),
                                                                                    timeout=10) as client:
            yield app, client


def answering(app: Celery, names: Any) -> set[str]:
    """The workers among `names` that answer a ping now (none while the broker is away)."""
    try:
        replies = app.control.ping(destination=list(names), timeout=CONTROL_TIMEOUT_S)
    except Exception:  # the broker restarting: kombu and redis raise their own kinds
        return set()
    return {name for reply in replies for name in reply}


def holdings(app: Celery, names: Any) -> dict[str, set[str]]:
    """Ids of the tasks each of `names` runs or has prefetched, as it says itself; a silent worker is left out."""
    inspect = app.control.inspect(destination=list(names), timeout=CONTROL_TIMEOUT_S)
    try:
        active, reserved = inspect.active() or {}, inspect.reserved() or {}
    except Exception:  # the broker restarting: nobody answered
        return {}
    return {name: {task["id"] for task in active[name] + reserved[name]}
            for name in names if name in active and name in reserved}


def held_by(app: Celery, names: Any) -> set[str] | None:
    """Everything `names` hold together; None unless every one of them answered."""
    replies = holdings(app, names)
    if set(replies) != set(names):
        return None
    return set().union(*replies.values())


def safely(check: Callable[[], bool]) -> Callable[[], bool]:
    """A wait condition that reads Redis: False (ask again) while Redis does not answer."""

    def guarded() -> bool:
        try:
            return check()
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    return guarded


@dataclass
class Harness:
    """Strikes faults at a running stack while a run goes on, and waits for each to recover."""

    stack: FaultStack
    app: Celery
    client: redis.Redis
    ledger: RunLedger
    faults: list[Fault] = field(default_factory=list)
    on_event: Callable[[str], None] = print

    def strike(self, name: str, containers: list[str]) -> Fault:
        """Note the moment (done so far, duplicates so far, what the hit workers hold), before breaking."""
        workers = tuple(self.stack.workers[c] for c in containers)
        held = held_by(self.app, workers) or set()
        if self.faults and self.faults[-1].dups_to is None:
            self.faults[-1].dups_to = self.ledger.duplicate_count()
        fault = Fault(name, workers, self.ledger.distinct_finished(), self.ledger.duplicate_count(), held=held,
                      in_flight=unacked_task_ids(self.client, self.stack.queues))
        self.faults.append(fault)
        self.on_event(f"{name}: {', '.join(containers)} at {fault.done_at:,} done, holding {len(held)} tasks")
        return fault

    def recovered(self, fault: Fault) -> bool:
        everyone = set(self.stack.workers.values())
        if answering(self.app, everyone) != everyone or unacked_delivered_before(self.client, fault.wall):
            return False
        still = held_by(self.app, fault.workers)
        return still is not None and not still & fault.held and not self.ledger.not_ended(fault.held | fault.in_flight)

    def wait_recovered(self, fault: Fault) -> Fault:
        wait_until(safely(lambda: self.recovered(fault)), RECOVERY_TIMEOUT_S, f"{fault.name} recovered",
                   interval=0.5)
        fault.recovered_s = fault.elapsed()
        self.on_event(f"{fault.name}: fault {fault.fault_s:.1f} s, recovered after {fault.recovered_s:.1f} s")
        return fault

    def partition(self, container: str, hold_s: float | None = None) -> Fault:
        """Cut one worker off for longer than the visibility timeout, until what it held went elsewhere."""
        hold_s = hold_s if hold_s is not None else 1.5 * self.stack.visibility_timeout
        fault = self.strike("partition", [container])
        self.stack.engine.disconnect(self.stack.network, container)
        wait_until(safely(lambda: fault.elapsed() > hold_s and unacked_delivered_before(self.client, fault.wall) == 0),
                   hold_s + RECOVERY_TIMEOUT_S, "every message it held handed out again", interval=0.5)
        self.stack.engine.connect(self.stack.network, container)
        fault.fault_s = fault.elapsed()
        return self.wait_recovered(fault)

    def host_loss(self, container: str) -> Fault:
        """The worker's host dies at once; the restart policy brings the container back."""
        restarts = self.stack.engine.restarts(container)
        fault = self.strike("host loss", [container])
        self.stack.engine.crash(container)
        wait_until(lambda: self.stack.engine.restarts(container) > restarts, 120, f"{container} restarted",
                   interval=0.2)
        fault.fault_s = fault.elapsed()
        return self.wait_recovered(fault)

    def broker_restart(self) -> Fault:
        """`compose restart redis`: every worker and the producer lose the broker, then find it again."""
        fault = self.strike("broker restart", list(self.stack.workers))
        self.stack.project.compose("restart", "redis", timeout=120)
        wait_until(safely(lambda: bool(self.client.ping())), 120, "redis answering", interval=0.2)
        fault.fault_s = fault.elapsed()
        return self.wait_recovered(fault)

    def rolling_restart(self) -> Fault:
        """Every worker container restarted in turn (warm shutdown), each answering before the next goes."""
        fault = self.strike("rolling restart", list(self.stack.workers))
        for container, worker in self.stack.workers.items():
            fault.held |= held_by(self.app, [worker]) or set()
            fault.in_flight |= unacked_task_ids(self.client, self.stack.queues)
            self.stack.engine.restart(container)
            wait_answering(self.app, worker, 180)
            self.on_event(f"rolling restart: {container} back after {fault.elapsed():.1f} s")
        fault.fault_s = fault.elapsed()
        return self.wait_recovered(fault)


def wait_answering(app: Celery, worker: str, timeout: float) -> None:
    wait_until(lambda: answering(app, [worker]) == {worker}, timeout, f"{worker} answering a ping", interval=0.5)


def settle(harness: Harness) -> None:
    """Wait until nothing of the run is queued, unacknowledged, or held by a worker (all of them asked).

    Then every task has ended or is lost; a worker that still holds a task someone else already
    ran (a partitioned one, back) has run it by then too, so its duplicate is counted.
    """
    everyone = list(harness.stack.workers.values())

    def settled() -> bool:
        if pending_in_broker(harness.client, harness.stack.queues):
            return False
        return held_by(harness.app, everyone) == set()

    wait_until(safely(settled), RECOVERY_TIMEOUT_S, "the run settled", interval=1.0)
    if harness.faults and harness.faults[-1].dups_to is None:
        harness.faults[-1].dups_to = harness.ledger.duplicate_count()


def producer_summary(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The producer's own JSON summary (its last stdout line); its exit code beside it."""
    out, _ = process.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    summary: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    summary["exit_code"] = process.returncode
    return summary
