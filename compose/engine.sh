# Source me: `. compose/engine.sh`; sets LAB_ENGINE to `docker` or `podman` (and exports it).
# A Docker Engine that answers (`docker info`) is the real thing users run, so it wins;
# podman is the fallback for machines without one (docs/compose.md says what it cannot do).
# LAB_COMPOSE_ENGINE=docker|podman forces the choice; the compose test uses the same rule
# (stack/compose/engine.py).
lab_engine_choose() {
    case "${LAB_COMPOSE_ENGINE:-}" in
        docker|podman) echo "$LAB_COMPOSE_ENGINE"; return 0 ;;
        "") ;;
        *) echo "LAB_COMPOSE_ENGINE: expected docker or podman, got '$LAB_COMPOSE_ENGINE'" >&2; return 2 ;;
    esac
    if command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; then
        echo docker
    else
        echo podman
    fi
}
LAB_ENGINE="$(lab_engine_choose)" || return 2 2>/dev/null || exit 2
export LAB_ENGINE
