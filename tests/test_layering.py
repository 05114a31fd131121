"""Imports run one way: config -> tasks -> producer, stack -> experiments -> report -> cli.

A module may import its own package and any package below it, never one above it or beside it
(producer and stack are siblings). Checked on the source, so a lazy import inside a function
counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"config": 0, "tasks": 1, "producer": 2, "stack": 2, "experiments": 3, "report": 4, "cli": 5}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(LAYERS)


def modules() -> list[Path]:
    return sorted(path for package in LAYERS for path in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_its_own_package_and_those_below(path: Path) -> None:
    own = path.relative_to(ROOT).parts[0]
    wrong = {name for name in imported_packages(path)
             if name != own and LAYERS[name] >= LAYERS[own]}
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}, above or beside {own!r}"


@pytest.mark.parametrize("path", sorted([*modules(), *(ROOT / "benchmarks").rglob("*.py")]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_outside_the_tests_imports_them(path: Path) -> None:
    """The compose harness once lived in tests/ and the benchmark that drives it imported it from there."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] == "tests"}
