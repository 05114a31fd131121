#!/usr/bin/env bash
# Build every image the compose test runs, before the test suite starts: the debootstrap base,
# the lab, Redis and the free-threaded worker (which compiles CPython: ~5 min cold on 2 cores).
# The test's own `up --build` then finds them in the engine's cache, so the suite's time is the
# tests' and not a compiler's. Docker only (the podman fallback builds in the test itself).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
. "$here/engine.sh"
if [ "$LAB_ENGINE" != docker ]; then
    echo "compose images: $LAB_ENGINE builds them in the compose test"
    exit 0
fi
bash "$here/base-image.sh"
export DOCKER_CONFIG="${DOCKER_CONFIG:-$PWD/.tools/docker}"
started=$(date +%s)
# .env.example's values only fill the file's required variables; nothing runs.
docker compose --env-file .env.example -f docker-compose.yml -f compose/local-images.yml \
    --profile producer --profile freethreaded build --quiet
echo "compose images: built in $(( $(date +%s) - started )) s"
