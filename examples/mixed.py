"""Mixed: fetch a record from a slow service, then render it as JSON (a typical web task).

About 40 ms of waiting on a socket (the lab's latency server, LAB_LATENCY_SERVER) and about
10 ms of CPU that holds the GIL (building and serialising a document).

    lab advise examples.mixed:handle --args '[40, 1200]'
"""

from __future__ import annotations

import json

from examples.cpu_json import document
from examples.io_socket import fetch


def handle(ms: float = 40.0, users: int = 1200) -> int:
    """Wait `ms` for the service, then render `users` users as JSON; the size of the text."""
    fetch(ms)
    return len(json.dumps(document(users)))
