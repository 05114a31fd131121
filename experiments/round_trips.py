"""Redis round trips per task, counted with MONITOR while a worker drains noop tasks behind a relay.

`INFO commandstats` says how many commands a task costs, not how many round trips, nor which of
them the worker waits for one after another. Behind a relay of RTT r the difference is visible in
time: commands a client pipelines reach Redis microseconds apart, commands it waits for between
arrive at least r apart. So for one repetition of noop tasks the census records every command of
the worker's broker connections (the relay's upstream sockets; the worker's ledger writes and the
runner's traffic are direct and left out) and:

* groups each connection's commands into round trips (a gap under r/2 = the same round trip);
* finds the consumer's connection (the one that waits with BLMOVE) and takes the median time
  between its successive BLMOVEs: the consumer's cycle per task (`cycle_ms`). It holds the
  consumer's own work per task and the round trips it waits for one after another, including
  whatever else holds its loop (an ack on the same thread), which no count of commands could
  tell. The report subtracts the consumer's own time per task (1 / the same pool's noop rate at
  RTT 0) and divides by r: the serial round trips per task the model uses
  (tasks.workloads.broker_bound_per_s).
"""

from __future__ import annotations

import collections
import itertools
import math
import statistics
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis

from stack.relay import DelayRelay

STOP_PREFIX = "lab-monitor-stop-"
WAIT_COMMAND = "BLMOVE"


@dataclass
class Recorder:
    """MONITOR on its own connection, in a thread, until it sees its own stop marker."""

    url: str
    commands: list[dict[str, Any]] = field(default_factory=list)
    token: str = field(default_factory=lambda: STOP_PREFIX + uuid.uuid4().hex)
    thread: threading.Thread | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Recorder:
        self.thread = threading.Thread(target=self._record, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("MONITOR did not start")
        return self

    def _record(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            with client.monitor() as monitor:
                self.ready.set()
                while (entry := monitor.next_command()) is not None:
                    if self.token in entry["command"]:
                        return
                    self.commands.append(entry)
        finally:
            client.close()

    def __exit__(self, *_: object) -> None:
        with redis.Redis.from_url(self.url) as client:
            client.echo(self.token)
        if self.thread is not None:
            self.thread.join(30)


def relay_ports(relay: DelayRelay) -> set[str]:
    """The local ports of the relay's sockets to Redis: how Redis (and MONITOR) names the worker's connections."""
    assert relay.process is not None, "relay not started"
    sockets = psutil.Process(relay.process.pid).net_connections(kind="tcp")
    return {str(conn.laddr.port) for conn in sockets if conn.raddr and conn.raddr.port == relay.target_port}


def round_trips(times: list[float], rtt_s: float) -> int:
    """Commands of one connection grouped into round trips: a gap of at least rtt/2 starts a new one."""
    ordered = sorted(times)
    return sum(1 for before, after in itertools.pairwise([-math.inf, *ordered]) if after - before >= rtt_s / 2)


def summarise(commands: Iterable[dict[str, Any]], ports: set[str], tasks: int, rtt_ms: float) -> dict[str, Any]:
    """Commands, round trips and the consumer's serial round trips per task, from MONITOR entries."""
    rtt_s = rtt_ms / 1000
    by_port: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    names: collections.Counter[str] = collections.Counter()
    for entry in commands:
        if entry["client_type"] == "tcp" and entry["client_port"] in ports:
            by_port[entry["client_port"]].append(entry)
            names[entry["command"].split(" ", 1)[0].upper()] += 1
    trips = {port: round_trips([e["time"] for e in entries], rtt_s) for port, entries in by_port.items()}
    consumer = max(by_port, key=lambda port: _count(by_port[port], WAIT_COMMAND), default=None)
    waits = [e["time"] for e in by_port.get(consumer or "", []) if e["command"].upper().startswith(WAIT_COMMAND)]
    gaps = [after - before for before, after in itertools.pairwise(waits)]
    consumer_trips = trips.get(consumer or "", 0)
    return {
        "rtt_ms": rtt_ms,
        "tasks": tasks,
        "connections": len(by_port),
        "commands_per_task": sum(names.values()) / tasks,
        "commands": dict(names.most_common()),
        "round_trips_per_task": sum(trips.values()) / tasks,
        "consumer_round_trips_per_task": consumer_trips / tasks,
        "other_round_trips_per_task": (sum(trips.values()) - consumer_trips) / tasks,
        "cycle_ms": statistics.median(gaps) * 1000 if gaps else None,
    }


def _count(entries: list[dict[str, Any]], name: str) -> int:
    return sum(1 for e in entries if e["command"].upper().startswith(name))
