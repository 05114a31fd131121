"""Keep the native stack up: restart a part that died, as compose's `restart: unless-stopped` does.

A SIGKILLed worker used to take the whole stack down with it (Flower, the other worker, the
embedded Redis), and a producer waiting in another terminal died with a connection error. Now a
dead worker, Flower or Prometheus is started again after a backoff (0.5 s, doubling up to 30 s,
back to 0.5 s once the part has run for a minute), with one line saying so and counting restarts.
The tasks the dead worker held come back through the visibility timeout (`task_acks_late`), so a
run still ends with nothing lost. The embedded Redis is restarted too (same port, AOF replays the
queues); only a Redis that does not come back after `MAX_REDIS_ATTEMPTS` stops the stack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from subprocess import Popen
from typing import Any, Protocol

from config.errors import UserError

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 60.0  # a part that ran this long starts again from the first backoff
MAX_REDIS_ATTEMPTS = 5


class StackDown(UserError, RuntimeError):
    """A part the stack cannot run without did not come back."""


class Restartable(Protocol):
    """What the stack's parts (RedisServer, Worker, Flower, Prometheus) have in common."""

    process: Popen[bytes] | None

    def start(self) -> Any: ...


@dataclass
class Part:
    """One supervised process and what the supervisor knows about its restarts."""

    name: str
    thing: Restartable
    essential: bool = False  # the stack stops if it cannot be restarted (Redis)
    restarts: int = 0
    backoff_s: float = FIRST_BACKOFF_S
    up_since: float = field(default_factory=time.monotonic)

    def exit_code(self) -> int | None:
        """None while it runs; its exit code (or -1 if it has no process) once it died."""
        process = self.thing.process
        if process is None:
            return -1
        return process.poll()


class Supervisor:
    """Polls the parts; restarts the dead ones in place, reporting each restart through `say`."""

    def __init__(self, parts: list[Part], say: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, pause: Callable[[float], None] = time.sleep) -> None:
        self.parts = parts
        self.say = say
        self.clock = clock
        self.pause = pause

    def check(self) -> None:
        """One round: restart every part that died since the last round."""
        for part in self.parts:
            code = part.exit_code()
            if code is None:
                if self.clock() - part.up_since > HEALTHY_AFTER_S:
                    part.backoff_s = FIRST_BACKOFF_S
                continue
            self._restart(part, code)

    def _restart(self, part: Part, code: int) -> None:
        attempts = 0
        while True:
            attempts += 1
            part.restarts += 1
            self.say(f"{part.name} exited (code {code}); restarting in {part.backoff_s:g} s "
                     f"(restart {part.restarts})")
            self.pause(part.backoff_s)
            part.backoff_s = min(MAX_BACKOFF_S, part.backoff_s * 2)
            try:
                part.thing.start()
            except (RuntimeError, TimeoutError, OSError) as exc:
                if part.essential and attempts >= MAX_REDIS_ATTEMPTS:
                    raise StackDown(f"{part.name} did not come back after {attempts} attempts: {exc}") from None
                self.say(f"{part.name} did not start: {exc}")
                if not part.essential:
                    return  # tried again on the next round, after a longer backoff
                continue
            part.up_since = self.clock()
            self.say(f"{part.name} is back after {part.restarts} restart(s)")
            return
