"""`tasks.advised`: a generic task that calls the user's own callable, for `lab advise` only.

`lab advise mymodule:resize_image` must measure code the lab has never seen on real workers. The
worker is started with `LAB_ADVISE_TARGET=mymodule:resize_image` (Settings.advise_target); only
then does `tasks.celery_app` register this task, which imports the target once, at worker start
(in the prefork parent, before its children fork: an import that fails stops the worker before it
is ready, not each task), and calls it with the message's JSON arguments. No worker of the lab's
stack serves it: the task is opt-in, and like every task it accepts JSON messages only.

The target's return value is dropped (the task returns None): it need not be JSON-serialisable,
and storing a large result would measure the result backend instead of the task.

The target is found from the current directory or PYTHONPATH, like `python -m`: the lab's
entry points may run from elsewhere, so the directory the user started `lab advise` in is put on
`sys.path` first. A Celery task object is a callable too (calling it runs it here, in-process).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, Final

from celery import Celery

from config.errors import UserError
from config.settings import check_target_spec

TASK_NAME: Final = "tasks.advised"

_target: Callable[..., Any] | None = None


class TargetError(UserError, ValueError):
    """The target cannot be used: not importable, no such name, or not callable (one line)."""


def load(spec: str) -> Callable[..., Any]:
    """The callable `module:name` names, imported from the current directory or PYTHONPATH."""
    module_name, _, attribute = check_target_spec(spec).partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # whatever the user's module raises on import, in one line
        raise TargetError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise TargetError(f"{module_name!r} has no attribute {attribute!r}")
        found = getattr(found, part)
    if not callable(found):
        raise TargetError(f"{spec} is not callable (it is a {type(found).__name__})")
    return found


def run(*args: Any, **kwargs: Any) -> None:
    """The task body: call the worker's target with the message's arguments."""
    if _target is None:
        raise TargetError("no advise target in this process (LAB_ADVISE_TARGET is unset)")
    _target(*args, **kwargs)


def register(app: Celery, spec: str) -> None:
    """Import the target (once per worker) and serve it as `tasks.advised`."""
    global _target
    _target = load(spec)
    app.task(name=TASK_NAME)(run)
