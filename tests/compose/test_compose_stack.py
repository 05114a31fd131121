"""`docker compose up`, proven by running the real docker-compose.yml on a real engine.

On Docker Engine + Compose v2 (wherever `docker info` answers; stack/compose/engine.py):
`up -d --build --wait` builds the images from the project's Dockerfile on a local debootstrap
base and returns once every healthcheck passes; the engine's own events show that Redis was
healthy before any worker or Flower started. Where no engine answers, the same test runs on
podman (which runs no healthchecks here: they are run by hand). Then: the images run as
non-root and hold no trace of the host's CA bundle (a build secret only), the producer
service sends square and sleep tasks to both pools, Flower on 127.0.0.1 (basic auth) counts
every task per worker, the threads worker scales to 2, the free-threaded profile runs (Docker;
its image is scanned for the CA bundle too), `compose logs` of every service holds neither the
Redis nor the Flower password, and `down -v` leaves nothing behind.
Each phase's time and the engine's versions are printed.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from stack.compose import engine as en
from stack.processes import wait_until
from stack.redis_server import free_port
from tests.compose.image_scan import files_with_content

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1500)]

SENT_PER_POOL = 50
TASKS = {"square": ["--work", "20000"], "sleep": ["--seconds", "0.05"]}
DEPENDANTS = ("worker-threads", "worker-prefork", "flower")  # each `depends_on: redis: service_healthy`
METRIC = re.compile(r'^flower_events_total\{task="([^"]+)",type="task-succeeded",worker="([^"]+)"\} (\S+)$', re.M)


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


@pytest.fixture(scope="module")
def engine() -> en.Engine:
    return en.choose_engine()


@pytest.fixture
def project(engine: en.Engine, tmp_path: Path) -> Iterator[en.ComposeProject]:
    """A uniquely named compose project; removed by force only if the test's own `down` failed."""
    project = en.ComposeProject(engine, f"labtest{uuid.uuid4().hex[:8]}", tmp_path / "lab.env")
    yield project
    if project.containers() or project.volumes() or project.networks():
        engine.force_remove(project)


def test_compose_up_runs_the_lab(project: en.ComposeProject, capsys: pytest.CaptureFixture[str]) -> None:
    engine = project.engine
    with capsys.disabled():
        print(f"\ncompose test on {engine.name}: " + "; ".join(f"{k}: {v}" for k, v in engine.versions().items()))
    times: dict[str, float] = {}
    values = en.example_env(project.env_file, LAB_FLOWER_PORT=str(free_port()), LAB_THREADS_CONCURRENCY="4",
                            LAB_PREFORK_CONCURRENCY="2")
    flower = FlowerClient(int(values["LAB_FLOWER_PORT"]), values["LAB_FLOWER_USER"], values["LAB_FLOWER_PASSWORD"])
    try:
        with en.phase("base image (built if missing)", times):
            engine.ensure_base_image()
        with engine.watch_startup(project) as startup:
            with en.phase(f"build + up ({engine.name})", times):
                engine.build_and_up(project)
            with en.phase("flower + workers online", times):
                workers = wait_for_stack(project, flower)
            with en.phase("healthchecks (and the start-up order they gate)", times):
                check_healthchecks(project, startup)
        with en.phase("images: non-root, no host CA bundle", times):
            check_images(engine, capsys)
        for task in TASKS:
            with en.phase(f"producer {task} on both pools", times):
                times[f"(of which the producer's own send + wait for {task})"] = run_producer(project, task)
        with en.phase("flower saw every task succeed", times):
            check_flower_saw_every_task(flower, workers)
        with en.phase("scale worker-threads=2", times):
            scale_threads_to_two(project, flower)
        if engine.healthchecks_gate_startup:  # the profile needs BuildKit and `up --wait`: Docker here
            with en.phase("profile freethreaded: build + up --wait, square on threads-ft", times):
                check_freethreaded_worker(project)
            with en.phase("free-threaded image: no host CA bundle", times):
                check_host_ca_bundle_is_not_in_the_image(engine, capsys, en.FT_IMAGE)
        with en.phase("no password in any service's logs", times):
            check_no_password_in_the_logs(project, values)
    except BaseException:
        with capsys.disabled():
            print(f"\ncompose test failed; container logs:\n{project.logs()}")
        raise
    finally:
        with en.phase("compose down -v", times):
            down = project.compose("down", "-v", check=False)
        with capsys.disabled():
            print("\ncompose test phases: " + ", ".join(f"{name} {s:.1f} s" for name, s in times.items()))
    assert down.returncode == 0, down.stderr[-2000:]
    assert project.containers() == [], "containers left after `down -v`"
    assert project.volumes() == [], "volumes left after `down -v`"
    assert project.networks() == [], "networks left after `down -v`"


