"""`lab advise`'s answer: one table (predicted vs measured per proved configuration), the
recommendation with the constraint that decided it, where the model missed and why; JSON for tools.

`noop/s` is the worker's own ceiling, measured on it just before its burst; the prediction beside
it uses that (1 / noop/s is the worker's serial work per task). The shortlist's prediction, made
with the pool's figure from config.pools, is `predicted_before_per_s` in the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from experiments.advise_model import Constraints
from experiments.advise_profile import fills_cores
from experiments.schema import Advice, AdviceProfile, JudgedAdvice, ProvedRow, Recommendation
from report.verdicts import ADVICE_TOLERANCE, advice_miss_reason, model_missed, recommend

COLUMNS = ("pool", "c", "noop/s", "tasks/s pred", "tasks/s meas (min–max)", "meas/pred", "p95 pred", "p95 meas",
           "MB pred", "MB meas", "lost")


def judge(advice: Advice) -> JudgedAdvice:
    """The advice with its recommendation (report.verdicts) and, per missed row, the clues to why."""
    limits = advice["constraints"]
    constraints = Constraints(limits["max_memory_mb"], limits["p95_ms"] / 1000 if limits["p95_ms"] else None)
    for row in advice["proved"]:
        row["why_missed"] = advice_miss_reason(row, advice["profile"]) if model_missed(row) else None
    return {**advice, "recommendation": recommend(advice["proved"], constraints)}


def rows_text(row: ProvedRow) -> list[str]:
    efficiency = row.get("efficiency")
    return [row["pool"], str(row["concurrency"]), _num(row.get("noop_per_s")), _num(row["predicted_per_s"]),
            f"{_num(row['measured_per_s'])} ({_num(row['measured_min'])}–{_num(row['measured_max'])})",
            "-" if efficiency is None else f"{efficiency:.0%}",
            _ms(row["predicted_p95_s"]), _ms(row["measured_p95_s"]),
            _num(row["predicted_memory_mb"]), _num(row["measured_memory_mb"]), str(row["lost"])]


def markdown(advice: JudgedAdvice) -> str:
    """The table and the verdict as markdown (README, docs, the run directory's advice.md)."""
    lines = [f"`lab advise {advice['target']}`: {profile_line(advice['profile'])}", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * 2 + "---:|" * (len(COLUMNS) - 2)]
    lines += ["| " + " | ".join(rows_text(row)) + " |" for row in advice["proved"]]
    lines += ["", verdict_line(advice["recommendation"])]
    lines += [f"- model missed {row['pool']} c={row['concurrency']}: {row['why_missed']}"
              for row in advice["proved"] if row.get("why_missed")]
    return "\n".join(lines) + "\n"


def profile_line(profile: AdviceProfile) -> str:
    delivered = (f"{profile['threads']} threads in-process delivered {profile['gil_cores']:.2f} cores' worth of its "
                 f"CPU, as many processes {profile['process_cores']:.2f}")
    if profile["gil_measured"]:
        gil = f"GIL-holding share {profile['gil_share']:.2f} ({delivered})"
    elif fills_cores(profile["threads"], profile["busy_share"], profile.get("cores") or 1):
        gil = f"GIL share not measurable: the cores were busy with something else ({delivered}); assumed 1"
    else:
        gil = f"GIL share not measurable: it waits {1 - profile['busy_share']:.1%} of its time; assumed 1"
    return (f"one call {profile['wall_s'] * 1000:.1f} ms wall = {profile['cpu_s'] * 1000:.1f} ms CPU + "
            f"{profile['io_s'] * 1000:.1f} ms waiting (p95 {profile['wall_p95_s'] * 1000:.1f} ms), "
            f"peak {profile['peak_mb']:.1f} MB, import {profile['import_mb']:.1f} MB; {gil}")


def verdict_line(recommendation: Recommendation) -> str:
    if recommendation["pool"] is None:
        return f"**No recommendation**: {recommendation['decided_by']}."
    holds = "within" if recommendation["prediction_holds"] else "NOT within"
    agree = "" if recommendation["predicted_choice"] == f"{recommendation['pool']} c={recommendation['concurrency']}" \
        else f" (the prediction alone would have chosen {recommendation['predicted_choice']})"
    return (f"**Recommended: {recommendation['pool']} c={recommendation['concurrency']}**{agree}; decided by "
            f"{recommendation['decided_by']}. Measured {recommendation['measured_per_s']:g}/s vs predicted "
            f"{recommendation['predicted_per_s']:g}/s ({recommendation['miss']:+.0%}): {holds} "
            f"{ADVICE_TOLERANCE:.0%} of the prediction.")


def finish(advice: Advice, run_dir: Path, json_out: Path | None, console: Console) -> JudgedAdvice:
    """Judge, print the table, write advice.json and advice.md (and --json); the judged advice."""
    judged = judge(advice)
    table = Table(title=f"lab advise {advice['target']}")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "pool" else "right")
    for row in judged["proved"]:
        table.add_row(*rows_text(row))
    console.print(profile_line(judged["profile"]))
    console.print(table)
    console.print(verdict_line(judged["recommendation"]))
    for row in judged["proved"]:
        if row["why_missed"]:
            console.print(f"model missed {row['pool']} c={row['concurrency']}: {row['why_missed']}")
    text = json.dumps(judged, indent=2) + "\n"
    (run_dir / "advice.json").write_text(text)
    (run_dir / "advice.md").write_text(markdown(judged))
    if json_out:
        json_out.write_text(text)
    console.print(f"wrote {run_dir / 'advice.json'}" + (f" and {json_out}" if json_out else ""))
    return judged


def _num(value: float | None) -> str:
    """Three significant figures at most: these are measurements."""
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"
