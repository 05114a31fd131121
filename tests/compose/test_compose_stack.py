"""`docker compose up`, proven by running the real docker-compose.yml under podman.

Builds the image from the project's Dockerfile (on a local debootstrap base, cached in
podman's storage), brings the stack up with podman-compose, sends square and sleep tasks to
both pools with the producer service, checks through Flower on 127.0.0.1 (with basic auth)
that both workers are online and every task succeeded, scales the threads worker to 2, and
tears everything down. Each phase's time is printed.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from stack.processes import wait_until
from stack.redis_server import free_port
from tests.compose import podman as pm

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1200)]

SENT_PER_POOL = 50
TASKS = {"square": ["--work", "20000"], "sleep": ["--seconds", "0.05"]}
METRIC = re.compile(r'^flower_events_total\{task="([^"]+)",type="task-succeeded",worker="([^"]+)"\} (\S+)$', re.M)


def env_file_from_example(path: Path, flower_port: int) -> dict[str, str]:
    """.env.example with fresh passwords and a free Flower port, written where compose reads it."""
    values = {}
    for line in (pm.ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    values.update({key: secrets.token_hex(16) for key in values if "PASSWORD" in key})
    values.update(LAB_FLOWER_PORT=str(flower_port), LAB_THREADS_CONCURRENCY="4", LAB_PREFORK_CONCURRENCY="2")
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return values


class FlowerClient:
    """Flower as a user reaches it: the port published on 127.0.0.1, with basic auth."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.auth = (user, password)

    def get(self, path: str, auth: bool = True, **params: str) -> requests.Response:
        return requests.get(self.base + path, auth=self.auth if auth else None, params=params, timeout=10)

    def healthy(self) -> bool:
        try:
            return self.get("/healthcheck").status_code == 200
        except requests.RequestException:
            return False

    def online(self, pool: str) -> set[str]:
        workers = self.get("/api/workers", status="true").json()
        return {name for name, up in workers.items() if up and name.startswith(f"{pool}@")}

    def succeeded(self) -> dict[tuple[str, str], float]:
        """task-succeeded events per (task, worker), from Flower's Prometheus metrics."""
        return {(task, worker): float(n) for task, worker, n in METRIC.findall(self.get("/metrics").text)}


@pytest.fixture
def project(tmp_path: Path) -> Iterator[pm.ComposeProject]:
    """A uniquely named compose project; removed by force only if the test's own `down` failed."""
    project = pm.ComposeProject(f"labtest{uuid.uuid4().hex[:8]}", tmp_path / "lab.env")
    yield project
    if project.containers() or project.volumes():
        project.force_remove()


def test_compose_up_runs_the_lab(project: pm.ComposeProject, capsys: pytest.CaptureFixture[str]) -> None:
    times: dict[str, float] = {}
    values = env_file_from_example(project.env_file, free_port())
    flower = FlowerClient(int(values["LAB_FLOWER_PORT"]), values["LAB_FLOWER_USER"], values["LAB_FLOWER_PASSWORD"])
    try:
        with pm.phase("base image (built if missing)", times):
            pm.ensure_base_image()
        with pm.phase("build lab + redis images", times):
            pm.build_images()
        with pm.phase("smoke test images", times):
            check_images_run_as_non_root()
        with pm.phase("compose up -d", times):
            project.compose("up", "-d")
        with pm.phase("flower + workers ready", times):
            workers = wait_for_stack(project, flower)
        with pm.phase("healthchecks", times):
            check_healthchecks_and_persistence(project)
        for task in TASKS:
            with pm.phase(f"producer {task} on both pools", times):
                times[f"(of which the producer's own send + wait for {task})"] = run_producer(project, task)
        with pm.phase("flower saw every task succeed", times):
            check_flower_saw_every_task(project, flower, workers)
        with pm.phase("scale worker-threads=2", times):
            scale_threads_to_two(project, flower)
    except BaseException:
        with capsys.disabled():
            print(f"\ncompose test failed; container logs:\n{project.logs()}")
        raise
    finally:
        with pm.phase("compose down -v", times):
            down = project.compose("down", "-v", check=False)
        with capsys.disabled():
            print("\ncompose test phases: " + ", ".join(f"{name} {s:.1f} s" for name, s in times.items()))
    assert down.returncode == 0, down.stderr[-2000:]
    assert project.containers() == [], "containers left after `down -v`"
    assert project.volumes() == [], "volumes left after `down -v`"


