"""The engine the compose test runs docker-compose.yml on: Docker + Compose v2, or podman.

Docker Engine with Compose v2 is what users run, so wherever `docker info` answers it is the
engine, never silently skipped. Compose v2 is the project-local plugin tools/compose-v2.sh
unpacks into .tools/docker (DOCKER_CONFIG); it builds the images itself through the engine's
BuildKit (`up --build`), the host's CA bundle handed over as a build secret by
compose/local-images.yml. Where no engine answers (a Debian machine without Docker), podman
runs the file through podman-compose: images built by `podman build`, settings from
compose/containers.conf. podman 4.3 without systemd runs no healthchecks and podman-compose
ignores `condition: service_healthy` (docs/compose.md), so `healthchecks_gate_startup` is
False there and the test runs the healthchecks by hand instead.
LAB_COMPOSE_ENGINE=docker|podman forces the choice (compose/engine.sh has the same rule).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
DOCKER_CONFIG = ROOT / ".tools" / "docker"
BASE_IMAGE = "localhost/debian:bookworm-py"
LAB_IMAGE = "localhost/celery-concurrency-lab:local"
FT_IMAGE = "localhost/celery-concurrency-lab-ft:local"
REDIS_IMAGE = "localhost/lab-redis:local"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
COMPOSE_FILES = (ROOT / "docker-compose.yml", COMPOSE_DIR / "local-images.yml")
PROJECT_LABEL = "com.docker.compose.project"   # podman-compose sets the same labels as Compose
SERVICE_LABEL = "com.docker.compose.service"
REPLICA_VARIABLES = {"worker-threads": "LAB_THREADS_REPLICAS", "worker-prefork": "LAB_PREFORK_REPLICAS"}


def run(command: list[str], timeout: float, env: Mapping[str, str], check: bool = True,
        ) -> subprocess.CompletedProcess[str]:
    """Run a command, and on failure raise with its output (the engine's errors are the clue)."""
    result = subprocess.run(command, env=dict(env), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command[:4])}... exited {result.returncode}\n"
                             f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
    return result


def example_env(path: Path, **overrides: str) -> dict[str, str]:
    """.env.example with fresh passwords and the overrides, written where compose reads it (0600).

    The values hold the passwords: a test compares output against them, never prints them.
    """
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    values.update({name: secrets.token_hex(16) for name in values if "PASSWORD" in name})
    values.update(overrides)
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    path.chmod(0o600)
    return values


@contextmanager
def phase(name: str, times: dict[str, float]) -> Iterator[None]:
    """Time one phase of the test; the test prints them all at the end."""
    started = time.monotonic()
    try:
        yield
    finally:
        times[name] = time.monotonic() - started


def parse_time(text: str) -> float:
    """Docker's RFC 3339 times carry nanoseconds; Python parses microseconds: seconds since the epoch."""
    head, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float(f"0.{fraction or 0}")


@dataclass
class StartupLog:
    """When each container started and first reported healthy, in seconds since the epoch."""

    started: dict[str, list[float]] = field(default_factory=dict)
    healthy: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def from_lines(cls, text: str) -> StartupLog:
        """Events as `docker events --format '{{json .}}'` writes them; a line still being written is left out."""
        log = cls()
        for line in text.splitlines(keepends=True):
            if line.endswith("\n"):
                log.add(json.loads(line))
        return log

    def add(self, event: dict[str, object]) -> None:
        actor = event.get("Actor")
        name = str(actor.get("Attributes", {}).get("name", "")) if isinstance(actor, dict) else ""
        when = int(str(event.get("timeNano", 0))) / 1e9
        action = str(event.get("Action", ""))
        if action == "start":
            self.started.setdefault(name, []).append(when)
        elif action == "health_status: healthy":
            self.healthy.setdefault(name, []).append(when)


