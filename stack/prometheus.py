"""Prometheus from the Debian package, scraping Flower's `/metrics`, for the native stack.

There is one scrape config, `monitoring/prometheus.yml`, written for compose (target
`flower:5555`, credentials as `${LAB_FLOWER_*}` placeholders). Natively it is rendered
from that file: the placeholders get the Flower credentials, the target becomes the
local Flower, and tests may shorten the scrape interval. The rendered copy holds the
password, so it is written with mode 0600 next to the stack's logs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from config import Settings
from config.errors import UserError
from config.settings import write_private
from stack import processes
from stack.redis_server import free_port

CONFIG_TEMPLATE = Path(__file__).resolve().parent.parent / "monitoring" / "prometheus.yml"
FLOWER_JOB = "flower"
INSTALL_HINT = "install it with `make system-deps-monitoring` (Debian package `prometheus`)"


class PrometheusError(UserError, RuntimeError):
    """Prometheus is missing, refused its config, or answered a query with an error."""


def binary(name: str = "prometheus") -> str:
    """The path of `prometheus` or `promtool`; a clear error if the package is missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/bin")
    if path is None:
        raise PrometheusError(f"{name} not found: {INSTALL_HINT}")
    return path


def flower_target(settings: Settings) -> str:
    """Where Prometheus reaches Flower natively (a wildcard bind is reached on loopback)."""
    address = "127.0.0.1" if settings.flower_address in ("0.0.0.0", "") else settings.flower_address
    return f"{address}:{settings.flower_port}"


def render_config(template: str, target: str, credentials: Mapping[str, str],
                  scrape_interval: str | None = None) -> str:
    """The compose config made native: placeholders filled, Flower target replaced.

    Works on the parsed YAML, so a password with YAML-special characters stays one string.
    """
    config = _substitute(yaml.safe_load(template), credentials)
    for job in config["scrape_configs"]:
        if job["job_name"] == FLOWER_JOB:
            job["static_configs"] = [{"targets": [target]}]
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
        config["global"]["evaluation_interval"] = scrape_interval
    return yaml.safe_dump(config, sort_keys=False)


def flower_credentials(settings: Settings) -> dict[str, str]:
    return {"LAB_FLOWER_USER": settings.flower_user, "LAB_FLOWER_PASSWORD": settings.flower_password}


def _substitute(node: Any, values: Mapping[str, str]) -> Any:
    """Replace every string that is exactly `${NAME}` by `values[NAME]`, recursively."""
    if isinstance(node, dict):
        return {key: _substitute(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if isinstance(node, str) and node.startswith("${") and node.endswith("}"):
        name = node[2:-1]
        if name not in values:
            raise PrometheusError(f"{CONFIG_TEMPLATE.name}: no value for placeholder {node}")
        return values[name]
    return node


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check config`: Prometheus' own validation of a config file."""
    return subprocess.run([binary("promtool"), "check", "config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


@dataclass
class Prometheus(processes.ChildProcess):
    """One `prometheus` process on a free loopback port, scraping the stack's Flower."""

    settings: Settings
    run_dir: Path
    scrape_interval: str | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "prometheus.yml"

    def write_config(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        text = render_config(CONFIG_TEMPLATE.read_text(), flower_target(self.settings),
                             flower_credentials(self.settings), self.scrape_interval)
        return write_private(self.config_path, text)

    def command(self) -> list[str]:
        return [
            binary(), f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.run_dir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=2d",
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> Prometheus:
        self.port = self.port or free_port()
        self.write_config()
        self.launch(self.command(), os.environ, self.run_dir / "prometheus.log", self.ready, timeout, "prometheus", 0.1)
        return self

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def api(self, path: str, **params: str) -> Any:
        """GET an HTTP API endpoint and return its `data`; errors become PrometheusError."""
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('error', response.text)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query: a list of {metric: labels, value: [time, "number"]}."""
        return list(self.api("query", query=expr)["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query: a list of {metric: labels, values: [[time, "number"], ...]}."""
        data = self.api("query_range", query=expr, start=str(start), end=str(end), step=str(step))
        return list(data["result"])

    def flower_target_up(self) -> bool:
        """Prometheus has scraped Flower successfully (so auth and target are right)."""
        targets = self.api("targets")["activeTargets"]
        return any(t["labels"].get("job") == FLOWER_JOB and t["health"] == "up" for t in targets)
