"""Grafana cannot run here, so its provisioning is checked as data, against a live Flower.

The metric names every dashboard query reads must be ones Flower really exports:
they are compared with the samples of a real Flower's `/metrics` after real tasks.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stack.processes import wait_until
from stack.workers import Flower, Worker
from tests.monitoring.dashboard import (
    DATASOURCES,
    PROVIDERS,
    concrete,
    grafana_variables,
    load_dashboard,
    load_yaml,
    metric_names,
    queries,
)

DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"


def datasource_uid() -> str:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    return str(source["uid"])


def test_datasource_is_the_compose_prometheus() -> None:
    config = load_yaml(DATASOURCES)
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["access"] == "proxy"
    assert source["url"] == "http://prometheus:9090"
    assert source["uid"] and source["isDefault"] is True


def test_dashboard_provider_loads_the_mounted_folder() -> None:
    config = load_yaml(PROVIDERS)
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARDS_MOUNT


def test_dashboard_structure_and_datasource_references() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids must be unique"
    uid = datasource_uid()
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    exprs = " ".join(expr for _, expr in queries(load_dashboard()))
    assert 'rate(flower_events_total{type="task-succeeded"}' in exprs
    assert "sum by (pool)" in exprs and "sum by (worker)" in exprs
    assert "histogram_quantile(0.95" in exprs and "flower_task_runtime_seconds_bucket" in exprs
    assert "flower_worker_online" in exprs
    assert "flower_worker_number_of_currently_executing_tasks" in exprs


def test_only_grafana_rate_interval_is_left_to_fill_in() -> None:
    for title, expr in queries(load_dashboard()):
        assert grafana_variables(concrete(expr, "5s")) == [], title


def test_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, pool) (label_replace(rate(x_bucket{a="b"}[$__rate_interval]),'
            ' "pool", "$1", "worker", "([^@]+)@.*"))) or on (pool) y_total')
    assert metric_names(expr) == {"x_bucket", "y_total"}


def flower_sample_names(flower: Flower) -> set[str]:
    text = flower.get("/metrics").text
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.mark.timeout(120)
def test_every_dashboard_metric_is_exported_by_a_live_flower(
    start_worker: Callable[..., Worker], start_flower: Callable[[], Flower],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    worker = start_worker("threads")
    flower = start_flower()
    sent = run_cli("send", "--task", "sleep", "--seconds", "0.01", "-n", "5", "--pool", "threads", "--wait")
    assert sent.returncode == 0, sent.stderr
    used = set().union(*(metric_names(expr) for _, expr in queries(load_dashboard())))
    assert used, "the dashboard reads no metric"
    # The executing-tasks gauge comes with the worker's heartbeat (every 2 s): wait for one.
    wait_until(lambda: used <= flower_sample_names(flower), 30, f"flower exporting {sorted(used)} for {worker.name}")
    assert used <= flower_sample_names(flower)
