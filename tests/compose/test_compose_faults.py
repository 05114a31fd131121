"""The lab across hosts: each container a host with its own address, and three faults a host suffers.

One stack for the three tests (compose/faults.yml publishes Redis on 127.0.0.1 for the harness):
two replicas of each worker, a 10 s visibility timeout, the latency service for `mixed --io
socket`. Each test runs the producer service in the compose network (2,000 mixed tasks at 150/s,
so the fault strikes while it still sends), follows the run in the ledger from the host, strikes
one fault at a quarter of the run (stack/compose/faults.py), waits for the recovery, lets the run
settle, and accounts for every task by id:

* partition of a threads worker past the visibility timeout: what it held is handed to the others;
  back on the network it finishes and acknowledges what it still held. Every duplicate ran on it.
* host loss of a prefork worker (its container's processes SIGKILLed at once); the restart policy
  starts it again. Every duplicate ran on it first.
* broker restart (`compose restart redis`, AOF): producer and workers reconnect by themselves.

0 lost and 0 failed in each; duplicates at most what the hit workers can hold (running plus
prefetched). Each test prints its row of the fault table (docs/faults.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from stack.compose import engine as en
from stack.compose.faults import Fault, FaultStack, Harness, producer_summary, safely, settle
from stack.processes import wait_until
from tasks.ledger import Accounting, Duplicate, RunLedger

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1500)]

PER_POOL = 1000
WORKLOAD = ["--task", "mixed", "--cpu-ms", "2", "--io-ms", "20", "--io", "socket", "--rate", "150"]
FAULT_AT = 0.25
PRODUCER_TIMEOUT_S = 600


@dataclass
class Stack:
    stack: FaultStack
    app: Celery
    client: redis.Redis


@dataclass
class Outcome:
    producer: dict[str, Any]
    accounting: Accounting
    duplicates: list[Duplicate]
    fault: Fault


@pytest.fixture(scope="module")
def faults_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Up once for the module; `down -v` at the end leaves no container, volume or network."""
    engine = en.choose_engine()
    stack = FaultStack.create(engine, tmp_path_factory.mktemp("faults"))
    times: dict[str, float] = {}
    try:
        with stack.clients() as (app, client):
            with en.phase("build + up + every replica answering", times), logs_on_failure(stack):
                stack.up(app)
            yield Stack(stack, app, client)
    finally:
        with en.phase("compose down -v", times):
            down = stack.down()
        print("\nfault stack: " + ", ".join(f"{name} {s:.1f} s" for name, s in times.items()))
        left = stack.project.containers() + stack.project.volumes() + stack.project.networks()
        if left:
            engine.force_remove(stack.project)
        assert down.returncode == 0 and not left, f"`down -v` left {left}: {down.stderr[-2000:]}"


@contextmanager
def logs_on_failure(stack: FaultStack) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(f"\ncontainer logs:\n{stack.project.logs()}")
        raise


def run_with_fault(env: Stack, tmp_path: Path, strike: Callable[[Harness], Fault]) -> Outcome:
    """2,000 mixed tasks by the producer service, the fault at a quarter, then every task accounted for."""
    run_id = f"faults-{uuid.uuid4().hex[:8]}"
    ledger = RunLedger(env.client, run_id)
    harness = Harness(env.stack, env.app, env.client, ledger)
    total = 2 * PER_POOL
    with logs_on_failure(env.stack):
        producer = env.stack.start_producer(run_id, PER_POOL, WORKLOAD, tmp_path / "producer.log", PRODUCER_TIMEOUT_S)
        wait_until(safely(lambda: ledger.distinct_finished() >= FAULT_AT * total), 180, "a quarter of the run done",
                   producer, interval=0.2)  # type: ignore[arg-type]
        fault = strike(harness)
        summary = producer_summary(producer, PRODUCER_TIMEOUT_S)
        settle(harness)
    outcome = Outcome(summary, ledger.account(total, env.stack.queues), ledger.duplicates(), fault)
    print_row(outcome, env.stack)
    check_nothing_lost(outcome, total, (tmp_path / "producer.log").read_text())
    return outcome


