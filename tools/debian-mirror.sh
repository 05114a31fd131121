#!/usr/bin/env bash
# Print the Debian archive URI this machine's own apt sources use, so the project names no host.
# DEBIAN_MIRROR overrides it. Reads deb822 files (/etc/apt/sources.list.d/*.sources) and one-line
# lists (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list): the first `deb` entry whose suite is
# exactly this machine's codename (not -security/-updates, not a third-party suite) with `main`.
# A deb822 stanza with `Enabled: no` is skipped. Exit 1 with one line on stderr if there is none.
# LAB_APT_ROOT reads etc/os-release and etc/apt/ under another directory instead of / (the test
# feeds sample files that way: tests/tools/test_debian_mirror.py).
set -euo pipefail
if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR"
    exit 0
fi
root="${LAB_APT_ROOT:-}"
codename=$(. "$root/etc/os-release" 2>/dev/null && echo "${VERSION_CODENAME:-}") || codename=""
[ -n "$codename" ] || { echo "debian-mirror: no VERSION_CODENAME in $root/etc/os-release; set DEBIAN_MIRROR" >&2; exit 1; }

from_deb822() {  # stanzas separated by blank lines; keys Types, URIs, Suites, Components
    awk -v want="$codename" '
        function flush() {
            if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") && (" " comps " ") ~ / main / &&
                tolower(enabled) !~ /no/) {
                split(uris, u, " "); print u[1]; found = 1; exit
            }
            types = uris = suites = comps = enabled = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        tolower($1) == "types:"      { $1 = ""; types = $0 }
        tolower($1) == "uris:"       { $1 = ""; sub(/^ +/, ""); uris = $0 }
        tolower($1) == "suites:"     { $1 = ""; suites = $0 }
        tolower($1) == "components:" { $1 = ""; comps = $0 }
        tolower($1) == "enabled:"    { $1 = ""; enabled = $0 }
        END { if (!found) flush() }
    ' "$@"
}

from_one_line() {  # deb [options] URI suite component...
    awk -v want="$codename" '
        $1 != "deb" { next }
        { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } }
        $(i + 1) == want { for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit } }
    ' "$@"
}

shopt -s nullglob
for file in "$root"/etc/apt/sources.list.d/*.sources; do
    uri=$(from_deb822 "$file")
    [ -n "$uri" ] && { echo "${uri%/}"; exit 0; }
done
for file in "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    uri=$(from_one_line "$file")
    [ -n "$uri" ] && { echo "${uri%/}"; exit 0; }
done
echo "debian-mirror: no '$codename main' entry in this machine's apt sources; set DEBIAN_MIRROR" >&2
exit 1
