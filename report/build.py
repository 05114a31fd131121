"""Write report.md, report.html and plots/*.png next to a results.json."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.schema import Results
from report import content, html, markdown, plots, rtt, verdicts


def write_report(results: Results, out: Path) -> Path:
    """Render the whole report into `out`; return the path of report.md."""
    made = plots.write_all(results["cells"], out / "plots", verdicts.headline(results))
    delayed = rtt.figure(results)
    if delayed is not None:
        delayed.savefig(out / "plots" / rtt.PLOT, dpi=110, bbox_inches="tight")
    blocks = content.blocks(results, made)
    (out / "report.md").write_text(markdown.render(blocks))
    (out / "report.html").write_text(html.render(blocks, f"Experiment {results['experiment']['name']}"))
    return out / "report.md"


def rebuild(run_dir: Path) -> Path:
    """Re-render a finished run's report from its results.json (no measuring)."""
    return write_report(json.loads((run_dir / "results.json").read_text()), run_dir)


def rerender(run_dir: Path) -> list[Path]:
    """`lab report`: every report a finished run's files support, rebuilt without measuring.

    report.md from results.json; claims.md when the run has the claims' side.json; map.md when it
    has the convoy of a decision map. ValueError when there is no results.json.
    """
    from experiments.decision_map import CONVOY_FILE, load_map
    from report.claims import rejudge
    from report.decision_map import write_map_report

    if not (run_dir / "results.json").is_file():
        raise ValueError(f"{run_dir} has no results.json")
    written = [rebuild(run_dir)]
    if (run_dir / "side.json").is_file():
        written.append(rejudge(run_dir))
    if (run_dir / CONVOY_FILE).is_file():
        written.append(write_map_report(*load_map(run_dir), run_dir))
    return written
