"""results.json's interpreters: one row per interpreter and GIL state, with what used it."""

from __future__ import annotations

from typing import Any

from experiments.environment import harness_interpreter, interpreters_used
from experiments.schema import CellResult, Interpreter
from tasks import interpreter


def reported(pool: str, python: str | None, gil: bool | None) -> CellResult:
    cell: dict[str, Any] = {"pool": pool, "python": python, "gil_enabled": gil}
    return cell  # type: ignore[return-value]  # only the keys interpreters_used reads


def test_each_interpreter_once_with_its_gil_as_the_workers_reported_it() -> None:
    harness: Interpreter = {"python": "3.11.2", "free_threaded_build": False, "gil_enabled": True,
                            "used_by": ["harness"]}
    cells = [reported("threads", "3.11.2", True), reported("prefork", "3.11.2", True),
             reported("threads-ft", "3.13.5t", False), reported("threads-ft", "3.13.5t", False),
             reported("prefork-ft", "3.13.5t", False), reported("gevent", None, None),
             reported("threads-ft", "3.13.5t", True)]  # fmt: skip
    assert interpreters_used([harness], cells) == [
        {"python": "3.11.2", "free_threaded_build": False, "gil_enabled": True,
         "used_by": ["harness", "threads", "prefork"]},
        {"python": "3.13.5t", "free_threaded_build": True, "gil_enabled": False,
         "used_by": ["threads-ft", "prefork-ft"]},
        {"python": "3.13.5t", "free_threaded_build": True, "gil_enabled": True, "used_by": ["threads-ft"]},
    ]  # fmt: skip
    assert harness["used_by"] == ["harness"], "the environment's own entry is not changed"


def test_the_harness_describes_itself() -> None:
    assert harness_interpreter() == {"python": interpreter.label(), "free_threaded_build": False,
                                     "gil_enabled": True, "used_by": ["harness"]}
