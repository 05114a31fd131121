#!/usr/bin/env bash
# `make doctor`: which external programs the lab calls are here, their versions, and which make
# target installs a missing one. Reads tools/doctor.table (add a row for a new program there).
#
#   tools/doctor.sh                     the whole table; informational, exits 0
#   tools/doctor.sh --require TARGET    exit 1 with one line naming each program make TARGET needs
#                                       that is missing, and the make target that installs it
# TARGET: test, test-compose, test-monitoring or bench. `make test` runs `--require test` after its
# install targets, so a program they did not bring fails there, in one line, and not as a test's
# obscure error twenty minutes later. Rows marked docker or podman count only on the compose
# test's engine, chosen by compose/engine.sh (the choice compose/system-deps.sh installs for).
# LAB_DOCTOR_TABLE reads another table (tests/tools/test_doctor.py). A few seconds: the probes run
# in parallel, 8 s at most each.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
table="${LAB_DOCTOR_TABLE:-tools/doctor.table}"
TARGETS=" test test-compose test-monitoring bench "
[ -r "$table" ] || { echo "doctor: cannot read $table" >&2; exit 2; }

usage() { echo "doctor: $1 (usage: tools/doctor.sh [--require test|test-compose|test-monitoring|bench])" >&2; exit 2; }

require=""
case "$#:${1:-}" in
    0:) ;;
    2:--require) require="$2"; [[ "$TARGETS" == *" $require "* ]] || usage "unknown target '$require'" ;;
    *) usage "unexpected arguments: $*" ;;
esac

# The compose test's engine, by the rule compose/system-deps.sh and the test use.
. compose/engine.sh || exit 2
engine="$LAB_ENGINE"

valid_needs() {  # targets from TARGETS, or exactly one of docker / podman / optional
    local need
    case "$1" in docker|podman|optional) return 0 ;; "") return 1 ;; esac
    for need in $1; do [[ "$TARGETS" == *" $need "* ]] || return 1; done
}

required() {  # needed target -> does make TARGET need this row here?
    case "$1" in
        docker|podman) [[ "$1" == "$engine" && ("$2" == test || "$2" == test-compose) ]] ;;
        optional) return 1 ;;
        *) [[ " $1 " == *" $2 "* ]] ;;
    esac
}

trim() { local s="$1"; s="${s#"${s%%[![:space:]]*}"}"; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
rows=()
probes=()
line_number=0
while IFS= read -r line || [ -n "$line" ]; do
    line_number=$((line_number + 1))
    [[ -z "${line// }" || "$(trim "$line")" == \#* ]] && continue
    bars="${line//[^|]/}"
    IFS='|' read -r program needed probe installer purpose <<<"$line"
    program="$(trim "$program")" needed="$(trim "$needed")" probe="$(trim "$probe")"
    installer="$(trim "$installer")" purpose="$(trim "$purpose")"
    if [ "${#bars}" -ne 4 ] || [ -z "$program" ] || [ -z "$probe" ] || [ -z "$installer" ]; then
        echo "doctor: $table:$line_number: expected 'program | needed by | probe | installed by | what for'" >&2
        exit 2
    fi
    valid_needs "$needed" || {
        echo "doctor: $table:$line_number: needed by '$needed': expected targets among$TARGETS or docker, podman, optional" >&2
        exit 2; }
    rows+=("$program|$needed|$installer|$purpose")
    probes+=("$probe")
done <"$table"
for index in "${!probes[@]}"; do  # only once the whole table is read: a bad row probes nothing
    ( timeout 8 bash -c "${probes[$index]}" >"$out/$index" 2>&1; echo $? >"$out/$index.rc" ) &
done
wait

status_of() {  # rc needed -> ok / MISSING / missing (optional) / not needed
    if [ "$1" = 0 ]; then echo ok
    elif [[ ("$2" == docker || "$2" == podman) && "$2" != "$engine" ]]; then echo "not needed ($engine engine)"
    elif [ "$2" = optional ]; then echo "missing (optional)"
    else echo MISSING
    fi
}

if [ -n "$require" ]; then
    missing=()
    for index in "${!rows[@]}"; do
        IFS='|' read -r program needed installer purpose <<<"${rows[$index]}"
        required "$needed" "$require" && [ "$(cat "$out/$index.rc")" != 0 ] && missing+=("$program ($installer)")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        joined="$(printf '%s, ' "${missing[@]}")"
        echo "doctor: make $require needs what is missing here: ${joined%, } (engine $engine; make doctor lists all)" >&2
        exit 1
    fi
    echo "doctor: every program make $require needs is here (engine $engine)"
    exit 0
fi

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
echo "lab doctor: $missing missing (tools/doctor.sh --require TARGET: what one make target needs)"
exit 0
