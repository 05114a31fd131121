#!/usr/bin/env bash
# Install what the compose test needs on this machine's engine, only what is missing (idempotent).
# The engine is compose/engine.sh's choice: Docker where `docker info` answers (or
# LAB_COMPOSE_ENGINE=docker), else podman.
# - docker: debootstrap (the local base image) and Compose v2 (project-local, tools/compose-v2.sh);
#   the engine itself is the machine's (Debian docker.io).
# - podman: podman runs docker-compose.yml without a Docker engine; runc replaces crun (which
#   fails in this sandbox); netavark + aardvark-dns let containers reach each other by service
#   name, and netavark needs iptables for NAT and published ports; catatonit backs `init: true`;
#   uidmap, slirp4netns and fuse-overlayfs are podman's storage and rootless helpers;
#   debootstrap makes the local base image.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/engine.sh"
case "$LAB_ENGINE" in
    docker) PACKAGES=(debootstrap) ;;
    podman) PACKAGES=(podman runc netavark aardvark-dns iptables catatonit uidmap slirp4netns fuse-overlayfs
                      debootstrap) ;;
esac

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "system-deps ($LAB_ENGINE): installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "system-deps: need root (or sudo) to install ${missing[*]}" >&2; exit 2; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "$LAB_ENGINE" = docker ]; then
    bash "$here/../tools/compose-v2.sh" >/dev/null
fi
