"""Broker latency end to end: a real worker behind a real relay to a real Redis, against direct.

The assertions are orderings and bounds the model implies (a consumer that pays at least two
round trips per task cannot beat 1 / (2 x RTT)), never timings to the millisecond.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from config import Settings
from experiments import runner
from experiments.spec import SpecError, parse
from report.build import write_report

RTT_MS = 20.0
TASKS = 40
SMALL = f"""
name = "rtt-test"
repetitions = 1
enqueue = false
redis_benchmark = false
reuse_workers = true
calibration_pings = 40
[settings]
loglevel = "WARNING"
events = false
results = false
[[cells]]
label = "rtt"
pools = ["threads"]
concurrency = [2]
prefetch = [4]
rtt_ms = [0, {RTT_MS}]
workload = "noop"
tasks = {TASKS}
arrival = "burst"
"""


@pytest.mark.slow
def test_a_relayed_worker_drains_slower_as_the_model_says_and_results_say_how(settings: Settings,
                                                                               tmp_path: Path) -> None:
    experiment = parse(SMALL)
    results = runner.run_experiment(experiment, settings, tmp_path / "run",
                                    console=Console(file=io.StringIO(), width=200))
    direct, relayed = results["cells"]
    assert (direct["rtt_ms"], relayed["rtt_ms"]) == (0.0, RTT_MS)
    assert direct["completed"] == relayed["completed"] == TASKS and direct["healthy"] and relayed["healthy"]
    # Every fetch is a BLMOVE then the take (two round trips at least): at most 1 / (2 x RTT) tasks/s.
    assert relayed["throughput_per_s"] <= 1 / (2 * RTT_MS / 1000) * 1.1
    assert direct["throughput_per_s"] > 3 * relayed["throughput_per_s"]
    assert relayed["p99_s"] > direct["p99_s"]
    assert direct["relay_cpu_s"] is None and relayed["relay_cpu_s"] > 0 and relayed["relay_cpu_us_per_task"] > 0
    assert relayed["redis_cpu_us_per_task"] > 0

    delay = results["delay"]
    assert delay["mechanism"] == "relay" and delay["netem_available"] is False
    (calibration,) = delay["calibration"]
    assert calibration["rtt_ms"] == RTT_MS and calibration["relayed_median_ms"] >= RTT_MS
    census = delay["round_trips"]["threads"]
    assert census["tasks"] == 60 and census["rtt_ms"] == RTT_MS
    commands = {name: count / census["tasks"] for name, count in census["commands"].items()}
    assert commands["BLMOVE"] == pytest.approx(1, abs=0.1) and commands["EVALSHA"] == pytest.approx(1, abs=0.1)
    assert commands.get("MULTI", 0) <= 1.1, "the ack only: kombu's second unacked record is skipped"
    # BLMOVE, then the take, in series: the consumer's cycle is at least two RTTs, and not many more
    assert 2 * RTT_MS * 0.95 <= census["cycle_ms"] <= 6 * RTT_MS
    assert census["round_trips_per_task"] == pytest.approx(3, abs=0.3), "BLMOVE, the take, the ack"

    write_report(results, tmp_path / "run")
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Broker latency" in report and "relay CPU" in report
    assert (tmp_path / "run" / "plots" / "rtt-throughput.png").read_bytes()[:4] == b"\x89PNG"


def test_attached_runs_refuse_an_rtt(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="drop --attach"):
        runner.run_experiment(parse(SMALL), settings, tmp_path / "run", attach=True,
                              console=Console(file=io.StringIO()))
