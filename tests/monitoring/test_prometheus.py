"""The real Prometheus (Debian package) scraping the real Flower during a short run.

promtool accepts the config; the per-worker rate of succeeded tasks is non-zero while
the run goes; the totals equal what the producer sent; every Grafana dashboard query
returns data from this Prometheus; the per-pool rate is plotted for the docs.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from config import Settings
from config.pools import DEFAULT_POOLS
from stack.prometheus import CONFIG_TEMPLATE, Prometheus, check_config
from tests.monitoring.artefacts import plot_series, publish_to_docs
from tests.monitoring.conftest import SCRAPE_INTERVAL, SLEEP_S, SUCCEEDED, WatchedRun
from tests.monitoring.dashboard import concrete, grafana_variables, load_dashboard, queries

pytestmark = pytest.mark.monitoring

RATE_INTERVAL = "4s"  # what Grafana's $__rate_interval is at a 1 s scrape interval (4 x scrape)
PER_POOL_PANEL = "Tasks/s per pool [A]"


def finite_values(series: list[dict[str, object]]) -> list[float]:
    values = [float(v) for item in series for _, v in item["values"]]  # type: ignore[attr-defined]
    return [v for v in values if math.isfinite(v)]


def test_promtool_accepts_the_compose_and_the_native_config(settings: Settings, tmp_path: Path) -> None:
    rendered = Prometheus(settings, tmp_path, SCRAPE_INTERVAL).write_config()
    assert rendered.stat().st_mode & 0o077 == 0, "the rendered config holds the Flower password"
    assert settings.flower_password in rendered.read_text()
    for path in (CONFIG_TEMPLATE, rendered):
        result = check_config(path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout + result.stderr


def test_rate_per_worker_is_non_zero_and_totals_match_what_was_sent(watched_run: WatchedRun) -> None:
    prometheus = watched_run.prometheus
    rates = watched_run.query_range(f"sum by (worker) (rate({SUCCEEDED}[{RATE_INTERVAL}]))")
    peak = {item["metric"]["worker"]: max(finite_values([item])) for item in rates}  # type: ignore[index]
    assert set(peak) == set(watched_run.worker_names.values())
    assert all(rate > 0 for rate in peak.values()), peak
    totals = {item["metric"]["worker"]: float(item["value"][1])
              for item in prometheus.query(f"sum by (worker) ({SUCCEEDED})")}
    assert totals == {name: float(watched_run.sent_per_pool) for name in watched_run.worker_names.values()}
    (total,) = prometheus.query(f"sum({SUCCEEDED})")
    assert float(total["value"][1]) == watched_run.sent_per_pool * len(DEFAULT_POOLS)


@pytest.mark.parametrize("title, expr", queries(load_dashboard()), ids=[t for t, _ in queries(load_dashboard())])
def test_dashboard_query_returns_data(watched_run: WatchedRun, title: str, expr: str) -> None:
    promql = concrete(expr, RATE_INTERVAL)
    assert grafana_variables(promql) == []
    series = watched_run.query_range(promql)
    assert series, f"{title}: no series for {promql}"
    assert finite_values(series), f"{title}: only NaN for {promql}"


def test_rate_per_pool_plot_from_the_dashboard_query(watched_run: WatchedRun, tmp_path: Path) -> None:
    (expr,) = [expr for title, expr in queries(load_dashboard()) if title == PER_POOL_PANEL]
    series = watched_run.query_range(concrete(expr, RATE_INTERVAL))
    assert {item["metric"]["pool"] for item in series} == set(DEFAULT_POOLS)  # type: ignore[index]
    path = plot_series(series, "pool",  # type: ignore[arg-type]
                       f"Prometheus: succeeded tasks/s per pool (the dashboard's query)\n{watched_run.sent_per_pool} "
                       f"x sleep({SLEEP_S} s) per pool; threads x4, prefork x2", tmp_path / "prometheus-rate.png")
    assert path.stat().st_size > 10_000
    publish_to_docs(path)