def check_healthchecks(project: en.ComposeProject, startup: Callable[[], en.StartupLog]) -> None:
    """The file's healthchecks pass, Redis' gated start-up where the engine runs them, and Redis uses AOF."""
    if project.engine.healthchecks_gate_startup:
        check_redis_was_healthy_before_dependants_started(project, startup)
    for service in ("redis", *DEPENDANTS):
        for name in project.containers(service):
            project.engine.check_healthy(name)
    (redis,) = project.containers("redis")
    aof = 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli config get appendonly'
    assert project.engine.cli("exec", redis, "sh", "-c", aof).stdout.split() == ["appendonly", "yes"]


def check_redis_was_healthy_before_dependants_started(project: en.ComposeProject,
                                                      startup: Callable[[], en.StartupLog]) -> None:
    """`depends_on: condition: service_healthy` really waited: from the engine's events and `inspect`.

    Redis' first `health_status: healthy` event (the end of its first passing probe) comes before
    the `start` event and the State.StartedAt of every worker and Flower container.
    """
    (redis,) = project.containers("redis")
    dependants = [name for service in DEPENDANTS for name in project.containers(service)]
    wait_until(lambda: redis in startup().healthy and all(name in startup().started for name in dependants), 30,
               "the engine's start and health events of the project", interval=0.2)
    log = startup()
    healthy = min(log.healthy[redis])
    assert min(log.started[redis]) < healthy
    started_at = dict(zip(dependants, project.inspect("{{.State.StartedAt}}", *dependants), strict=True))
    for name in dependants:
        assert min(log.started[name]) > healthy, f"{name} started before redis was healthy"
        assert en.parse_time(started_at[name]) > healthy, f"{name} State.StartedAt before redis was healthy"