class Engine:
    """What the test needs from an engine; DockerEngine and PodmanEngine fill in the differences."""

    name: ClassVar[str]
    cli_name: ClassVar[str]
    healthchecks_gate_startup: ClassVar[bool]

    def env(self) -> dict[str, str]:
        """Our environment without LAB_*/REDIS_* (the env file is the only source), engine fixed."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "REDIS_"))}
        env["LAB_COMPOSE_ENGINE"] = self.name
        return env

    def cli(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.cli_name, *args], timeout, self.env(), check=check)

    def compose_command(self) -> list[str]:
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    def ensure_base_image(self) -> None:
        """The debootstrap base: cached in the engine's storage, built by the script when missing."""
        run(["bash", str(COMPOSE_DIR / "base-image.sh"), BASE_IMAGE], 900, self.env())

    def build_and_up(self, project: ComposeProject) -> None:
        raise NotImplementedError

    def ensure_lab_image(self, project: ComposeProject) -> None:
        """The lab image as `make compose-images` (or an earlier compose test) left it, built only if missing:
        a test that runs one service needs the image, not another build of it."""
        if not self.image_id(LAB_IMAGE):
            self.ensure_base_image()
            project.compose("build", "producer", profile="producer", timeout=1200)

    def check_healthy(self, container: str) -> None:
        raise NotImplementedError

    @contextmanager
    def watch_startup(self, project: ComposeProject) -> Iterator[Callable[[], StartupLog]]:
        """The engine's container start and health events while inside (none where it runs no healthchecks)."""
        yield StartupLog

    def scale(self, project: ComposeProject, service: str, replicas: int) -> None:
        project.compose("up", "-d", "--scale", f"{service}={replicas}")

    def image_id(self, tag: str) -> str:
        result = self.cli("image", "inspect", "--format", "{{.Id}}", tag, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def layers(self, image: str) -> list[str]:
        """Diff IDs of an image's layers (sha256 of each uncompressed layer tar)."""
        return list(json.loads(self.cli("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout))

    def remove_if_replaced(self, previous: dict[str, str]) -> None:
        """A rebuild leaves the old image untagged: free its space (only ours, by id)."""
        for tag, old in previous.items():
            if old and old != self.image_id(tag):
                self.cli("rmi", old, check=False)

    def image_user(self, image: str) -> str:
        """`id -u` inside a fresh container of the image: the user its services run as."""
        return self.cli("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()

    def in_image(self, image: str, script: str) -> str:
        return self.cli("run", "--rm", "--entrypoint", "sh", image, "-c", script).stdout

    def save(self, image: str) -> subprocess.Popen[bytes]:
        """`save IMAGE` as a stream of the image's layers (docker-archive)."""
        return subprocess.Popen([self.cli_name, "save", image], stdout=subprocess.PIPE, env=self.env(), cwd=ROOT)

    # -- host faults (stack/compose/faults.py) ---------------------------------------------------

    def disconnect(self, network: str, container: str) -> None:
        """Cut a container off its network: its address is gone, its processes run on."""
        self.cli("network", "disconnect", network, container)

    def connect(self, network: str, container: str) -> None:
        self.cli("network", "connect", network, container)

    def crash(self, container: str) -> None:
        """SIGKILL the container's main process from the host: every process in it dies at once.

        Not `kill`: Docker (checked on 20.10) marks a container it was told to kill as stopped by
        the user, and `restart: unless-stopped` then leaves it down. A process that dies on its
        own, as here, is a crash: the restart policy starts the container again.
        """
        os.kill(int(self.state(container, "{{.State.Pid}}")), signal.SIGKILL)

    def restart(self, container: str, timeout: float = 600) -> None:
        """Stop (SIGTERM, then the container's own stop timeout: `stop_grace_period`) and start again."""
        self.cli("restart", container, timeout=timeout)

    def state(self, container: str, template: str) -> str:
        return self.cli("inspect", "--format", template, container).stdout.strip()

    def restarts(self, container: str) -> int:
        """How often the engine restarted the container by its restart policy."""
        return int(self.state(container, "{{.RestartCount}}"))

    def force_remove(self, project: ComposeProject) -> None:
        """Last resort after a failed `down`: remove only this project's containers, volumes, networks."""
        for name in project.containers():
            self.cli("rm", "-f", name, check=False)
        for volume in project.volumes():
            self.cli("volume", "rm", "-f", volume, check=False)
        for network in project.networks():
            self.cli("network", "rm", network, check=False)


class DockerEngine(Engine):
    """Docker Engine with the project-local Compose v2 plugin (tools/compose-v2.sh)."""

    name = "docker"
    cli_name = "docker"
    healthchecks_gate_startup = True

    def env(self) -> dict[str, str]:
        return {**super().env(), "DOCKER_CONFIG": str(DOCKER_CONFIG)}

    def compose_command(self) -> list[str]:
        return ["docker", "compose"]

    def versions(self) -> dict[str, str]:
        server = self.cli("version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})").stdout
        storage = self.cli("info", "--format", "{{.Driver}}").stdout
        return {
            "engine": f"Docker Engine {server.strip()}, storage {storage.strip()}",
            "client": "docker CLI " + self.cli("version", "--format", "{{.Client.Version}}").stdout.strip(),
            "compose": self.cli("compose", "version").stdout.strip(),
        }

    def build_and_up(self, project: ComposeProject) -> None:
        """`up -d --build --wait`: Compose builds the images (BuildKit) and returns once all are healthy."""
        previous = {tag: self.image_id(tag) for tag in (LAB_IMAGE, REDIS_IMAGE)}
        project.compose("up", "-d", "--build", "--wait", timeout=1200)
        self.remove_if_replaced(previous)

    def check_healthy(self, container: str) -> None:
        status = self.cli("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()
        assert status == "healthy", f"{container}: health {status!r}"

    @contextmanager
    def watch_startup(self, project: ComposeProject) -> Iterator[Callable[[], StartupLog]]:
        """Record the engine's own `start` and `health_status` events of the project while inside.

        Yields a function that reads what has arrived so far (events reach us asynchronously).
        """
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.jsonl"
            with path.open("wb") as out:
                events = subprocess.Popen(
                    ["docker", "events", "--since", f"{time.time():.3f}", "--format", "{{json .}}",
                     "--filter", f"label={PROJECT_LABEL}={project.name}", "--filter", "type=container",
                     "--filter", "event=start", "--filter", "event=health_status"],
                    stdout=out, env=self.env())
            try:
                yield lambda: StartupLog.from_lines(path.read_text())
            finally:
                events.terminate()
                events.wait(10)

    def scale(self, project: ComposeProject, service: str, replicas: int) -> None:
        project.compose("up", "-d", "--wait", "--scale", f"{service}={replicas}")


class PodmanEngine(Engine):
    """podman + podman-compose: the fallback where no Docker Engine answers."""

    name = "podman"
    cli_name = "podman"
    healthchecks_gate_startup = False

    def env(self) -> dict[str, str]:
        return {**super().env(), "CONTAINERS_CONF": str(COMPOSE_DIR / "containers.conf")}

    def compose_command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "podman-compose")]

    def versions(self) -> dict[str, str]:
        compose = run([*self.compose_command(), "version"], 60, self.env()).stdout.strip().splitlines()
        return {"engine": "podman " + self.cli("version", "--format", "{{.Version}}").stdout.strip(),
                "compose": compose[0] if compose else "podman-compose"}

    def build_image(self, tag: str, dockerfile: Path, context: Path) -> None:
        """`podman build` on the local base; the host's CA bundle as a build secret (build only)."""
        command = ["nice", "podman", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
                   "-f", str(dockerfile), "-t", tag]
        if HOST_CA_BUNDLE.exists():
            command += ["--secret", f"id=host_ca,src={HOST_CA_BUNDLE}"]
        run([*command, str(context)], 900, self.env())

    def ensure_lab_image(self, project: ComposeProject) -> None:
        if not self.image_id(LAB_IMAGE):
            self.ensure_base_image()
            self.build_image(LAB_IMAGE, ROOT / "Dockerfile", ROOT)

    def build_and_up(self, project: ComposeProject) -> None:
        """Build both images, then `up -d` (podman-compose has no `--wait`: the test waits on Flower)."""
        previous = {tag: self.image_id(tag) for tag in (LAB_IMAGE, REDIS_IMAGE)}
        self.build_image(LAB_IMAGE, ROOT / "Dockerfile", ROOT)
        self.build_image(REDIS_IMAGE, COMPOSE_DIR / "redis.Dockerfile", COMPOSE_DIR)
        self.remove_if_replaced(previous)
        project.compose("up", "-d")

    def check_healthy(self, container: str) -> None:
        """Nothing runs podman's healthchecks without systemd: run the file's check once, by hand."""
        self.cli("healthcheck", "run", container)

    def scale(self, project: ComposeProject, service: str, replicas: int) -> None:
        super().scale(project, service, replicas)
        # podman-compose 1.6.0's `down` removes only the replicas the file declares (docs/compose.md).
        project.extra_env[REPLICA_VARIABLES[service]] = str(replicas)

    def force_remove(self, project: ComposeProject) -> None:
        super().force_remove(project)
        self.cli("pod", "rm", "-f", f"pod_{project.name}", check=False)


def docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_engine() -> Engine:
    """Docker where an engine answers, podman otherwise; LAB_COMPOSE_ENGINE=docker|podman forces one."""
    forced = os.environ.get("LAB_COMPOSE_ENGINE", "")
    if forced not in ("", "docker", "podman"):
        raise ValueError(f"LAB_COMPOSE_ENGINE: expected docker or podman, got {forced!r}")
    if forced == "podman" or (not forced and not docker_answers()):
        return PodmanEngine()
    return DockerEngine()


@dataclass
class ComposeProject:
    """One compose project: docker-compose.yml plus compose/local-images.yml, on one engine."""

    engine: Engine
    name: str
    env_file: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    files: tuple[Path, ...] = COMPOSE_FILES

    def command(self, *args: str, profile: str | None = None) -> list[str]:
        files = [arg for path in self.files for arg in ("-f", str(path))]
        profiles = ["--profile", profile] if profile else []
        return [*self.engine.compose_command(), "--env-file", str(self.env_file), "-p", self.name, *files,
                *profiles, *args]

    def compose(self, *args: str, profile: str | None = None, timeout: float = 300,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**self.engine.env(), **self.extra_env}
        return run(self.command(*args, profile=profile), timeout, env, check=check)

    def popen(self, *args: str, log: Path, profile: str | None = None) -> subprocess.Popen[str]:
        """A compose command in the background: stdout to the caller, stderr into `log`."""
        with log.open("a") as err:
            return subprocess.Popen(self.command(*args, profile=profile), env={**self.engine.env(), **self.extra_env},
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)

    def label_filters(self, service: str | None = None) -> list[str]:
        filters = ["--filter", f"label={PROJECT_LABEL}={self.name}"]
        return filters + (["--filter", f"label={SERVICE_LABEL}={service}"] if service else [])

    def containers(self, service: str | None = None) -> list[str]:
        """Names of this project's containers (all states), optionally of one service."""
        out = self.engine.cli("ps", "-a", *self.label_filters(service), "--format", "{{.Names}}").stdout
        return sorted(out.split())

    def inspect(self, template: str, *names: str) -> list[str]:
        return self.engine.cli("inspect", "--format", template, *names).stdout.split() if names else []

    def hostnames(self, service: str) -> set[str]:
        """Container hostnames of a service: Celery names its workers POOL@hostname."""
        return set(self.inspect("{{.Config.Hostname}}", *self.containers(service)))

    def volumes(self) -> list[str]:
        return self.engine.cli("volume", "ls", *self.label_filters(), "--format", "{{.Name}}").stdout.split()

    def networks(self) -> list[str]:
        return self.engine.cli("network", "ls", *self.label_filters(), "--format", "{{.Name}}").stdout.split()

    def services(self) -> set[str]:
        """The services that have (or had, stopped) a container in this project."""
        return set(self.inspect(f'{{{{index .Config.Labels "{SERVICE_LABEL}"}}}}', *self.containers()))

    def service_logs(self, service: str) -> str:
        """`compose logs SERVICE`, as a user reads it: every replica's whole log."""
        result = self.compose("logs", service, timeout=120)
        return result.stdout + result.stderr

    def logs(self, tail: int = 40) -> str:
        """The last lines of every container's log, for a failure message."""
        parts = []
        for name in self.containers():
            result = self.engine.cli("logs", "--tail", str(tail), name, check=False)
            parts.append(f"--- {name}\n{result.stdout}{result.stderr}")
        return "\n".join(parts)
