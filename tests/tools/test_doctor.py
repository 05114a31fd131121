"""tools/doctor.sh: its table is read as written, and `--require TARGET` fails in one line.

`make test` calls `doctor.sh --require test` before pytest, so a program the install targets
did not bring stops the run there, naming the make target that installs it. The synthetic
tables' probes are `true`/`false`/`echo`, and the engine is forced (LAB_COMPOSE_ENGINE), so
nothing is installed and no engine is asked. The real table is checked for what a new row could
get wrong: a target that does not exist, or a package compose/system-deps.sh installs that
doctor does not know.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "doctor.sh"
TABLE = ROOT / "tools" / "doctor.table"

SAMPLE = """\
# a comment, then a blank line

here-always   | test test-compose test-monitoring bench | echo here-always 1.0 | the machine | present for all
gone-test     | test                                    | false                | make freethreaded | missing, test only
gone-monitor  | test test-monitoring                    | false                | make system-deps-monitoring | monitor
gone-bench    | bench                                   | false                | make system-deps-bench | bench only
gone-docker   | docker                                  | false                | make system-deps | docker only
gone-podman   | podman                                  | false                | make system-deps | podman only
here-podman   | podman                                  | echo here-podman 2.0 | make system-deps | podman only
gone-optional | optional                                | false                | make system-deps-bench | never required
"""


def doctor(table: Path | None, *args: str, engine: str = "docker") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LAB_DOCTOR_TABLE", "LAB_COMPOSE_ENGINE")}
    env["LAB_COMPOSE_ENGINE"] = engine
    if table is not None:
        env["LAB_DOCTOR_TABLE"] = str(table)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "doctor.table"
    path.write_text(SAMPLE)
    return path


def statuses(stdout: str) -> dict[str, str]:
    """program -> status column, from the printed table."""
    rows = stdout.splitlines()[2:-1]
    return {row.split()[0]: row[19:45].strip() for row in rows}


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_the_table_mode_shows_every_row_and_always_exits_0(sample: Path, engine: str) -> None:
    result = doctor(sample, engine=engine)
    assert result.returncode == 0 and result.stderr == ""
    assert f"compose test engine: {engine}" in result.stdout.splitlines()[0]
    other = "podman" if engine == "docker" else "docker"
    expected = {"here-always": "ok", "gone-test": "MISSING", "gone-monitor": "MISSING", "gone-bench": "MISSING",
                f"gone-{engine}": "MISSING", f"gone-{other}": f"not needed ({engine} engine)",
                "here-podman": "ok",  # present is ok on either engine, only a missing one is excused
                "gone-optional": "missing (optional)"}
    assert statuses(result.stdout) == expected
    assert "here-always 1.0" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("lab doctor: 4 missing")


@pytest.mark.parametrize(("target", "engine", "named"), [
    ("test", "docker", ["gone-test", "gone-monitor", "gone-docker"]),
    ("test", "podman", ["gone-test", "gone-monitor", "gone-podman"]),
    ("test-compose", "podman", ["gone-podman"]),
    ("test-monitoring", "docker", ["gone-monitor"]),
    ("bench", "docker", ["gone-bench"]),
])
def test_require_names_each_missing_program_of_the_target_and_its_installer_in_one_line(
        sample: Path, target: str, engine: str, named: list[str]) -> None:
    result = doctor(sample, "--require", target, engine=engine)
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"doctor: make {target} needs what is missing here: ")
    assert re.findall(r"(gone-\w+) \(make [\w-]+\)", line) == named, line
    assert "Traceback" not in result.stderr


def test_require_passes_when_the_targets_programs_are_here(sample: Path) -> None:
    present = sample.parent / "present.table"
    present.write_text("".join(line for line in SAMPLE.splitlines(keepends=True) if "false" not in line))
    result = doctor(present, "--require", "test")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "doctor: every program make test needs is here (engine docker)\n"


@pytest.mark.parametrize(("row", "complaint"), [
    ("tool | test | true | make setup", "expected 'program | needed by | probe | installed by | what for'"),
    ("tool | test | true | make setup | why | extra", "expected 'program | needed by | probe"),
    ("tool | test |  | make setup | why", "expected 'program | needed by | probe"),
    ("tool | tests | true | make setup | why", "needed by 'tests'"),
    ("tool | docker test | true | make setup | why", "needed by 'docker test'"),
])
def test_a_malformed_row_is_one_line_naming_the_file_and_line(tmp_path: Path, row: str, complaint: str) -> None:
    table = tmp_path / "bad.table"
    table.write_text(f"# header\nfine | test | true | the machine | ok\n{row}\n")
    result = doctor(table, "--require", "test")
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"doctor: {table}:3: ") and complaint in line, line


@pytest.mark.parametrize("args", [["--require"], ["--require", "lint"], ["--strict"]])
def test_bad_arguments_are_one_line_with_the_usage(sample: Path, args: list[str]) -> None:
    result = doctor(sample, *args)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "usage:" in result.stderr


def test_the_engine_is_compose_engine_sh_choice(sample: Path) -> None:
    """A bad LAB_COMPOSE_ENGINE is refused by compose/engine.sh's own line, as system-deps.sh refuses it."""
    result = doctor(sample, engine="docker-ish")
    assert result.returncode == 2
    assert result.stderr == "LAB_COMPOSE_ENGINE: expected docker or podman, got 'docker-ish'\n"


def real_rows() -> list[list[str]]:
    return [[field.strip() for field in line.split("|")] for line in TABLE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_the_real_table_names_only_make_targets_that_exist() -> None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for program, _, _, installer, _ in real_rows():
        named = re.match(r"make ([\w-]+)", installer)
        assert named is None or named.group(1) in targets, f"{program}: {installer!r} is not a Makefile target"


def test_every_package_system_deps_installs_has_a_row_for_its_engine() -> None:
    """compose/system-deps.sh's lists, per engine, against the rows doctor checks for that engine."""
    script = (ROOT / "compose" / "system-deps.sh").read_text()
    lists = {engine: re.search(rf"^\s*{engine}\) PACKAGES=\(([^)]*)\)", script, re.M)
             for engine in ("docker", "podman")}
    needs = {program: needed for program, needed, *_ in real_rows()}
    for engine, found in lists.items():
        assert found is not None, f"no {engine} list in compose/system-deps.sh"
        for package in found.group(1).split():
            assert package in needs, f"{package} ({engine} path of system-deps.sh) has no row in tools/doctor.table"
            assert needs[package] in (engine, "test test-compose"), f"{package}: needed by {needs[package]!r}"


def test_the_real_table_parses() -> None:
    result = doctor(None, "--require", "bench")
    assert result.returncode in (0, 1) and len(result.stderr.splitlines()) <= 1, result.stderr
