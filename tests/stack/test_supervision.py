"""`lab up` keeps the stack up: a SIGKILLed worker or Flower comes back, and a run loses nothing.

Before, one dead worker stopped the whole stack (Redis included) and the producer waiting in
another terminal died with a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from config import Settings
from stack.processes import wait_until
from stack.redis_server import free_port
from stack.supervisor import FIRST_BACKOFF_S, Part, Supervisor
from tasks.app import close_app, make_app

ROOT = Path(__file__).resolve().parents[2]
BACK_WITHIN_S = 10.0


class LabUp:
    """`lab up` in a subprocess, with the handles a test needs to break it."""

    def __init__(self, tmp_path: Path) -> None:
        self.state_dir = tmp_path / "state"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
        self.env.update({"LAB_STATE_DIR": str(self.state_dir), "LAB_FLOWER_PORT": str(free_port()),
                         "LAB_THREADS_CONCURRENCY": "4", "LAB_PREFORK_CONCURRENCY": "2",
                         "LAB_VISIBILITY_TIMEOUT": "5", "COLUMNS": "200"})
        self.process = subprocess.Popen([sys.executable, "-m", "cli", "up", "--run-dir", str(tmp_path / "run")],
                                        env=self.env, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.output: str | None = None

    @property
    def state(self) -> dict[str, object]:
        return dict(json.loads((self.state_dir / "stack.json").read_text()))

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def part_pid(self, marker: str) -> int | None:
        """The pid of the launcher's child whose command line contains `marker`."""
        for child in psutil.Process(self.process.pid).children():
            try:
                if marker in " ".join(child.cmdline()):
                    return child.pid
            except psutil.Error:  # a killed part is a zombie until the launcher reaps it
                continue
        return None

    def stop(self) -> str:
        """Ctrl-C, as a user stops it; everything `lab up` printed (once stopped, the same text again)."""
        if self.output is None:
            self.process.send_signal(signal.SIGINT)
            self.output = self.process.communicate(timeout=90)[0]
        return self.output

    def flower_answers(self) -> bool:
        state = self.state
        try:
            response = requests.get(f"http://127.0.0.1:{state['flower_port']}/healthcheck",
                                    auth=(str(state["flower_user"]), str(state["flower_password"])), timeout=1)
        except requests.RequestException:
            return False
        return response.status_code == 200


@pytest.fixture
def lab_up(tmp_path: Path) -> Iterator[LabUp]:
    stack = LabUp(tmp_path)
    try:
        wait_until(lambda: (stack.state_dir / "stack.json").exists() and stack.flower_answers(), 90, "lab up",
                   process=stack.process)  # type: ignore[arg-type]
        yield stack
    finally:
        stack.stop()


def kill_and_time_return(stack: LabUp, marker: str, back: object) -> float:
    """SIGKILL the part, then wait until a new process answers; return the seconds it took."""
    pid = stack.part_pid(marker)
    assert pid is not None, f"no process with {marker!r}"
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: stack.part_pid(marker) not in (None, pid) and back(), BACK_WITHIN_S,  # type: ignore[operator]
               f"{marker} back")
    return time.monotonic() - killed_at


@pytest.mark.slow
def test_killed_workers_and_flower_come_back_and_the_run_loses_nothing(lab_up: LabUp) -> None:
    producer = subprocess.Popen(
        [sys.executable, "-m", "cli.producer", "send", "--task", "sleep", "--seconds", "0.2", "-n", "150",
         "--pool", "both", "--wait", "--timeout", "120", "--json"],
        env=lab_up.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    app = make_app(lab_up.settings.replace(broker_url=str(lab_up.state["broker_url"])))
    try:
        host = os.uname().nodename

        def answers(pool: str) -> bool:
            return bool(app.control.ping(destination=[f"{pool}@{host}"], timeout=0.5))

        times = {pool: kill_and_time_return(lab_up, f"--pool {pool}", lambda p=pool: answers(p))
                 for pool in ("threads", "prefork")}
        times["flower"] = kill_and_time_return(lab_up, " flower", lab_up.flower_answers)
    finally:
        close_app(app)
    out, err = producer.communicate(timeout=180)
    print(f"back and answering after SIGKILL: {', '.join(f'{k} {v:.1f} s' for k, v in times.items())}")
    assert "Traceback" not in err
    summary = json.loads(out)
    assert producer.returncode == 0, err[-2000:]
    assert (summary["sent"], summary["lost"], summary["failed"], summary["queued"]) == (300, 0, 0, 0), summary
    assert lab_up.process.poll() is None, "the stack must still be running"
    check_restart_lines(lab_up.stop(), ["worker threads", "worker prefork", "flower"])


def check_restart_lines(output: str, killed: list[str]) -> None:
    """Each killed part got the supervisor's two lines, counting one restart; nothing else restarted.

    The lines are stack/supervisor.py's: `NAME exited (code -9); restarting in 0.5 s (restart 1)`
    (SIGKILL, the first backoff), then `NAME is back after 1 restart(s)`.
    """
    assert "Traceback" not in output, output[-3000:]
    exited = [line.strip() for line in output.splitlines() if " exited (code " in line]
    back = [line.strip() for line in output.splitlines() if " is back after " in line]
    assert exited == [f"{name} exited (code -9); restarting in {FIRST_BACKOFF_S:g} s (restart 1)" for name in killed], \
        output[-3000:]
    assert back == [f"{name} is back after 1 restart(s)" for name in killed], output[-3000:]
    assert "stack stopped" in output.splitlines()[-1]


class Sleeper:
    """A real process that can die, for the supervisor's own bookkeeping."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Sleeper:
        self.starts += 1
        self.process = subprocess.Popen(["sleep", "60"])
        return self


def test_the_supervisor_restarts_with_growing_backoff_and_counts() -> None:
    sleeper = Sleeper().start()
    lines: list[str] = []
    pauses: list[float] = []
    supervisor = Supervisor([Part("sleeper", sleeper)], lines.append, pause=pauses.append)
    try:
        supervisor.check()
        assert sleeper.starts == 1 and lines == []
        for _ in range(3):
            assert sleeper.process is not None
            sleeper.process.kill()
            sleeper.process.wait()
            supervisor.check()
        assert sleeper.starts == 4
        assert pauses == [0.5, 1.0, 2.0]
        assert lines[-2:] == ["sleeper exited (code -9); restarting in 2 s (restart 3)",
                              "sleeper is back after 3 restart(s)"]
    finally:
        assert sleeper.process is not None
        sleeper.process.kill()
        sleeper.process.wait()
