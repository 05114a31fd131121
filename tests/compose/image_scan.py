"""Look inside an image's layers for a file: proof that the host's CA bundle is in none of them.

A file deleted in a later layer is still in the image (its layer still ships it), so checking
the running container's filesystem is not enough: `docker save` / `podman save` stream every
layer, and each layer is read here as the tar it is. Layers are named by their diff ID (the
sha256 of the uncompressed layer tar, as `image inspect` lists under RootFS.Layers), so the
base image's layers can be left out: on a machine without a TLS proxy the host bundle may be
byte-identical to the one Debian's ca-certificates put in the base, and that is not a leak.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterable
from typing import IO, Protocol, cast

CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class HashingReader:
    """A read-only stream that hashes what passes through it (a layer's diff ID)."""

    def __init__(self, raw: Readable) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> str:
        while self.read(CHUNK):
            pass
        return "sha256:" + self.digest.hexdigest()


def file_digest(stream: Readable) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def matches_in_layer(layer: Readable, sha256: str, size: int) -> list[str]:
    """Paths of regular files in one layer tar whose content has this sha256 (size first: cheap).

    A member that is not a tar (the image's JSON) has no files: an empty list.
    """
    found = []
    try:
        with tarfile.open(fileobj=cast(IO[bytes], layer), mode="r|") as tar:
            for member in tar:
                if member.isfile() and member.size == size:
                    content = tar.extractfile(member)
                    if content is not None and file_digest(content) == sha256:
                        found.append(member.name)
    except tarfile.ReadError:
        return []
    return found


def files_with_content(archive: IO[bytes], sha256: str, size: int, skip_layers: Iterable[str] = ()) -> list[str]:
    """`layer:path` of every file with this content in a saved image, but in the skipped layers.

    Works on `docker save` (20.10: <id>/layer.tar; 25+: OCI blobs) and `podman save`
    (<diff id>.tar): every member that is itself a tar is a layer, the rest is metadata.
    """
    skip = set(skip_layers)
    found: list[str] = []
    with tarfile.open(fileobj=archive, mode="r|") as outer:
        for member in outer:
            stream = outer.extractfile(member) if member.isfile() else None
            if stream is None:
                continue
            reader = HashingReader(stream)
            matches = matches_in_layer(reader, sha256, size)
            if reader.drain() not in skip:
                found += [f"{member.name}:{path}" for path in matches]
    return found
