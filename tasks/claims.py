"""Tasks that make the article's claims about isolation observable (claim 6).

`bump` mutates module-level state: on the threads pool every task sees the same
list; on prefork each child process has its own copy. `crash_once` takes the
whole interpreter down with `os._exit` the first time it runs for a marker file
(so a redelivered copy finishes): on prefork that is one child, on threads the
whole worker.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_bumps: list[int] = []
_lock = threading.Lock()


def bump() -> dict[str, int]:
    """Append to a module-level list; return this process's pid and the list's length."""
    with _lock:
        _bumps.append(1)
        return {"pid": os.getpid(), "seen": len(_bumps)}


def crash_once(marker: str) -> str:
    """Exit the interpreter without cleanup the first time; succeed when run again."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os._exit(13)
    return "ran again after the crash"
