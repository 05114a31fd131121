# Source me: `. compose/podman-env.sh`, then use podman / podman-compose as usual.
# Points podman at compose/containers.conf (ulimits the sandbox accepts, runtime runc).
CONTAINERS_CONF="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)/containers.conf"
export CONTAINERS_CONF
