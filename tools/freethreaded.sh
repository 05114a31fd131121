#!/usr/bin/env bash
# A free-threaded CPython (no GIL), built by the project from Debian's copy of the upstream source,
# and a venv on it with only what a threads worker of the lab imports (docs/freethreaded.md).
#
#   tools/freethreaded.sh [all] [--venv DIR] [--no-editable]   interpreter, then the worker venv DIR
#   tools/freethreaded.sh interpreter                          the interpreter only (the image's build stage)
#   tools/freethreaded.sh venv DIR [--no-editable]             the worker venv on a built interpreter
#   tools/freethreaded.sh status [--venv DIR]                  paths and build record; exit 1 if incomplete
#   tools/freethreaded.sh check [--venv DIR]                   stdlib modules load, the GIL stays off
#   tools/freethreaded.sh runtime-deps                         the shared libraries the build links to
#
# Why build it: no Debian package ships a free-threaded interpreter, and python-build-standalone or
# a container registry is not reachable from the lab's machines; Debian's source packages are. The
# upstream tarball (`*.orig.tar.xz`) is taken from the `python$FT_PYTHON` source package of a
# newer suite through a PRIVATE apt config (the machine's own sources are never touched); apt checks
# it against the signed index, and this script checks its SHA-256 again against what apt announced.
#
# Settings (environment):
#   FT_PYTHON        minor version, default 3.13 (the Makefile passes its FT_PYTHON)
#   FT_DEBIAN_SUITE  suite whose source package is used; default trixie for 3.13, forky otherwise
#   LAB_CACHE_DIR    cache outside the clone, default ~/.cache/celery-concurrency-lab; the
#                    interpreter goes to $LAB_CACHE_DIR/cpython-${FT_PYTHON}t
#   DEBIAN_MIRROR    Debian archive URI (default: the machine's own, tools/debian-mirror.sh)
# The build is skipped when the cache holds a complete install of the same upstream version, source
# SHA-256 and configure flags (its record: cpython-${FT_PYTHON}t/lab-build.json).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FT_PYTHON="${FT_PYTHON:-3.13}"
CACHE="${LAB_CACHE_DIR:-$HOME/.cache/celery-concurrency-lab}"
PREFIX="$CACHE/cpython-${FT_PYTHON}t"
PYTHON_BIN="$PREFIX/bin/python${FT_PYTHON}t"
RECORD="$PREFIX/lab-build.json"
CONFIGURE_FLAGS=(--disable-gil "--prefix=$PREFIX" --without-ensurepip)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# What the build needs from the machine's own Debian (bookworm): compiler, apt-get source, and the
# headers of the stdlib's C modules (ssl, zlib, ctypes, bz2, lzma, sqlite3, uuid, readline, curses).
BUILD_DEPS=(gcc make pkg-config xz-utils dpkg-dev ca-certificates libssl-dev zlib1g-dev libffi-dev
            libbz2-dev liblzma-dev libsqlite3-dev uuid-dev libreadline-dev libncurses-dev)
# What the built interpreter links to, for a machine or an image that runs it without building it.
RUNTIME_DEPS=(libssl3 zlib1g libffi8 libbz2-1.0 liblzma5 libsqlite3-0 libuuid1 libreadline8 libncursesw6)
# Stdlib C modules that must have been built: the worker needs ssl/hashlib/ctypes/zlib, the rest
# are what BUILD_DEPS are for. A missing header would otherwise only show as a configure line.
REQUIRED_MODULES="_ssl _hashlib _ctypes zlib _bz2 _lzma _sqlite3 _uuid readline _curses"
# PyYAML has no cp313t wheel (6.0.4: cp314t only), so pip builds it; its libyaml extension would be
# built only where libyaml-dev happens to be installed. PYYAML_FORCE_LIBYAML=0 makes it pure Python
# everywhere (the worker parses no YAML), so every machine and the image get the same venv.
PIP_ENV=(PIP_DISABLE_PIP_VERSION_CHECK=1 PYYAML_FORCE_LIBYAML=0)

say() { printf '[freethreaded] %s\n' "$*"; }
die() { printf 'freethreaded: error: %s\n' "$*" >&2; exit 1; }
usage() {
    printf 'freethreaded: error: %s (usage: %s [all|interpreter|venv DIR|status|check|runtime-deps] [--venv DIR] [--no-editable]; --help)\n' \
        "$*" "$0" >&2
    exit 2
}

# Run "$@" as a named step; print how long it took.
step() {
    local name="$1" started=$SECONDS
    shift
    say "$name ..."
    "$@"
    say "$name: done in $(( SECONDS - started )) s"
}

