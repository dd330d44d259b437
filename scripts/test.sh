#!/usr/bin/env bash
# The test command. On a fresh Debian machine it installs what the tests need
# (pcsc-lite's daemon and client library, the vpcd virtual reader, pcsc_scan;
# Python's venv module; the prometheus package for promtool, which
# tests/metrics.rs runs on a scrape; faketime for libfaketime, under which
# tests/upstream_clock.rs steps the daemon's wall clock back), starts pcscd,
# makes the Python venv of the external checkers (scripts/pyenv.sh: target/pyvenv, from PyPI), then
# runs every test of the workspace. The build itself needs no PC/SC headers nor pkg-config:
# the agent loads libpcsclite.so.1 at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(pcscd libpcsclite1 vsmartcard-vpcd pcsc-tools prometheus faketime)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# scripts/pyenv.sh needs `python3 -m venv`, which Debian ships apart (with
# ensurepip). Skipped when a venv is already made.
if [[ ! -x target/pyvenv/bin/python ]] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
fi
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "test.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash scripts/pcscd-up.sh
# The Python checkers of tests/upstream_external.rs (fast when up to date).
bash scripts/pyenv.sh
# Test binaries run one after another (cargo test does that): the chip tests
# share pcscd's single virtual slot.
cargo test --workspace --locked "$@"
