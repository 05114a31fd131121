"""tools/debian-mirror.sh: the machine's own Debian mirror, read from its apt sources.

The script is how the project names no host (the base image, Compose v2 and the free-threaded
build all fetch from it), so its parsing is checked on sample files in both of apt's formats:
deb822 stanzas (`*.sources`) and one-line lists (`sources.list`, `*.list`). LAB_APT_ROOT points
it at a temporary directory holding etc/os-release and etc/apt/; DEBIAN_MIRROR overrides all.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "debian-mirror.sh"
MIRROR = "http://mirror.example.internal/debian"

DEB822 = f"""\
# The security archive comes first here: its suite is not the codename.
Types: deb
URIs: http://security.example.internal/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://disabled.example.internal/debian
Suites: trixie
Components: main
Enabled: no

Types: deb-src
URIs: http://source-only.example.internal/debian
Suites: trixie
Components: main

Types: deb deb-src
URIs: {MIRROR}/ http://second.example.internal/debian
Suites: trixie trixie-updates
Components: contrib main non-free-firmware
"""

ONE_LINE = f"""\
# deb http://commented.example.internal/debian trixie main
deb-src http://source-only.example.internal/debian trixie main
deb http://security.example.internal/debian-security trixie-security main
deb http://contrib-only.example.internal/debian trixie contrib
deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] {MIRROR}/ trixie main contrib
deb http://later.example.internal/debian trixie main
"""

THIRD_PARTY = """\
Types: deb
URIs: https://packages.example.internal/vendor
Suites: stable
Components: main
"""


def machine(tmp_path: Path, files: dict[str, str], codename: str = "trixie") -> Path:
    """A root with etc/os-release (the codename) and the given files under etc/apt/."""
    (tmp_path / "etc" / "apt" / "sources.list.d").mkdir(parents=True)
    (tmp_path / "etc" / "os-release").write_text(f'NAME="Debian GNU/Linux"\nVERSION_CODENAME={codename}\n')
    for name, text in files.items():
        (tmp_path / "etc" / "apt" / name).write_text(text)
    return tmp_path


def mirror(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBIAN_MIRROR", "LAB_APT_ROOT")}
    return subprocess.run(["bash", str(SCRIPT)], env={**clean, "LAB_APT_ROOT": str(root), **env},
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("files", [
    {"sources.list.d/debian.sources": DEB822},
    {"sources.list": ONE_LINE},
    {"sources.list.d/mirror.list": ONE_LINE, "sources.list.d/vendor.sources": THIRD_PARTY},
], ids=["deb822", "one-line sources.list", "one-line .list beside a third-party deb822"])
def test_the_codename_main_entry_is_found_in_either_format(tmp_path: Path, files: dict[str, str]) -> None:
    """Only `deb` (not deb-src, not disabled, not commented) for exactly the codename with `main`."""
    result = mirror(machine(tmp_path, files))
    assert (result.returncode, result.stdout, result.stderr) == (0, MIRROR + "\n", "")


def test_deb822_is_read_before_one_line_lists(tmp_path: Path) -> None:
    other = ONE_LINE.replace(MIRROR, "http://one-line.example.internal/debian")
    result = mirror(machine(tmp_path, {"sources.list.d/debian.sources": DEB822, "sources.list": other}))
    assert result.stdout == MIRROR + "\n"


def test_the_suite_is_this_machines_codename(tmp_path: Path) -> None:
    """A bookworm machine does not take the trixie mirror, and says so in one line."""
    result = mirror(machine(tmp_path, {"sources.list.d/debian.sources": DEB822, "sources.list": ONE_LINE},
                            codename="bookworm"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "debian-mirror: no 'bookworm main' entry in this machine's apt sources; set DEBIAN_MIRROR"]


def test_no_codename_is_one_line_naming_the_override(tmp_path: Path) -> None:
    root = machine(tmp_path, {"sources.list": ONE_LINE})
    (root / "etc" / "os-release").write_text('NAME="Some Linux"\n')
    result = mirror(root)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "set DEBIAN_MIRROR" in result.stderr


@pytest.mark.parametrize("files", [{}, {"sources.list": ONE_LINE}], ids=["no sources", "sources"])
def test_debian_mirror_overrides_the_sources(tmp_path: Path, files: dict[str, str]) -> None:
    result = mirror(machine(tmp_path, files), DEBIAN_MIRROR="http://override.example.internal/debian")
    assert (result.returncode, result.stdout) == (0, "http://override.example.internal/debian\n")
