from pathlib import Path

import pytest

from config import Settings
from experiments.spec import SpecError, load, parse
from tasks.work import DEFAULT_SQUARE_WORK

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """
name = "t"
[[cells]]
pools = ["prefork", "threads"]
concurrency = [1, 4]
workload = "sleep"
params = { seconds = 0.2 }
rounds = 3
"""


def test_a_block_expands_over_pools_and_concurrency() -> None:
    experiment = parse(MINIMAL)
    assert [(c.pool, c.concurrency, c.tasks) for c in experiment.cells] == [
        ("prefork", 1, 3), ("prefork", 4, 12), ("threads", 1, 3), ("threads", 4, 12)
    ]
    assert [c.index for c in experiment.cells] == [1, 2, 3, 4]
    assert experiment.cells[0].param == {"seconds": 0.2}
    assert experiment.cells[0].repetitions == 3
    assert experiment.cells[0].arrival.mode == "prefill"
    assert len({c.id for c in experiment.cells}) == 4


def test_cells_carry_worker_args_settings_arrival_and_defaults() -> None:
    experiment = parse("""
repetitions = 5
[settings]
loglevel = "WARNING"
[[cells]]
label = "knob"
pools = ["threads"]
concurrency = [2]
workload = "square"
tasks = 10
arrival = "rate"
load = 0.5
timing = false
worker_args = ["--max-tasks-per-child", "50"]
settings = { prefetch_multiplier = 1, acks_late = false }
""", default_name="fromfile")
    cell = experiment.cells[0]
    assert experiment.name == "fromfile"
    assert cell.param == {"work": DEFAULT_SQUARE_WORK}
    assert cell.repetitions == 5
    assert (cell.arrival.mode, cell.arrival.load) == ("rate", 0.5)
    assert cell.worker_args == ("--max-tasks-per-child", "50")
    assert cell.setting_overrides == {"acks_late": False, "prefetch_multiplier": 1}
    assert cell.id.endswith("-notiming")
    base = experiment.apply_settings(Settings(broker_url="redis://127.0.0.1:1/0"))
    assert base.loglevel == "WARNING"


NOOP = "[[cells]]\npools=['solo']\nconcurrency=[1]\nworkload='noop'\ntasks=1\n"


@pytest.mark.parametrize("text, message", [
    ("name = 'x'", "no [[cells]]"),
    ("colour = 1\n[[cells]]", "unknown key 'colour'"),
    ("[[cells]]\npools=['forked']\nconcurrency=[1]\nworkload='noop'\ntasks=1", "unknown pool 'forked'"),
    ("[[cells]]\npools=['solo']\nconcurrency=[1]\nworkload='cube'\ntasks=1", "workload must be one of"),
    ("[[cells]]\npools=['solo']\nconcurrency=[0]\nworkload='noop'\ntasks=1", "concurrency must be an integer"),
    (NOOP + "rounds=2", "exactly one of tasks, rounds or duration"),
    (NOOP + "arrival='rate'", "exactly one of rate"),
    (NOOP + "rate=3", "only apply to arrival"),
    ("[[cells]]\npools=['solo']\nconcurrency=[1]\nworkload='sleep'\nparams={work=3}\ntasks=1", "unknown key 'work'"),
    (NOOP + "settings={events='yes'}", "events must be bool"),
    (NOOP + "settings={broker_url='x'}", "unknown key"),
    ("[settings]\nprefetch_multiplier = -1\n[[cells]]", "prefetch multiplier"),
    ("this is = = not toml", "not valid TOML"),
])  # fmt: skip
def test_bad_files_fail_whole_with_one_line(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[")) as error:
        parse(text)
    assert "\n" not in str(error.value)


def test_shipped_experiments_load() -> None:
    quick = load(ROOT / "config/experiments/quick.toml")
    full = load(ROOT / "config/experiments/full.toml")
    assert quick.name == "quick" and full.name == "full"
    assert all(c.repetitions >= 3 for c in (*quick.cells, *full.cells))
    assert any(c.paired_untimed for c in quick.cells), "quick measures the harness overhead"
    assert load(ROOT / "tests/experiments/tiny.toml").flower


def test_the_free_threaded_contender_runs_in_every_shipped_experiment() -> None:
    def cells(name: str, pool: str) -> set[tuple[str, str, int]]:
        return {(c.label, c.workload, c.concurrency) for c in load(ROOT / f"config/experiments/{name}.toml").cells
                if c.pool == pool}

    assert {("cpu", "square", 2), ("io", "sleep", 64)} <= cells("quick", "threads-ft")
    assert cells("full", "threads") == cells("full", "threads-ft"), "full: threads-ft beside every threads cell"


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load(tmp_path / "nope.toml")


RTT_BLOCK = """
[[cells]]
label = "net"
pools = ["threads", "prefork"]
concurrency = [2]
workload = "noop"
tasks = 10
"""


def test_rtt_and_prefetch_expand_into_cells_of_their_own() -> None:
    experiment = parse(RTT_BLOCK + "rtt_ms = [0, 0.5, 10]\nprefetch = [1, 16]\n")
    cells = experiment.cells
    assert len(cells) == 3 * 2 * 2 and len({c.id for c in cells}) == len(cells)
    assert [(c.rtt_ms, c.pool, c.prefetch) for c in cells[:4]] == [
        (0.0, "threads", 1), (0.0, "threads", 16), (0.0, "prefork", 1), (0.0, "prefork", 16)]
    assert {c.setting_overrides["prefetch_multiplier"] for c in cells} == {1, 16}
    assert cells[0].id == "01-net-noop-threads-c2-pf1" and cells[-1].id == "12-net-noop-prefork-c2-rtt10ms-pf16"
    assert "RTT +0.5 ms, prefetch 1" in cells[4].title()
    assert [c.index for c in cells] == list(range(1, 13))


def test_without_rtt_or_prefetch_cells_are_direct_and_keep_their_ids() -> None:
    (cell, _) = parse(RTT_BLOCK).cells
    assert (cell.rtt_ms, cell.prefetch, cell.id) == (0.0, None, "01-net-noop-threads-c2")


@pytest.mark.parametrize("extra, message", [
    ("rtt_ms = [-1]", "rtt_ms must be a number between 0 and 1000"),
    ("rtt_ms = [5000]", "rtt_ms must be a number between 0 and 1000"),
    ("rtt_ms = ['fast']", "rtt_ms must be a number"),
    ("prefetch = [0]", "prefetch must be an integer between 1 and 10000"),
    ("prefetch = [1.5]", "prefetch must be an integer"),
    ("prefetch = [1]\nsettings = { prefetch_multiplier = 4 }", "not both"),
])  # fmt: skip
def test_bad_rtt_or_prefetch_is_one_line(extra: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse(RTT_BLOCK + extra + "\n")


def test_the_shipped_rtt_experiment_is_the_issues_grid() -> None:
    cells = load(ROOT / "config" / "experiments" / "rtt.toml").cells
    assert {c.rtt_ms for c in cells} == {0.0, 0.5, 2.0, 10.0}
    assert {c.pool for c in cells} == {"threads", "prefork", "gevent"}
    assert {c.prefetch for c in cells} == {1, 4, 16} and {c.workload for c in cells} == {"noop", "square"}
    assert len(cells) == 4 * 3 * 3 * 2 and all(c.repetitions >= 3 for c in cells)
