"""`lab up`: the native stack in the foreground until Ctrl-C, restarting any part that dies."""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from config import Settings, redact
from config.settings import STATE_FILE
from stack.launcher import Stack, running_stack
from stack.supervisor import Part, StackDown, Supervisor

POLL_S = 0.5


def run_foreground(settings: Settings, pools: Sequence[str], run_dir: Path, monitoring: bool = False) -> None:
    console = Console()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with running_stack(settings, run_dir, pools, with_prometheus=monitoring) as stack:
            _announce(console, stack)
            supervisor = Supervisor(supervised_parts(stack), lambda line: console.print(f"[yellow]{line}[/yellow]"))
            while True:
                supervisor.check()
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        console.print("stopping: warm shutdown of the workers, then Redis")
    except StackDown as exc:
        console.print(f"[red]{exc}; stopping the stack[/red]")
    console.print("stack stopped")


def supervised_parts(stack: Stack) -> list[Part]:
    """Redis first (the others need it), then the workers, Flower and Prometheus."""
    parts = [Part("redis", stack.redis, essential=True)] if stack.redis else []
    parts += [Part(f"worker {pool}", worker) for pool, worker in stack.workers.items()]
    others = (("flower", stack.flower), ("prometheus", stack.prometheus), ("latency server", stack.latency))
    parts += [Part(name, thing) for name, thing in others if thing is not None]
    return parts


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _announce(console: Console, stack: Stack) -> None:
    s = stack.settings
    console.print(f"broker   {redact(s.require_broker())}  (embedded: {stack.redis is not None})")
    for pool, worker in stack.workers.items():
        console.print(f"worker   {worker.name}  pool={pool} concurrency={worker.concurrency} "
                      f"queue={s.queue_for(pool)}  ready in {worker.startup_s:.1f} s")
    if stack.flower:
        console.print(f"flower   {s.flower_url}  user={s.flower_user}, password in {s.state_dir / STATE_FILE} (0600)")
    if stack.latency:
        console.print(f"latency  {s.latency_server}  (the socket I/O of `send --task mixed`)")
    if stack.prometheus:
        console.print(f"prometheus {stack.prometheus.url}  (scrapes flower's /metrics; try `flower_events_total`)")
    console.print(f"logs     {stack.run_dir}/   producer: `producer send --task square -n 100 --wait`")
    console.print("a part that dies is restarted; Ctrl-C stops the stack")
