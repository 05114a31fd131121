"""CPU-bound in C code that releases the GIL: checksums of a 16 MiB file held in memory.

`hashlib` releases the GIL while it hashes a buffer larger than 2 KiB, so threads hash on every
core at once. Counting CPU time alone says "CPU-bound: prefork"; threads do as well, at a
fraction of prefork's memory. The buffer is read once, at import, as a file would be.

    lab advise examples.hashing:checksums
"""

from __future__ import annotations

import hashlib
import os

BUFFER = os.urandom(16 * 2**20)


def checksums() -> dict[str, str]:
    """The sha256, sha1 and md5 of the buffer, as a download mirror publishes them."""
    return {name: hashlib.new(name, BUFFER).hexdigest() for name in ("sha256", "sha1", "md5")}
