"""`lab up` as a user runs it: everything comes up, and Ctrl-C leaves no process behind."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import redis
import requests

from stack.processes import wait_until
from stack.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_up_starts_embedded_redis_workers_flower_and_stops_clean(tmp_path: Path) -> None:
    state_dir, flower_port = tmp_path / "state", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update({"LAB_STATE_DIR": str(state_dir), "LAB_FLOWER_PORT": str(flower_port),
                "LAB_THREADS_CONCURRENCY": "2", "LAB_PREFORK_CONCURRENCY": "2"})
    launcher = subprocess.Popen([sys.executable, "-m", "cli", "up", "--run-dir", str(tmp_path / "run")],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (state_dir / "stack.json").exists() and _flower_up(state_dir), 90,
                   "lab up", process=launcher)  # type: ignore[arg-type]
        state = json.loads((state_dir / "stack.json").read_text())
        assert redis.Redis.from_url(state["broker_url"]).ping()
        assert ":6379/" not in state["broker_url"]
        tree = psutil.Process(launcher.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in tree]
        assert any("--pool threads" in c for c in commands)
        assert any("--pool prefork" in c for c in commands)
        assert any(" flower " in c for c in commands)
        assert any("valkey-server" in c or "redis-server" in c for c in commands)
        flower_pass = state["flower_password"]
        assert flower_pass not in " ".join(commands), "the Flower password must not be visible in ps"
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=90)
    assert launcher.returncode == 0, output
    assert "stack stopped" in output
    redis_password = str(urlsplit(state["broker_url"]).password)
    assert redis_password not in output and flower_pass not in output, "a secret in the lab up banner"
    assert "Traceback" not in output
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not (state_dir / "stack.json").exists()


def _flower_up(state_dir: Path) -> bool:
    state = json.loads((state_dir / "stack.json").read_text())
    try:
        response = requests.get(f"http://127.0.0.1:{state['flower_port']}/api/workers",
                                auth=(state["flower_user"], state["flower_password"]), timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200 and len(response.json()) == 2
