#!/usr/bin/env bash
# Makes the Python venv of the tests and checks: target/pyvenv with the
# pinned packages of scripts/python-requirements.txt. Idempotent: when the
# venv was made from the same requirements (a stamp file holds their hash and
# the venv's Python version) it returns at once; otherwise it (re)creates the
# venv and installs quietly. Needs python3 with the venv module (Debian:
# python3-venv; scripts/test.sh installs it when run as root) and PyPI.
# Usage: scripts/pyenv.sh   (from anywhere; prints nothing when up to date)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="target/pyvenv"
reqs="scripts/python-requirements.txt"
stamp="$venv/.requirements.stamp"

die() {
    echo "pyenv: $*" >&2
    exit 1
}

# The stamp's content: the requirements and the venv's Python version.
key() {
    local v
    v="$("$venv/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null)" || return 1
    [[ -n "$v" ]] || return 1
    { cat "$reqs"; echo "$v"; } | sha256sum | cut -d' ' -f1
}

up_to_date() {
    [[ -f "$stamp" && -x "$venv/bin/python" ]] && [[ "$(cat "$stamp")" == "$(key)" ]]
}

up_to_date && exit 0

command -v python3 >/dev/null || die "python3 is not installed (Debian: apt-get install python3 python3-venv)"
mkdir -p target
# Two runs at once (cargo test's binaries, a script) wait for each other.
exec 9>"target/pyvenv.lock"
if command -v flock >/dev/null; then
    flock 9
fi
up_to_date && exit 0

# A venv without a working pip (e.g. made while python3-venv was missing)
# is made anew.
if [[ "$("$venv/bin/python" -m pip --version 2>/dev/null)" != pip\ * ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv" ||
        { rm -rf "$venv"; die "python3 -m venv failed (Debian: apt-get install python3-venv)"; }
fi
rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$reqs" ||
    die "pip could not install $reqs into $venv"
k="$(key)" || die "$venv/bin/python does not run after the install"
echo "$k" >"$stamp"
