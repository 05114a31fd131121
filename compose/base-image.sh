#!/usr/bin/env bash
# Build the local base image (Debian bookworm + python3) when the engine lacks it.
# No registry is reachable on CI machines, so `python:3.11-slim` cannot be pulled:
# debootstrap makes a root filesystem from Debian's packages and `docker import` (or
# `podman import`) turns it into an image. The engine's storage keeps it, so later runs skip
# this step (~50-90 s on 2 cores). The engine is chosen by compose/engine.sh (docker if
# `docker info` answers, else podman; LAB_COMPOSE_ENGINE forces one).
#   bash compose/base-image.sh [IMAGE]     # default localhost/debian:bookworm-py
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # debootstrap lives in sbin
here="$(cd "$(dirname "$0")" && pwd)"
IMAGE="${1:-localhost/debian:bookworm-py}"
. "$here/engine.sh"
[ "$LAB_ENGINE" = podman ] && . "$here/podman-env.sh"

image_exists() {
    "$LAB_ENGINE" image inspect "$IMAGE" >/dev/null 2>&1
}

if image_exists; then
    echo "base image $IMAGE ($LAB_ENGINE): cached"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "base-image: debootstrap missing (make system-deps)" >&2; exit 2; }
MIRROR="$(bash "$here/../tools/debian-mirror.sh")"  # the machine's own apt mirror; DEBIAN_MIRROR overrides
rootfs="$(mktemp -d /var/tmp/lab-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
echo "base image $IMAGE ($LAB_ENGINE): debootstrap into $rootfs"
nice debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | "$LAB_ENGINE" import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "base image $IMAGE ($LAB_ENGINE): built"
