"""Reading the Grafana provisioning as data: the dashboard's queries and the metric names they use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "monitoring" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "lab.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "lab.yml"

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "bool", "offset"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title + refId, PromQL) for every target of every panel."""
    return [(f"{panel['title']} [{target['refId']}]", target["expr"])
            for panel in dashboard["panels"] for target in panel.get("targets", [])]


def concrete(expr: str, rate_interval: str) -> str:
    """A dashboard query as Prometheus sees it once Grafana has filled in its variables."""
    return expr.replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval)


def grafana_variables(expr: str) -> list[str]:
    """Grafana variables left in a query (`$1` of label_replace is PromQL's own, not one)."""
    return re.findall(r"\$(?:\{\w+\}|[A-Za-z_]\w*)", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords and labels removed)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set(re.findall(r"\b[A-Za-z_:][\w:]*\b(?!\s*\()", text))
    return names - PROMQL_WORDS