def print_row(outcome: Outcome, stack: FaultStack) -> None:
    """The fault table's row (docs/faults.md): the accounting, the fault's figures, the producer's view."""
    row = {**outcome.accounting.as_dict(), **outcome.fault.summary(outcome.duplicates)}
    row.pop("duplicates")
    print(f"\nfault row (vt {stack.visibility_timeout} s): {row}\nproducer said: {outcome.producer}")


def check_nothing_lost(outcome: Outcome, total: int, producer_log: str) -> None:
    """The producer finished by itself with exit 0, and the ledger accounts for every task by id."""
    summary, acc = outcome.producer, outcome.accounting
    assert summary.get("exit_code") == 0, producer_log[-3000:]
    assert "Traceback" not in producer_log
    assert (summary["sent"], summary["failed"], summary["lost"]) == (total, 0, 0), summary
    assert (acc.sent, acc.failed, acc.queued, acc.lost) == (total, 0, 0, 0), acc
    # Each extra ending is one entry of duplicates(); a task caught by two redeliveries ends three
    # times, so `duplicated` (tasks that ended more than once) can be smaller than the extra endings.
    assert acc.completed == total + len(outcome.duplicates), acc
    assert acc.duplicated <= len(outcome.duplicates) <= 2 * max(acc.duplicated, 1), acc
    assert outcome.fault.done_at < total, "the fault came after the run: send more tasks"


def test_a_partitioned_worker_loses_nothing_and_every_duplicate_ran_on_it(faults_stack: Stack,
                                                                           tmp_path: Path) -> None:
    (container, *_) = faults_stack.stack.project.containers("worker-threads")
    outcome = run_with_fault(faults_stack, tmp_path, lambda harness: harness.partition(container))
    fault = outcome.fault
    assert fault.fault_s > faults_stack.stack.visibility_timeout
    (worker,) = fault.workers
    # What it held was handed out again after the visibility timeout and ran elsewhere; back on the
    # network it finished what it still held: either ending may come first, one of them is its own.
    # Back online it also gives back what it had not started, which may then run a third time on
    # another worker: every duplicate is of a task the cut worker held or ran.
    its_tasks = {d.task_id for d in outcome.duplicates if fault.involves(d)}
    assert all(d.task_id in its_tasks or fault.caught(d.task_id) for d in outcome.duplicates), outcome.duplicates
    assert len(outcome.duplicates) <= faults_stack.stack.in_flight_limit(worker)


def test_a_lost_host_comes_back_by_its_restart_policy_and_loses_nothing(faults_stack: Stack, tmp_path: Path) -> None:
    (container, *_) = faults_stack.stack.project.containers("worker-prefork")
    restarts = faults_stack.stack.engine.restarts(container)
    outcome = run_with_fault(faults_stack, tmp_path, lambda harness: harness.host_loss(container))
    assert faults_stack.stack.engine.restarts(container) == restarts + 1
    (worker,) = outcome.fault.workers
    # Only a task that had ended on it but whose ack died with it can end twice, first on it.
    assert all(duplicate.first_worker == worker for duplicate in outcome.duplicates), outcome.duplicates
    assert len(outcome.duplicates) <= faults_stack.stack.in_flight_limit(worker)


def test_a_broker_restart_loses_nothing_and_everyone_reconnects(faults_stack: Stack, tmp_path: Path) -> None:
    stack = faults_stack.stack
    restarts = {container: stack.engine.restarts(container) for container in stack.workers}
    outcome = run_with_fault(faults_stack, tmp_path, lambda harness: harness.broker_restart())
    # Only tasks whose ack the restart dropped can end twice: at most what all workers held.
    assert len(outcome.duplicates) <= sum(stack.in_flight_limit(worker) for worker in stack.workers.values())
    assert {c: stack.engine.restarts(c) for c in stack.workers} == restarts, "a worker needed its restart policy"
