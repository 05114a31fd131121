"""What the monitoring tests leave behind: a Flower screenshot and a Prometheus rate plot.

Each is written under the test's tmp_path. With LAB_UPDATE_DOCS_IMG=1 it is also copied
to docs/img/, which is how the images in the documentation are refreshed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from tests.monitoring.dashboard import ROOT

DOCS_IMG = ROOT / "docs" / "img"
UPDATE_ENV = "LAB_UPDATE_DOCS_IMG"


def publish_to_docs(artefact: Path) -> Path | None:
    """Copy an artefact into docs/img/ only when asked to (LAB_UPDATE_DOCS_IMG=1)."""
    if os.environ.get(UPDATE_ENV) != "1":
        return None
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(artefact, DOCS_IMG / artefact.name))


def plot_series(series: Sequence[dict[str, Any]], label: str, title: str, path: Path) -> Path:
    """One line per Prometheus range-query series, time relative to the first point."""
    t0 = min(float(values[0][0]) for values in (s["values"] for s in series))
    figure, axes = plt.subplots(figsize=(8, 4), dpi=100)
    for item in sorted(series, key=lambda s: str(s["metric"].get(label, ""))):
        times = [float(t) - t0 for t, _ in item["values"]]
        axes.plot(times, [float(v) for _, v in item["values"]], marker=".", label=item["metric"].get(label, "?"))
    axes.set_xlabel("seconds since the run started")
    axes.set_ylabel("tasks/s")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(title=label)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
