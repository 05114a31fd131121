"""CPU-bound, holding the GIL: a JSON round-trip of a nested document (an API's serialisation).

`json`'s C accelerator builds Python objects, so it holds the GIL the whole time: threads cannot
run two of these at once, processes can.

    lab advise examples.cpu_json:roundtrip --args '[2000]'
"""

from __future__ import annotations

import json
from typing import Any


def document(users: int) -> dict[str, Any]:
    """A nested document: users with tags, scores and an address each."""
    return {"users": [{"id": i, "name": f"user{i}", "tags": ["admin", "beta", f"t{i % 7}"],
                       "scores": [i * 0.5, i * 1.5, i / 3], "address": {"city": "Lyon", "zip": str(69000 + i % 10)}}
                      for i in range(users)]}


def roundtrip(users: int = 2000) -> int:
    """Build the document, serialise it and parse it back; the size of the JSON text."""
    text = json.dumps(document(users))
    assert json.loads(text)["users"][-1]["id"] == users - 1
    return len(text)
