"""`lab up`: the native stack in the foreground until Ctrl-C (or until a part dies)."""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from config import Settings
from stack.launcher import Stack, running_stack
from tasks.connections import redact


def run_foreground(settings: Settings, pools: Sequence[str], run_dir: Path, monitoring: bool = False) -> None:
    console = Console()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with running_stack(settings, run_dir, pools, with_prometheus=monitoring) as stack:
            _announce(console, stack)
            while (dead := _dead_part(stack)) is None:
                time.sleep(0.5)
            console.print(f"[red]{dead} exited; stopping the stack[/red]")
    except KeyboardInterrupt:
        console.print("stopping: warm shutdown of the workers, then Redis")
    console.print("stack stopped")


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _dead_part(stack: Stack) -> str | None:
    for pool, worker in stack.workers.items():
        if worker.process is None or worker.process.poll() is not None:
            return f"worker {pool}"
    if stack.flower and (stack.flower.process is None or stack.flower.process.poll() is not None):
        return "flower"
    if stack.prometheus and (stack.prometheus.process is None or stack.prometheus.process.poll() is not None):
        return "prometheus"
    return None


def _announce(console: Console, stack: Stack) -> None:
    s = stack.settings
    console.print(f"broker   {redact(s.require_broker())}  (embedded: {stack.redis is not None})")
    for pool, worker in stack.workers.items():
        console.print(f"worker   {worker.name}  pool={pool} concurrency={worker.concurrency} "
                      f"queue={s.queue_for(pool)}  ready in {worker.startup_s:.1f} s")
    if stack.flower:
        console.print(f"flower   {s.flower_url}  user={s.flower_user} password={s.flower_password}")
    if stack.prometheus:
        console.print(f"prometheus {stack.prometheus.url}  (scrapes flower's /metrics; try `flower_events_total`)")
    console.print(f"logs     {stack.run_dir}/   producer: `producer send --task square -n 100 --wait`")
    console.print("Ctrl-C to stop")
