#!/usr/bin/env bash
# The test command. On a fresh Debian machine it installs what the tests need
# (pcsc-lite's daemon and client library, the vpcd virtual reader, pcsc_scan),
# starts pcscd, then runs every test of the workspace. The build itself needs
# no PC/SC headers nor pkg-config: the agent loads libpcsclite.so.1 at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(pcscd libpcsclite1 vsmartcard-vpcd pcsc-tools)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
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
# Test binaries run one after another (cargo test does that): the chip tests
# share pcscd's single virtual slot.
cargo test --workspace --locked "$@"
