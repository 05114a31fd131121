"""The compose `monitoring` profile uses the very files the native stack and the tests check."""

from __future__ import annotations

from pathlib import Path

import yaml

from stack.prometheus import CONFIG_TEMPLATE, FLOWER_JOB, render_config
from tests.monitoring.dashboard import DATASOURCES, PROVIDERS, ROOT, load_yaml

SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def mounts(service: str) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of a service's bind mounts."""
    pairs = (str(volume).split(":") for volume in SERVICES[service]["volumes"])
    return {parts[1]: parts[0] for parts in pairs if parts[0].startswith("./")}


def test_both_services_are_in_the_monitoring_profile_on_loopback_and_not_root() -> None:
    for name in ("prometheus", "grafana"):
        service = SERVICES[name]
        assert service["profiles"] == ["monitoring"], name
        assert all(str(port).startswith("127.0.0.1:") for port in service["ports"]), name
        assert str(service["user"]).split(":")[0] not in ("0", "root"), name


def test_prometheus_mounts_the_one_scrape_config_and_fills_in_flowers_credentials() -> None:
    service = SERVICES["prometheus"]
    config_in_container = next(path for path, host in mounts("prometheus").items()
                               if host == f"./{CONFIG_TEMPLATE.relative_to(ROOT)}")
    script = " ".join(service["command"])
    assert config_in_container in script
    for name in ("LAB_FLOWER_USER", "LAB_FLOWER_PASSWORD"):
        assert f"$${{{name}}}" in script and f"$${name}" in script, name
        assert name in service["environment"], name


def test_the_scrape_config_targets_the_compose_flower_as_written() -> None:
    config = yaml.safe_load(CONFIG_TEMPLATE.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == FLOWER_JOB]
    assert job["static_configs"] == [{"targets": ["flower:5555"]}]
    assert job["basic_auth"] == {"username": "${LAB_FLOWER_USER}", "password": "${LAB_FLOWER_PASSWORD}"}


def test_rendering_keeps_a_yaml_special_password_as_one_string() -> None:
    password = 'p#ss: "w0rd" & more'
    rendered = yaml.safe_load(render_config(CONFIG_TEMPLATE.read_text(), "127.0.0.1:1234",
                                            {"LAB_FLOWER_USER": "lab", "LAB_FLOWER_PASSWORD": password}, "1s"))
    (job,) = rendered["scrape_configs"]
    assert job["basic_auth"] == {"username": "lab", "password": password}
    assert job["static_configs"] == [{"targets": ["127.0.0.1:1234"]}]
    assert rendered["global"]["scrape_interval"] == "1s"


def test_grafana_mounts_the_provisioning_and_dashboards_the_files_point_at() -> None:
    grafana = mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == "./monitoring/grafana/provisioning"
    (provider,) = load_yaml(PROVIDERS)["providers"]
    assert grafana[provider["options"]["path"]] == "./monitoring/grafana/dashboards"
    (source,) = load_yaml(DATASOURCES)["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in SERVICES
    env = SERVICES["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_all_volume_paths_exist() -> None:
    for name in ("prometheus", "grafana"):
        for host in mounts(name).values():
            assert (ROOT / Path(host)).exists(), host

