"""docker-compose.yml checked statically (fast, no engine): what the compose test cannot see cheaply.

Compose v2 itself accepts the file (alone and with the local override) for every profile;
every service built from the lab's image runs an entry point that exists and parses its
arguments; ports are published on 127.0.0.1 only; no password has a real value in the
repository; no container runs as root; healthchecks are quick enough for `up --wait` on
Docker 20.10 (no `start_interval`); the host's CA bundle reaches the build only as a secret.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
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
OVERRIDE = yaml.safe_load((ROOT / "compose" / "local-images.yml").read_text())
FAULTS_OVERRIDE = yaml.safe_load((ROOT / "compose" / "faults.yml").read_text())
RTT_OVERRIDE = yaml.safe_load((ROOT / "compose" / "rtt.yml").read_text())
COMPOSE_V2 = ROOT / ".tools" / "docker" / "cli-plugins" / "docker-compose"  # tools/compose-v2.sh
PROFILES = sorted({profile for service in SERVICES.values() for profile in service.get("profiles", [])})


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


def parse_like_the_module(module: str, args: list[str]) -> None:
    """`python -m MODULE args...` for a module of the project's packages: its own parser accepts the args."""
    assert module.split(".")[0] in PACKAGES, f"{module} is not a module of the project"
    importlib.import_module(module).parse_args(args)


def test_the_lab_services_are_the_expected_ones() -> None:
    assert set(LAB_SERVICES) >= {"worker-threads", "worker-prefork", "flower", "producer", "latency"}


@pytest.mark.parametrize("name", LAB_SERVICES)
def test_lab_services_run_an_existing_entry_point(name: str) -> None:
    """A console script of pyproject.toml, or `python -m` a module of the project (the latency server,
    until `lab` has a command for it), with arguments its parser accepts."""
    args = argv(SERVICES[name])
    if args[:2] == ["python", "-m"] and len(args) > 2:
        parse_like_the_module(args[2], args[3:])
        return
    assert args and args[0] in SCRIPTS, f"{name}: {args} does not start with a console script of pyproject.toml"
    if args[1:] != ["--help"]:
        parse_like_the_cli(args[0], args[1:])


def test_workers_reach_the_latency_service_which_needs_no_secret() -> None:
    """`mixed --io socket` in compose: workers are told where the latency service listens, and wait for it."""
    latency = SERVICES["latency"]
    command = argv(latency)
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0" and "ports" not in latency
    assert not latency.get("environment"), "the latency server needs no broker URL or password"
    for pool in ("threads", "prefork"):
        worker = SERVICES[f"worker-{pool}"]
        assert worker["environment"]["LAB_LATENCY_SERVER"] == f"latency:{port}"
        assert worker["depends_on"]["latency"]["condition"] == "service_healthy"


