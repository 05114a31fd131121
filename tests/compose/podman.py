"""Podman and podman-compose as the compose test drives them (no Docker engine on CI).

Everything goes through the project's own files: compose/containers.conf (limits the
sandbox accepts, runtime runc), compose/base-image.sh (the debootstrap base, built only
when podman's storage lacks it), the real Dockerfile and docker-compose.yml, and
compose/local-images.yml, which only swaps image names.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
BASE_IMAGE = "localhost/debian:bookworm-py"
LAB_IMAGE = "localhost/celery-concurrency-lab:local"
REDIS_IMAGE = "localhost/lab-redis:local"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PROJECT_LABEL = "io.podman.compose.project"
SERVICE_LABEL = "io.podman.compose.service"


def podman_env() -> dict[str, str]:
    """Our environment with podman pointed at compose/containers.conf, and no LAB_* leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "REDIS_"))}
    env["CONTAINERS_CONF"] = str(COMPOSE_DIR / "containers.conf")
    return env


def run(command: list[str], timeout: float, env: Mapping[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, and on failure raise with its output (podman's errors are the clue)."""
    result = subprocess.run(command, env=dict(env or podman_env()), capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command[:4])}... exited {result.returncode}\n"
                             f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
    return result


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], timeout, check=check)


@contextmanager
def phase(name: str, times: dict[str, float]) -> Iterator[None]:
    """Time one phase of the test; the test prints them all at the end."""
    started = time.monotonic()
    try:
        yield
    finally:
        times[name] = time.monotonic() - started


def ensure_base_image() -> None:
    """The debootstrap base: cached in podman's storage, built by the script when missing."""
    run(["bash", str(COMPOSE_DIR / "base-image.sh"), BASE_IMAGE], timeout=900)


def build_image(tag: str, dockerfile: Path, context: Path) -> None:
    """`podman build` with the local base; PyPI is reached with the host's CA bundle (build only)."""
    command = ["nice", "podman", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
               "-f", str(dockerfile), "-t", tag]
    if HOST_CA_BUNDLE.exists():
        command += ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    previous = image_id(tag)
    run([*command, str(context)], timeout=900)
    if previous and previous != image_id(tag):  # the old build is now untagged: free its space
        podman("rmi", previous, check=False)


def image_id(tag: str) -> str:
    result = podman("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def build_images() -> None:
    build_image(LAB_IMAGE, ROOT / "Dockerfile", ROOT)
    build_image(REDIS_IMAGE, COMPOSE_DIR / "redis.Dockerfile", COMPOSE_DIR)


def image_user(image: str) -> str:
    """`id -u` inside a fresh container of the image: the user its services run as."""
    return podman("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()


@dataclass
class ComposeProject:
    """One podman-compose project: docker-compose.yml plus the image-name override."""

    name: str
    env_file: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def command(self, *args: str, profile: str | None = None) -> list[str]:
        podman_compose = Path(sys.executable).parent / "podman-compose"
        files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(COMPOSE_DIR / "local-images.yml")]
        profiles = ["--profile", profile] if profile else []
        return [str(podman_compose), "--env-file", str(self.env_file), "-p", self.name, *files, *profiles,
                *args]

    def compose(self, *args: str, profile: str | None = None, timeout: float = 180,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**podman_env(), **self.extra_env}
        return run(self.command(*args, profile=profile), timeout, env=env, check=check)

    def containers(self, service: str | None = None) -> list[str]:
        """Names of this project's containers (all states), optionally of one service."""
        filters = ["--filter", f"label={PROJECT_LABEL}={self.name}"]
        if service:
            filters += ["--filter", f"label={SERVICE_LABEL}={service}"]
        out = podman("ps", "-a", *filters, "--format", "{{.Names}}").stdout
        return sorted(out.split())

    def hostnames(self, service: str) -> set[str]:
        """Container hostnames of a service: Celery names its workers POOL@hostname."""
        names = self.containers(service)
        if not names:
            return set()
        out = podman("inspect", "--format", "{{.Config.Hostname}}", *names).stdout
        return set(out.split())

    def volumes(self) -> list[str]:
        out = podman("volume", "ls", "--filter", f"label={PROJECT_LABEL}={self.name}", "--format",
                     "{{.Name}}").stdout
        return out.split()

    def logs(self, tail: int = 40) -> str:
        """The last lines of every container's log, for a failure message."""
        parts = []
        for name in self.containers():
            result = podman("logs", "--tail", str(tail), name, check=False)
            parts.append(f"--- {name}\n{result.stdout}{result.stderr}")
        return "\n".join(parts)

    def force_remove(self) -> None:
        """Last resort after a failed `down`: remove only this project's containers, pod and volumes."""
        for name in self.containers():
            podman("rm", "-f", "-t", "5", name, check=False)
        podman("pod", "rm", "-f", f"pod_{self.name}", check=False)
        for volume in self.volumes():
            podman("volume", "rm", "-f", volume, check=False)
        podman("network", "rm", "-f", f"{self.name}_default", check=False)
