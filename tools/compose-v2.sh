#!/usr/bin/env bash
# Compose v2 as a project-local docker CLI plugin: .tools/docker/cli-plugins/docker-compose.
#
# Why: these machines have a Docker Engine (20.10) but only Compose v1 (`docker-compose`
# 1.29.2); `docker compose` (v2) is what users run. Debian trixie's package `docker-compose`
# (2.26.1) is Compose v2 as one static binary (Depends: libc6 only). It is fetched with apt
# through a PRIVATE config (the machine's apt sources are never changed; the mirror is the
# machine's own, tools/debian-mirror.sh) and unpacked with `dpkg -x`, nothing installed.
# Use it with DOCKER_CONFIG=.tools/docker, or run the binary on its own (standalone mode, no
# docker CLI needed: the fast tests validate docker-compose.yml with it). No buildx plugin is
# needed: Compose v2 builds through the engine's own BuildKit (docs/compose.md).
# Idempotent; a no-op (< 1 s) once the plugin answers.
#   bash tools/compose-v2.sh            # install if missing, print `docker compose version`
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
config_dir="${LAB_DOCKER_CONFIG:-$root/.tools/docker}"
plugin="$config_dir/cli-plugins/docker-compose"
SUITE="${COMPOSE_V2_SUITE:-trixie}"
work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT

compose_version() {  # through the docker CLI where there is one, else the binary on its own (standalone)
    if command -v docker >/dev/null; then
        DOCKER_CONFIG="$config_dir" docker compose version
    else
        "$plugin" version
    fi
}

compose_v2_answers() {
    [ -x "$plugin" ] && compose_version 2>/dev/null | grep -q 'version v\?2\.'
}

fetch_plugin() {  # apt download through a private config, then dpkg -x; nothing is installed
    local mirror apt_opts
    mirror="$(bash "$root/tools/debian-mirror.sh")"
    work="$(mktemp -d)"
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $SUITE main" >"$work/sources.list"
    apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/nonexistent
              -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
    apt-get "${apt_opts[@]}" update -qq
    (cd "$work" && apt-get "${apt_opts[@]}" download -qq "docker-compose/$SUITE")
    dpkg -x "$work"/docker-compose_*.deb "$work/x"
    mkdir -p "$config_dir/cli-plugins"
    install -m 0755 "$work/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugin.new"
    mv -f "$plugin.new" "$plugin"   # atomic: an interrupted run never leaves half a binary
}

if ! compose_v2_answers; then
    echo "compose-v2: fetching docker-compose from Debian $SUITE into ${plugin#"$root"/}"
    fetch_plugin
    compose_v2_answers || { echo "compose-v2: $plugin does not answer 'docker compose version'" >&2; exit 1; }
fi
compose_version