def check_images(engine: en.Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """Both images run as non-root and import the app; the lab image holds no trace of the host CA bundle."""
    assert engine.image_user(en.LAB_IMAGE) not in ("", "0")
    assert engine.image_user(en.REDIS_IMAGE) not in ("", "0")
    out = engine.in_image(en.LAB_IMAGE, "celery --version && python -c 'import tasks.celery_app' && lab --help")
    assert "worker" in out and "flower" in out
    check_host_ca_bundle_is_not_in_the_image(engine, capsys)


def check_host_ca_bundle_is_not_in_the_image(engine: en.Engine, capsys: pytest.CaptureFixture[str],
                                             image: str = en.LAB_IMAGE) -> None:
    """The bundle was a build secret: no /run/secrets, Debian's own bundle, and no layer holds the host's.

    The layer scan reads every layer the build added (`save`), so a bundle copied in and deleted later
    would be found too; the base's layers are left out (its bundle is Debian's own). Both images that
    get the secret are scanned: the lab image and the free-threaded one (whose build stage has it).
    """
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    image_sha = engine.in_image(image, f"test ! -e /run/secrets && sha256sum {bundle}").split()[0]
    base_sha = engine.in_image(en.BASE_IMAGE, f"sha256sum {bundle}").split()[0]
    assert image_sha == base_sha, "the build changed the image's CA bundle"
    if not en.HOST_CA_BUNDLE.exists():
        return
    host = en.HOST_CA_BUNDLE.read_bytes()
    host_sha = hashlib.sha256(host).hexdigest()
    save = engine.save(image)
    assert save.stdout is not None
    found = files_with_content(save.stdout, host_sha, len(host), skip_layers=engine.layers(en.BASE_IMAGE))
    assert save.wait() == 0 and found == [], f"the host's CA bundle is in {image}: {found}"
    if host_sha != base_sha:
        assert image_sha != host_sha
    with capsys.disabled():
        print(f"\nCA bundle in {image}: host {host_sha[:12]}, image {image_sha[:12]} (= base {base_sha[:12]}); "
              f"none of its {len(engine.layers(image))} layers (the base's left out) holds the host's")


def check_no_password_in_the_logs(project: en.ComposeProject, values: dict[str, str]) -> None:
    """`compose logs` of every service that ran holds neither the Redis nor the Flower password.

    Error messages and banners end up in `docker compose logs`; the services that log the most are
    checked to have logged something, so an empty read cannot pass for a clean one.
    """
    passwords = {name: values[name] for name in ("REDIS_PASSWORD", "LAB_FLOWER_PASSWORD")}
    services = project.services()
    assert {"redis", *DEPENDANTS} <= services, services
    for service in sorted(services):
        text = project.service_logs(service)
        leaked = [name for name, password in passwords.items() if password in text]
        assert not leaked, f"`compose logs {service}` holds {leaked}"
        if service in ("redis", *DEPENDANTS):
            assert len(text.splitlines()) >= 3, f"`compose logs {service}` is nearly empty: {text!r}"


def wait_for_stack(project: en.ComposeProject, flower: FlowerClient) -> dict[str, str]:
    """Wait (deadlines) until Flower answers on 127.0.0.1 with auth (401 without) and lists both workers."""
    assert project.containers("producer") == [], "the producer is a profile: `up` must not start it"
    wait_until(flower.healthy, 120, "flower on 127.0.0.1 with auth", interval=0.5)
    assert flower.get("/", auth=False).status_code == 401
    assert flower.get("/api/workers", auth=False).status_code == 401
    expected = {pool: f"{pool}@{host}" for pool in ("threads", "prefork")
                for host in project.hostnames(f"worker-{pool}")}
    wait_until(lambda: all(flower.online(pool) == {name} for pool, name in expected.items()), 120,
               "both workers online in flower", interval=0.5)
    return expected


def run_producer(project: en.ComposeProject, task: str) -> float:
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


def check_freethreaded_worker(project: en.ComposeProject) -> None:
    """The `freethreaded` profile: a threads worker on free-threaded CPython, built in the image from
    Debian's source, healthy, serving square tasks on its own queue with its GIL off (inspect stats)."""
    project.extra_env["COMPOSE_PROFILES"] = "freethreaded"  # so `down` removes its container too
    project.compose("up", "-d", "--build", "--wait", "worker-threads-ft", timeout=1800)
    result = project.compose("run", "--rm", "-T", "producer", "send", "--task", "square", "-n", "40", "--pool",
                             "threads-ft", "--work", "20000", "--wait", "--json", profile="producer")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["completed"] == 40 and summary["lost"] == summary["failed"] == 0, summary
    stats = project.compose("exec", "-T", "worker-threads-ft", "celery", "-A", "tasks.celery_app", "inspect", "stats",
                            "--json").stdout
    interpreters = [worker["interpreter"] for name, worker in json.loads(stats.strip().splitlines()[-1]).items()
                    if name.startswith("threads-ft@")]
    assert interpreters and all(i["free_threaded_build"] and not i["gil_enabled"] for i in interpreters), interpreters
    print(f"freethreaded profile: {interpreters[0]['python']}, GIL off; {summary['throughput_per_s']:.1f} squares/s")


def check_flower_saw_every_task(flower: FlowerClient, workers: dict[str, str]) -> None:
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


def scale_threads_to_two(project: en.ComposeProject, flower: FlowerClient) -> None:
    """`up -d --scale worker-threads=2`: a second replica, under its own name in Flower."""
    project.engine.scale(project, "worker-threads", 2)
    hosts = project.hostnames("worker-threads")
    assert len(hosts) == 2
    wait_until(lambda: flower.online("threads") == {f"threads@{host}" for host in hosts}, 120,
               "both threads replicas online in flower", interval=0.5)
