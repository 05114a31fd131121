"""The layer scan finds a file by content in a saved image, even when a later layer deleted it."""

from __future__ import annotations

import hashlib
import io
import tarfile

from tests.compose.image_scan import files_with_content

SECRET = b"-----BEGIN CERTIFICATE-----\nnot really a certificate\n-----END CERTIFICATE-----\n"


def tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def diff_id(layer: bytes) -> str:
    return "sha256:" + hashlib.sha256(layer).hexdigest()


def saved_image(layers: list[bytes]) -> io.BytesIO:
    """An archive shaped like `docker save` (20.10): <id>/layer.tar per layer, plus JSON."""
    members = {f"{index:064x}/layer.tar": layer for index, layer in enumerate(layers)}
    members["manifest.json"] = b'[{"Layers": []}]'
    return io.BytesIO(tar_of(members))


def scan(layers: list[bytes], skip: tuple[str, ...] = ()) -> list[str]:
    return files_with_content(saved_image(layers), hashlib.sha256(SECRET).hexdigest(), len(SECRET), skip)


def test_a_copied_then_deleted_file_is_found_in_its_layer() -> None:
    copied = tar_of({"tmp/ca.crt": SECRET, "etc/other": b"x" * len(SECRET)})
    deleted = tar_of({"tmp/.wh.ca.crt": b""})
    assert scan([copied, deleted]) == [f"{0:064x}/layer.tar:tmp/ca.crt"]


def test_same_size_other_content_and_skipped_layers_are_not_found() -> None:
    other = tar_of({"etc/ssl/certs/ca-certificates.crt": SECRET[::-1]})
    base = tar_of({"etc/ssl/certs/ca-certificates.crt": SECRET})
    assert scan([base, other], skip=(diff_id(base),)) == []
    assert scan([base, other]) != []
