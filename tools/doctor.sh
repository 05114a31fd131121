#!/usr/bin/env bash
# `make doctor`: which external programs the lab calls are here, their versions, and which make
# target installs a missing one. Reads tools/doctor.table (add a row for a new program there).
# Informational: always exits 0, in a few seconds (the probes run in parallel, 8 s at most each).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
table="tools/doctor.table"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

trim() { local s="$1"; s="${s#"${s%%[![:space:]]*}"}"; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

rows=()
while IFS='|' read -r program needed probe installer purpose; do
    [[ -z "${program// }" || "$program" == \#* ]] && continue
    rows+=("$(trim "$program")|$(trim "$needed")|$(trim "$installer")|$(trim "$purpose")")
    index=$(( ${#rows[@]} - 1 ))
    ( timeout 8 bash -c "$(trim "$probe")" >"$out/$index" 2>&1; echo $? >"$out/$index.rc" ) &
done <"$table"
wait

# The compose test's engine, by compose/engine.sh's rule: forced, else docker where it answers.
engine="${LAB_COMPOSE_ENGINE:-}"
if [ -z "$engine" ]; then
    engine=podman
    [ "$(cat "$out/0.rc")" = 0 ] && [[ "${rows[0]}" == "docker engine|"* ]] && engine=docker
fi

status_of() {  # rc needed -> ok / MISSING / not needed
    if [ "$1" = 0 ]; then echo ok
    elif [[ ("$2" == docker || "$2" == podman) && "$2" != "$engine" ]]; then echo "not needed ($engine engine)"
    else echo MISSING
    fi
}

echo "lab doctor: $(date -u +%Y-%m-%dT%H:%M:%SZ); compose test engine: $engine"
printf '%-18s %-26s %-58s %s\n' program status version "installed by / what for"
missing=0
for index in "${!rows[@]}"; do
    IFS='|' read -r program needed installer purpose <<<"${rows[$index]}"
    status="$(status_of "$(cat "$out/$index.rc")" "$needed")"
    version=""
    [ "$status" = ok ] && version="$(head -1 "$out/$index" | cut -c1-58)"
    [ "$status" = MISSING ] && missing=$((missing + 1))
    printf '%-18s %-26s %-58s %s\n' "$program" "$status" "$version" "$installer: $purpose"
done
echo "lab doctor: $missing missing (a missing monitoring/bench program only matters for those targets)"
exit 0
