#!/usr/bin/env bash
# Install the Debian packages the compose test needs, only those missing (idempotent).
# podman runs docker-compose.yml without a Docker engine; runc replaces crun (which fails in
# this sandbox); debootstrap makes the local base image; netavark + aardvark-dns let
# containers reach each other by service name; catatonit backs `init: true`.
set -euo pipefail
PACKAGES=(podman runc debootstrap netavark aardvark-dns catatonit uidmap slirp4netns fuse-overlayfs)

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "system-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "system-deps: need root (or sudo) to install ${missing[*]}" >&2; exit 2; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
