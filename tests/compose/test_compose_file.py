"""docker-compose.yml checked statically (fast, no podman): what the compose test cannot see cheaply.

Every service built from the lab's image runs an entry point that exists and parses its
arguments; ports are published on 127.0.0.1 only; no password has a real value in the
repository; no container runs as root.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]
PACKAGES = {name.rstrip("*") for name in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
LAB_IMAGE = COMPOSE["x-lab-image"]
LAB_SERVICES = sorted(name for name, service in SERVICES.items() if service.get("image") == LAB_IMAGE)
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN", re.I)
REQUIRED_VAR = re.compile(r"^\$\{(\w+):\?[^}]*\}$")  # ${NAME:?message}: no default, so no value here


def argv(service: dict[str, Any]) -> list[str]:
    entrypoint = service.get("entrypoint") or []
    command = service.get("command") or []
    return [*entrypoint, *command]


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def parse_like_the_cli(script: str, args: list[str]) -> click.Context:
    """Resolve `script args...` through the click group behind the console script, without running it."""
    module = importlib.import_module(SCRIPTS[script].split(":")[0])
    group: click.Group = module.cli
    ctx = click.Context(group, info_name=script)
    name, command, rest = group.resolve_command(ctx, list(args))
    assert command is not None, f"{script} has no subcommand {name!r}"
    return command.make_context(name or "", rest, parent=ctx)


def test_the_lab_services_are_the_expected_ones() -> None:
    assert set(LAB_SERVICES) >= {"worker-threads", "worker-prefork", "flower", "producer"}


@pytest.mark.parametrize("name", LAB_SERVICES)
def test_lab_services_run_an_existing_entry_point(name: str) -> None:
    args = argv(SERVICES[name])
    assert args and args[0] in SCRIPTS, f"{name}: {args} does not start with a console script of pyproject.toml"
    if args[1:] != ["--help"]:
        parse_like_the_cli(args[0], args[1:])


def test_workers_use_the_native_launchers_entry_point_per_pool() -> None:
    for pool in ("threads", "prefork"):
        service = SERVICES[f"worker-{pool}"]
        assert argv(service) == ["lab", "worker", pool]
        assert f"LAB_{pool.upper()}_CONCURRENCY" in service["environment"]
        grace = re.fullmatch(r"(\d+)(m|s)", service["stop_grace_period"])
        assert grace and int(grace[1]) * (60 if grace[2] == "m" else 1) >= 60, "too short for a warm shutdown"


def test_every_published_port_is_on_loopback_and_only_flower_publishes() -> None:
    published = {name: service.get("ports", []) for name, service in SERVICES.items() if service.get("ports")}
    for name, ports in published.items():
        for port in ports:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"
    assert "redis" not in published
    assert SERVICES["flower"]["ports"] == ["127.0.0.1:${LAB_FLOWER_PORT:-5555}:5555"]


def test_no_secret_has_a_value_in_the_repository() -> None:
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_KEY.search(key):
                assert REQUIRED_VAR.match(str(value)), f"{name}.{key} must be ${{VAR:?...}}, not {value!r}"
    broker = COMPOSE["x-lab-env"]["LAB_BROKER_URL"]
    password = re.match(r"redis://:(.*)@redis:6379/0$", broker)
    assert password and REQUIRED_VAR.match(password[1]), broker
    assert "$$REDIS_PASSWORD" in " ".join(argv(SERVICES["redis"])), "Redis takes its password from its env"
    for key, value in env_example().items():
        if SECRET_KEY.search(key):
            assert value.startswith("change-me"), f".env.example {key} must be a placeholder"


def test_every_required_variable_is_documented_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required and required <= set(env_example()), required - set(env_example())


def test_no_container_runs_as_root() -> None:
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert users and users[-1] not in ("root", "0"), "the Dockerfile must end as a non-root USER"
    for name, service in SERVICES.items():
        if name not in LAB_SERVICES:
            assert str(service.get("user", "root")).split(":")[0] not in ("root", "0"), f"{name} needs `user:`"


def test_redis_has_a_password_aof_on_a_volume_and_a_healthcheck() -> None:
    redis = SERVICES["redis"]
    command = " ".join(argv(redis))
    assert "--requirepass" in command and "--appendonly yes" in command and "--dir /data" in command
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])
    assert "healthcheck" in redis


def test_producer_is_a_run_once_profile_and_services_wait_for_redis() -> None:
    producer = SERVICES["producer"]
    assert producer["profiles"] == ["producer"] and producer["restart"] == "no"
    assert producer["entrypoint"] == ["producer"]
    for name in LAB_SERVICES:
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_the_local_override_only_swaps_image_names() -> None:
    override = yaml.safe_load((ROOT / "compose" / "local-images.yml").read_text())
    assert set(override) == {"services"}
    for name, service in override["services"].items():
        assert name in SERVICES and set(service) == {"image"}, f"override changes more than {name}'s image"


def test_dockerfile_base_is_an_argument_and_dockerignore_keeps_the_context_small() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "*" in lines, "ignore everything, then allow what runs"
    assert allowed <= {"pyproject.toml", *PACKAGES}, allowed