def test_every_lab_service_gets_the_visibility_timeout_from_env() -> None:
    """The fault tests shorten it through the env file; workers and the producer must agree on it."""
    for name in LAB_SERVICES:
        environment = SERVICES[name].get("environment") or {}
        if "LAB_BROKER_URL" in environment:
            assert environment["LAB_VISIBILITY_TIMEOUT"] == "${LAB_VISIBILITY_TIMEOUT:-60}", name


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
        if "LAB_BROKER_URL" in (SERVICES[name].get("environment") or {}):
            assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def seconds(duration: str) -> float:
    """A compose duration ("2s", "1m30s", "500ms") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


@pytest.mark.parametrize("files", [("docker-compose.yml",), ("docker-compose.yml", "compose/local-images.yml"),
                                   ("docker-compose.yml", "compose/local-images.yml", "compose/faults.yml"),
                                   ("docker-compose.yml", "compose/rtt.yml")])
@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_compose_v2_accepts_the_file(files: tuple[str, ...], profile: str | None) -> None:
    """`docker compose config -q` (the project-local Compose v2, standalone: no engine needed)."""
    assert COMPOSE_V2.exists(), "Compose v2 is missing: make compose-v2"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "REDIS_", "COMPOSE_"))}
    env["LAB_FAULTS_REDIS_PORT"] = "6390"  # set by the fault harness only
    command = [str(COMPOSE_V2), "--env-file", ".env.example", *(a for f in files for a in ("-f", f)),
               *(["--profile", profile] if profile else []), "config", "-q"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_lab_image_is_built_by_one_service_of_the_default_profile() -> None:
    """With `build:` on every service, Compose exported the same image once per service (3 x 37 s here)."""
    default = [name for name in LAB_SERVICES if not SERVICES[name].get("profiles")]
    assert [name for name in default if "build" in SERVICES[name]] == ["worker-threads"]
    assert SERVICES["producer"]["build"] == SERVICES["worker-threads"]["build"], "`run producer` before `up`"


def test_healthchecks_let_up_wait_return_quickly() -> None:
    """Docker < 25 has no `start_interval`: the first probe runs one `interval` after start.

    Redis' probe is cheap, so every 2 s lets the workers start early; a worker's probe costs
    ~0.6 s of CPU (celery inspect ping), so 10 s is the compromise; `up --wait` waits for all.
    """
    assert seconds(SERVICES["redis"]["healthcheck"]["interval"]) <= 2
    for name in ("worker-threads", "worker-prefork", "flower", "latency"):
        check = SERVICES[name]["healthcheck"]
        assert seconds(check["interval"]) <= 10, name
        assert seconds(check["timeout"]) <= seconds(check["interval"]), name


def test_the_local_override_swaps_images_and_builds_on_the_local_base_only() -> None:
    assert {key for key in OVERRIDE if not key.startswith("x-")} == {"services", "secrets"}
    assert set(OVERRIDE["secrets"]) == {"host_ca"}, "the one secret is the CA bundle, for builds"
    for name, service in OVERRIDE["services"].items():
        assert name in SERVICES and set(service) <= {"image", "build"}, f"override changes more than {name}'s image"
        if "build" in service:
            build = service["build"]
            assert "build" in SERVICES[name] or name == "redis", f"{name} builds only where the file builds"
            assert set(build) <= {"context", "dockerfile", "args", "secrets"}, build
            assert build["args"] == {"BASE_IMAGE": "localhost/debian:bookworm-py"}
            assert build.get("secrets", ["host_ca"]) == ["host_ca"]
    assert OVERRIDE["services"]["redis"]["build"]["dockerfile"] == "redis.Dockerfile"


def test_the_faults_override_publishes_only_redis_on_loopback() -> None:
    """compose/faults.yml lets the fault harness read the ledger from the host; users' file publishes no Redis."""
    assert set(FAULTS_OVERRIDE) == {"services"}
    assert FAULTS_OVERRIDE["services"] == {"redis": {"ports": [FAULTS_OVERRIDE["services"]["redis"]["ports"][0]]}}
    port = FAULTS_OVERRIDE["services"]["redis"]["ports"][0]
    assert re.fullmatch(r"127\.0\.0\.1:\$\{LAB_FAULTS_REDIS_PORT:\?[^}]+\}:6379", port), port


def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_host_ca_bundle_reaches_the_build_only_as_a_secret_mount() -> None:
    """Every pip step mounts the optional `host_ca` secret; nothing copies a certificate in or names one."""
    instructions = dockerfile_instructions()
    pip_steps = [line for line in instructions if line.startswith("RUN") and "pip install" in line]
    assert pip_steps and all(line.startswith("RUN --mount=type=secret,id=host_ca ") for line in pip_steps)
    assert all("required" not in line for line in pip_steps), "the secret stays optional (plain internet)"
    for line in instructions:
        assert not re.match(r"(COPY|ADD)\b.*(\.crt|\.pem|ca-cert)", line, re.I), line
        assert not re.match(r"(ENV|ARG)\b.*(CERT|CA_BUNDLE)", line, re.I), line
    assert not re.search(r"^#\s*syntax=", (ROOT / "Dockerfile").read_text(), re.M), "a frontend image is pulled"


def test_dockerfile_base_is_an_argument_and_dockerignore_keeps_the_context_small() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "*" in lines, "ignore everything, then allow what runs"
    assert allowed <= {"pyproject.toml", *PACKAGES}, allowed


def test_the_rtt_override_puts_the_relay_between_the_workers_and_redis_only() -> None:
    """compose/rtt.yml: workers' broker through the relay, their ledger writes direct; Flower and producer untouched."""
    services = RTT_OVERRIDE["services"]
    assert set(services) == {"broker-relay", "worker-threads", "worker-prefork"}
    relay = services["broker-relay"]
    assert relay["command"][:2] == ["lab", "relay"] and "ports" not in relay and "environment" not in relay
    assert "${LAB_RTT_MS:-" in relay["command"][-1]
    parse_like_the_cli("lab", [*relay["command"][1:-1], "2"])
    assert relay["command"][relay["command"].index("--target-host") + 1] == "redis"
    for name in ("worker-threads", "worker-prefork"):
        env = services[name]["environment"]
        assert "@broker-relay:6380/" in env["LAB_BROKER_URL"] and "@redis:6379/" in env["LAB_LEDGER_URL"]
        assert all(url.startswith("redis://:${REDIS_PASSWORD:?") for url in env.values()), "no password here"
        assert services[name]["depends_on"]["broker-relay"]["condition"] == "service_healthy"