def check_images_run_as_non_root() -> None:
    assert pm.image_user(pm.LAB_IMAGE) not in ("", "0")
    assert pm.image_user(pm.REDIS_IMAGE) not in ("", "0")
    out = pm.podman("run", "--rm", pm.LAB_IMAGE, "sh", "-c",
                    "celery --version && python -c 'import tasks.celery_app' && lab --help").stdout
    assert "worker" in out and "flower" in out


def wait_for_stack(project: pm.ComposeProject, flower: FlowerClient) -> dict[str, str]:
    """After `up -d`: wait (deadlines) until Flower answers and lists both workers online."""
    assert project.containers("producer") == [], "the producer is a profile: `up` must not start it"
    wait_until(flower.healthy, 120, "flower on 127.0.0.1 with auth", interval=0.5)
    assert flower.get("/", auth=False).status_code == 401
    assert flower.get("/api/workers", auth=False).status_code == 401
    expected = {pool: f"{pool}@{host}" for pool in ("threads", "prefork")
                for host in project.hostnames(f"worker-{pool}")}
    wait_until(lambda: all(flower.online(pool) == {name} for pool, name in expected.items()), 120,
               "both workers online in flower", interval=0.5)
    return expected


def check_healthchecks_and_persistence(project: pm.ComposeProject) -> None:
    """The file's healthchecks pass when run (podman runs none on its own here); Redis uses AOF."""
    for service in ("redis", "flower", "worker-threads"):
        (name,) = project.containers(service)
        pm.podman("healthcheck", "run", name, timeout=60)
    (redis,) = project.containers("redis")
    out = pm.podman("exec", redis, "sh", "-c", 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli config get appendonly').stdout
    assert out.split() == ["appendonly", "yes"]


def run_producer(project: pm.ComposeProject, task: str) -> float:
    """`compose run --rm producer send ... --wait`: every task completed, none failed or lost.

    Returns the producer's own elapsed time, to tell a slow stack from a slow container start.
    """
    result = project.compose("run", "--rm", "-T", "producer", "send", "--task", task, "-n", str(SENT_PER_POOL),
                             "--pool", "both", *TASKS[task], "--wait", "--json", profile="producer")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["sent"] == summary["completed"] == 2 * SENT_PER_POOL, summary
    assert summary["failed"] == summary["lost"] == summary["duplicated"] == 0, summary
    assert project.containers("producer") == [], "`run --rm` must remove the producer container"
    return float(summary["elapsed_s"])


def check_flower_saw_every_task(project: pm.ComposeProject, flower: FlowerClient, workers: dict[str, str]) -> None:
    """Flower's task-succeeded counters per worker, and its task list, account for every task sent."""
    expected = {(f"tasks.{task}", worker): float(SENT_PER_POOL) for task in TASKS for worker in workers.values()}
    seen: dict[tuple[str, str], float] = {}

    def counters_match() -> bool:
        seen.clear()
        seen.update(flower.succeeded())
        return seen == expected

    try:
        wait_until(counters_match, 60, "flower's task-succeeded counters", interval=0.5)
    except TimeoutError:
        raise AssertionError(f"flower's task-succeeded counters {seen} != {expected}") from None
    tasks = flower.get("/api/tasks", limit="1000").json()
    assert len(tasks) == 2 * len(TASKS) * SENT_PER_POOL
    assert {task["state"] for task in tasks.values()} == {"SUCCESS"}


def scale_threads_to_two(project: pm.ComposeProject, flower: FlowerClient) -> None:
    """`up -d --scale worker-threads=2`: a second replica, under its own name in Flower."""
    project.compose("up", "-d", "--scale", "worker-threads=2")
    # podman-compose 1.6.0's `down` removes only the replicas the file declares (docs/compose.md).
    project.extra_env["LAB_THREADS_REPLICAS"] = "2"
    hosts = project.hostnames("worker-threads")
    assert len(hosts) == 2
    wait_until(lambda: flower.online("threads") == {f"threads@{host}" for host in hosts}, 120,
               "both threads replicas online in flower", interval=0.5)
