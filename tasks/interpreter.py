"""Which Python a worker runs on, and whether its GIL is on: in `inspect stats`, and a refusal.

A `threads-ft` worker exists to measure threads without the GIL. On a free-threaded build an
extension that does not declare support turns the GIL back on for the whole process (with a
RuntimeWarning that a worker log buries), and every number the worker then produced would be
labelled "no GIL" while measuring the GIL. So a worker that must run without it checks after
the app and its transport are imported, and again when its blueprint starts (after the pool is
made, before the consumer takes a message), and refuses with one line and exit 2.
"""

from __future__ import annotations

import os
import platform
import sys
import sysconfig
from typing import Any

from celery import Celery, bootsteps

from config.constants import EXIT_USAGE


def free_threaded_build() -> bool:
    return sysconfig.get_config_var("Py_GIL_DISABLED") == 1


def gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def label() -> str:
    """`3.11.7`, or `3.13.5t` for a free-threaded build (as CPython names its binaries)."""
    return platform.python_version() + ("t" if free_threaded_build() else "")


def describe() -> dict[str, Any]:
    return {"python": label(), "implementation": platform.python_implementation(),
            "free_threaded_build": free_threaded_build(), "gil_enabled": gil_enabled()}


def _why_gil_on() -> str:
    """Why a GIL is on: the build has one, the environment asked for it, or an extension turned it on."""
    if not free_threaded_build():
        return "is not a free-threaded build"
    if getattr(sys.flags, "gil", None) == 1:  # 3.13t: PYTHON_GIL=1 or -X gil=1, which a stray env can carry
        return "has its GIL on (PYTHON_GIL=1 or -X gil=1 asked for it)"
    return "has its GIL on (an extension that does not support free threading turned it back on)"


def refuse_if_gil_on(when: str) -> None:
    """Exit 2 with one line if this process must run without the GIL and it is on."""
    if gil_enabled():
        sys.stderr.write(f"lab: error: this worker must run without the GIL, but Python {label()} {_why_gil_on()} "
                         f"{when}; its numbers would be mislabelled\n")
        sys.stderr.flush()
        os._exit(EXIT_USAGE)


class InterpreterStep(bootsteps.StartStopStep):
    """Adds `interpreter` to `celery inspect stats`; re-checks the GIL when the worker starts."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.no_gil = bool(parent.app.conf.lab_settings.require_no_gil)

    def start(self, parent: Any) -> None:
        if self.no_gil:
            refuse_if_gil_on("once its pool started")

    def info(self, parent: Any) -> dict[str, Any]:
        return {"interpreter": describe()}


def install(app: Celery) -> None:
    app.steps["worker"].add(InterpreterStep)
    if app.conf.lab_settings.require_no_gil:
        refuse_if_gil_on("after importing the worker's modules")