suite_for_version() {
    if [ -n "${FT_DEBIAN_SUITE:-}" ]; then echo "$FT_DEBIAN_SUITE"
    elif [ "$FT_PYTHON" = "3.13" ]; then echo trixie      # Debian 13: python3.13 3.13.5, files served
    else echo forky; fi                                   # python3.14 is listed there (404 here so far)
}

# ---- system packages ------------------------------------------------------------------------

missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || printf '%s ' "$pkg"
    done
}

# Install the Debian packages among "$@" that are missing (from the machine's own apt sources).
install_missing() {
    local missing
    missing="$(missing_packages "$@")"
    if [ -z "$missing" ]; then
        say "Debian packages: all present"
        return
    fi
    [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing}(run as root, or: apt-get install ${missing% })"
    say "installing Debian packages: $missing"
    # shellcheck disable=SC2086  # a list of package names
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# ---- the source, through a private apt config --------------------------------------------------

apt_private() {  # apt-get with its own sources, lists and cache under $CACHE/apt-<suite>
    local dir="$CACHE/apt-$SUITE"
    # APT::Sandbox::User=root: the cache is under $HOME, which apt's _apt user cannot enter.
    "$@" -o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=/nonexistent \
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o APT::Sandbox::User=root
}

update_private_index() {
    local dir="$CACHE/apt-$SUITE" mirror
    mirror="$(bash "$ROOT/tools/debian-mirror.sh")"
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    echo "deb-src [signed-by=$KEYRING] $mirror $SUITE main" > "$dir/sources.list"
    apt_private apt-get -qq update
}

# Sets SRC_DSC, TARBALL and TARBALL_SHA256 from what apt would fetch (hashes from the signed index).
# Asked from an empty directory: apt leaves out the files it finds already downloaded.
resolve_source() {
    local uris empty
    empty="$(mktemp -d)"
    uris="$(cd "$empty" && apt_private apt-get -qq source --print-uris "python$FT_PYTHON" 2>/dev/null)" \
        || { rmdir "$empty"; die "no source package python$FT_PYTHON in Debian $SUITE (FT_DEBIAN_SUITE to pick another suite)"; }
    rmdir "$empty"
    SRC_DSC="$(awk '$2 ~ /\.dsc$/ { print $2 }' <<<"$uris")"
    TARBALL="$(awk '$2 ~ /\.orig\.tar\.xz$/ { print $2 }' <<<"$uris")"
    TARBALL_SHA256="$(awk '$2 ~ /\.orig\.tar\.xz$/ { sub(/^SHA256:/, "", $4); print $4 }' <<<"$uris")"
    [ -n "$TARBALL" ] && [[ "$TARBALL_SHA256" =~ ^[0-9a-f]{64}$ ]] \
        || die "python$FT_PYTHON in $SUITE has no upstream .orig.tar.xz with a SHA-256"
    UPSTREAM_VERSION="${TARBALL#python"${FT_PYTHON}"_}"
    UPSTREAM_VERSION="${UPSTREAM_VERSION%.orig.tar.xz}"
}

download_source() {
    (cd "$CACHE/src" && apt_private apt-get -qq source --download-only "python$FT_PYTHON" >/dev/null 2>"$CACHE/src/apt.log") \
        || { cat "$CACHE/src/apt.log" >&2; die "apt-get source python$FT_PYTHON failed (files missing from the $SUITE mirror?)"; }
}

verify_source() {
    local actual
    actual="$(sha256sum "$CACHE/src/$TARBALL" | cut -d' ' -f1)"
    [ "$actual" = "$TARBALL_SHA256" ] || die "$TARBALL: SHA-256 $actual, the signed index says $TARBALL_SHA256"
    grep -q " $TARBALL_SHA256 [0-9]* $TARBALL\$" "$CACHE/src/$SRC_DSC" \
        || die "$TARBALL: SHA-256 not listed in $SRC_DSC"
    say "source: $TARBALL ($SRC_DSC, Debian $SUITE), sha256 $TARBALL_SHA256"
}

fetch_source() {
    mkdir -p "$CACHE/src"
    update_private_index
    resolve_source
    download_source
    verify_source
}

# ---- the interpreter ----------------------------------------------------------------------------

# The record of a finished build; written last, so an interrupted build leaves no record.
build_key() { printf '%s|%s|%s' "$UPSTREAM_VERSION" "$TARBALL_SHA256" "${CONFIGURE_FLAGS[*]}"; }

installed_key() {
    [ -x "$PYTHON_BIN" ] && [ -f "$RECORD" ] || return 0
    "$PYTHON_BIN" -c 'import json, sys; r = json.load(open(sys.argv[1]))
print("%s|%s|%s" % (r["upstream_version"], r["source_sha256"], r["configure"]))' "$RECORD" 2>/dev/null || true
}

configure_and_make() {
    local src="$1" log="$2"
    (cd "$src" && nice ./configure "${CONFIGURE_FLAGS[@]}" >"$log" 2>&1) || { tail -30 "$log" >&2; die "configure failed (log: $log)"; }
}

compile() {
    local src="$1" log="$2"
    (cd "$src" && nice make -j2 >>"$log" 2>&1) || { tail -30 "$log" >&2; die "make failed (log: $log)"; }
}

install_prefix() {
    local src="$1" log="$2"
    rm -rf "$PREFIX"
    (cd "$src" && nice make install >>"$log" 2>&1) || { tail -30 "$log" >&2; die "make install failed (log: $log)"; }
}

check_interpreter() {
    "$PYTHON_BIN" - "$REQUIRED_MODULES" <<'EOF' || die "the built interpreter fails its checks"
import importlib, sys, sysconfig
if sysconfig.get_config_var("Py_GIL_DISABLED") != 1:
    sys.exit("not a free-threaded build: Py_GIL_DISABLED is %r" % sysconfig.get_config_var("Py_GIL_DISABLED"))
missing = []
for name in sys.argv[1].split():
    try:
        importlib.import_module(name)
    except ImportError as exc:
        missing.append("%s (%s)" % (name, exc))
if missing:
    sys.exit("stdlib modules not built: " + ", ".join(missing))
if sys._is_gil_enabled():
    sys.exit("the GIL is on in a bare interpreter (PYTHON_GIL set?)")
EOF
}

write_record() {
    local build_seconds="$1"
    "$PYTHON_BIN" - "$RECORD" <<EOF
import json, platform, sys, time
record = {
    "python": "$FT_PYTHON",
    "upstream_version": "$UPSTREAM_VERSION",
    "implementation": platform.python_version(),
    "debian_source": "$SRC_DSC",
    "debian_suite": "$SUITE",
    "source_tarball": "$TARBALL",
    "source_sha256": "$TARBALL_SHA256",
    "configure": "${CONFIGURE_FLAGS[*]}",
    "interpreter": "$PYTHON_BIN",
    "build_seconds": $build_seconds,
    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
with open(sys.argv[1], "w") as out:
    json.dump(record, out, indent=2)
    out.write("\n")
EOF
}

build_interpreter() {
    local work="$CACHE/build-${FT_PYTHON}t" log="$CACHE/cpython-${FT_PYTHON}t.build.log" started=$SECONDS src
    rm -rf "$work"
    mkdir -p "$work"
    step "unpack $TARBALL" tar -xJf "$CACHE/src/$TARBALL" -C "$work"
    src="$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -1)"
    say "build log: $log"
    step "configure ${CONFIGURE_FLAGS[*]}" configure_and_make "$src" "$log"
    step "make -j2 (nice; minutes)" compile "$src" "$log"
    step "make install into $PREFIX" install_prefix "$src" "$log"
    rm -rf "$work"
    check_interpreter
    write_record $(( SECONDS - started ))
    say "interpreter: built in $(( SECONDS - started )) s"
}

ensure_interpreter() {
    SUITE="$(suite_for_version)"
    mkdir -p "$CACHE"
    exec 9>"$CACHE/cpython-${FT_PYTHON}t.lock"
    flock 9  # two runs at once (tests, a second terminal) build once
    step "build dependencies" install_missing "${BUILD_DEPS[@]}"
    step "source of python$FT_PYTHON from Debian $SUITE" fetch_source
    if [ "$(installed_key)" = "$(build_key)" ]; then
        check_interpreter
        say "interpreter: cached, $PYTHON_BIN ($UPSTREAM_VERSION, free-threaded)"
        return
    fi
    say "interpreter: building CPython $UPSTREAM_VERSION free-threaded into $PREFIX"
    build_interpreter
}

# ---- the worker venv ------------------------------------------------------------------------------

# The worker's requirements are the project's own [project] dependencies: pyproject.toml keeps the
# extras (Flower, plots, green pools, the embedded server) out of them, so nothing is listed twice.
worker_requirements() {
    "$PYTHON_BIN" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' "$ROOT/pyproject.toml"
}

venv_stamp() {  # what the venv was made from: the interpreter's record, the pins, how pip ran, the mode
    { cat "$RECORD"; worker_requirements; echo "${PIP_ENV[*]} editable=$EDITABLE"; } | sha256sum | cut -d' ' -f1
}

create_venv() {
    local venv="$1"
    rm -rf "$venv"
    "$PYTHON_BIN" -m venv "$venv"
}

install_worker_packages() {
    local venv="$1" reqs
    reqs="$(mktemp)"
    worker_requirements >"$reqs"
    env "${PIP_ENV[@]}" "$venv/bin/python" -m pip install --quiet --no-cache-dir -r "$reqs" \
        || { rm -f "$reqs"; die "pip could not install the worker's requirements on $PYTHON_BIN"; }
    rm -f "$reqs"
}

install_lab_code() {
    local venv="$1" mode=(-e)
    [ "$EDITABLE" = yes ] || mode=()
    env "${PIP_ENV[@]}" "$venv/bin/python" -m pip install --quiet --no-cache-dir --no-deps "${mode[@]}" "$ROOT" \
        || die "pip could not install the lab's code into $venv"
}

# Import what a threads worker imports and fail if any extension turned the GIL back on. PYTHON_GIL
# is removed: PYTHON_GIL=0 forces the GIL off and would hide an extension that does not support it.
check_gil_off() {
    local venv="$1"
    (cd / && env -u PYTHON_GIL "$venv/bin/python" - <<'EOF') || die "the GIL is not off in $venv (above: the module that turned it on)"
import importlib, sys, sysconfig, warnings
warnings.simplefilter("error", RuntimeWarning)  # "The global interpreter lock (GIL) has been enabled ..."
if sysconfig.get_config_var("Py_GIL_DISABLED") != 1:
    sys.exit("not a free-threaded interpreter")
modules = ("tasks.celery_app", "tasks.transport", "tasks.workloads", "cli.lab", "kombu.transport.redis", "celery.backends.redis",
           "celery.concurrency.thread", "celery.worker", "celery.apps.worker", "psutil", "yaml", "requests")
for name in modules:
    try:
        importlib.import_module(name)
    except RuntimeWarning as warning:
        sys.exit("importing %s re-enabled the GIL: %s" % (name, warning))
    if sys._is_gil_enabled():
        sys.exit("the GIL is on after importing %s" % name)
print("[freethreaded] GIL off after importing " + ", ".join(modules))
EOF
}

ensure_venv() {
    local venv="$1" stamp
    [ -f "$RECORD" ] || die "no interpreter in $PREFIX: run tools/freethreaded.sh interpreter first"
    stamp="$(venv_stamp)"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.ft-stamp" 2>/dev/null)" = "$stamp" ]; then
        say "venv: cached, $venv"
    else
        step "venv $venv on $(basename "$PYTHON_BIN")" create_venv "$venv"
        step "worker packages from pyproject.toml [project] dependencies" install_worker_packages "$venv"
        step "lab code into the venv (editable: $EDITABLE)" install_lab_code "$venv"
        echo "$stamp" >"$venv/.ft-stamp"
    fi
    check_gil_off "$venv"
}

# ---- status ---------------------------------------------------------------------------------------

status() {
    local venv="$1" ok=0
    echo "interpreter=$PYTHON_BIN"
    echo "record=$RECORD"
    echo "venv_python=$venv/bin/python"
    if [ -x "$PYTHON_BIN" ] && [ -f "$RECORD" ]; then cat "$RECORD"; else echo "interpreter: missing (make freethreaded)"; ok=1; fi
    [ -x "$venv/bin/python" ] && [ -f "$venv/.ft-stamp" ] || { echo "venv: missing (make freethreaded)"; ok=1; }
    return $ok
}

# ---- main -----------------------------------------------------------------------------------------

main() {
    local action=all venv="$ROOT/.venv-ft"
    EDITABLE=yes
    case "${1:-}" in
        all|interpreter|status|check|runtime-deps) action="$1"; shift ;;
        venv) action=venv; shift; [ $# -gt 0 ] || usage "venv needs a directory"; venv="$1"; shift ;;
    esac
    while [ $# -gt 0 ]; do
        case "$1" in
            --venv) [ $# -gt 1 ] || usage "--venv needs a directory"; venv="$2"; shift 2 ;;
            --no-editable) EDITABLE=no; shift ;;
            -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; return ;;
            *) usage "unknown argument '$1'" ;;
        esac
    done
    [[ "$FT_PYTHON" =~ ^3\.[0-9]+$ ]] || usage "FT_PYTHON must look like 3.13, got '$FT_PYTHON'"
    venv="$(realpath -m "$venv")"
    local started=$SECONDS
    case "$action" in
        status) status "$venv"; return ;;
        check) check_interpreter; check_gil_off "$venv"; return ;;
        runtime-deps) install_missing "${RUNTIME_DEPS[@]}"; return ;;
        interpreter) ensure_interpreter ;;
        venv) ensure_venv "$venv" ;;
        all) ensure_interpreter; ensure_venv "$venv" ;;
    esac
    say "ready in $(( SECONDS - started )) s: interpreter $PYTHON_BIN"
    [ "$action" = interpreter ] || say "worker venv: $venv/bin/python"
}

main "$@"
