#!/usr/bin/env bash
# Checks satellite.service with systemd's own tools:
#   systemd-analyze security --offline=true: the sandbox's exposure score,
#     at most MAX_EXPOSURE (2.0; systemd's scale, 0 safest to 10);
#   systemd-analyze verify: no warning at all.
# With ROOT (a directory the package was installed into, as
# scripts/test-package.sh does), the unit and the binary are the installed
# ones. Without, the repository's unit, with an executable stand-in at
# /usr/bin/satellite: verify only checks that ExecStart= names an executable
# file, and the package test runs this script again on the real binary.
# Installs systemd when systemd-analyze is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

max=${MAX_EXPOSURE:-2.0}
root=${1:-}

if ! command -v systemd-analyze >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "check-systemd.sh: systemd-analyze is missing (run as root, or: sudo apt-get install systemd)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if [[ -n $root ]]; then
    unit=$root/usr/lib/systemd/system/satellite.service
    binary=$root/usr/bin/satellite
else
    unit=systemd/satellite.service
    binary=$(type -P true)
fi
[[ -f $unit ]] || { echo "check-systemd.sh: no unit at $unit" >&2; exit 1; }

# verify resolves ExecStart=, ExecReload= and every unit the service pulls in
# (sysinit.target, network-online.target, pcscd.socket...) inside --root. A
# root of its own: the host's units (what a kiosk has), this unit, the binary
# and kill(1), with /bin pointing into /usr as on a merged-/usr system.
vroot=$scratch/root
mkdir -p "$vroot/usr/lib/systemd/system" "$vroot/usr/bin" "$vroot/etc"
for dir in /usr/lib/systemd/system /lib/systemd/system; do
    [[ -d $dir ]] && cp -a "$dir/." "$vroot/usr/lib/systemd/system/"
done
ln -s usr/bin "$vroot/bin"
cp "$unit" "$vroot/usr/lib/systemd/system/satellite.service"
cp "$binary" "$vroot/usr/bin/satellite"
cp "$(type -P kill)" "$vroot/usr/bin/kill"

echo "== systemd-analyze security --offline=true (at most $max)"
report=$scratch/security
# --threshold is on a 0-100 scale: exit status non-zero above it.
threshold=$(awk -v m="$max" 'BEGIN { printf "%d", m * 10 + 0.5 }')
if systemd-analyze security --offline=true --root="$vroot" --threshold="$threshold" \
    satellite.service >"$report" 2>&1; then ok=1; else ok=0; fi
grep '✗' "$report" || true
score=$(sed -n 's/.*Overall exposure level for satellite.service: \([0-9.]*\).*/\1/p' "$report")
if [[ -z $score ]]; then
    cat "$report"
    echo "check-systemd.sh: no exposure score in systemd-analyze's report" >&2
    exit 1
fi
echo "exposure: $score"
if ((!ok)); then
    echo "check-systemd.sh: exposure $score is above $max" >&2
    exit 1
fi

echo "== systemd-analyze verify"
# --man=no: verify would look the Documentation= man page up on this host,
# not in --root; the page is the package's, checked by lintian.
out=$scratch/verify
if ! systemd-analyze verify --root="$vroot" --man=no satellite.service >"$out" 2>&1 || [[ -s $out ]]; then
    cat "$out"
    echo "check-systemd.sh: systemd-analyze verify is not clean" >&2
    exit 1
fi
echo "clean"
