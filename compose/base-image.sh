#!/usr/bin/env bash
# Build the local base image (Debian bookworm + python3) when it is missing.
# No registry is reachable on CI machines, so `python:3.11-slim` cannot be pulled:
# debootstrap makes a root filesystem from Debian's packages and `podman import` turns it
# into an image. Podman's storage keeps it, so later runs skip this step.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # debootstrap lives in sbin
IMAGE="${1:-localhost/debian:bookworm-py}"
MIRROR="$(bash "$(dirname "$0")/../tools/debian-mirror.sh")"  # the machine's own apt mirror; DEBIAN_MIRROR overrides
. "$(dirname "$0")/podman-env.sh"

if podman image exists "$IMAGE"; then
    echo "base image $IMAGE: cached"
    exit 0
fi
rootfs="$(mktemp -d /var/tmp/lab-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
echo "base image $IMAGE: debootstrap into $rootfs"
nice debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "base image $IMAGE: built"
