#!/usr/bin/env bash
# Tests the Debian package built by scripts/build-deb.sh (its path as the
# argument, or built here when none is given):
#  1. its contents hold every file a kiosk needs, and no simulator;
#  2. lintian finds nothing (debian/satellite.lintian-overrides says why for
#     what it must accept);
#  3. installed with dpkg into a scratch root, maintainer scripts included
#     (chrootless: they see DPKG_ROOT), every file is where the unit and the
#     configuration expect it: the binary at ExecStart=, the system user,
#     the directories with their owners and modes, the enabled unit, the
#     udev rule's groups in the unit, each credential the example
#     configuration names declared by the unit, the example configuration
#     accepted by the installed binary;
#  4. scripts/check-systemd.sh on the installed unit and the real binary;
#  5. purge keeps the store.
# Fails at the first missing piece, naming it. Needs dpkg and lintian
# (installed when missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

deb=${1:-}
if [[ -z $deb ]]; then
    deb=$(bash scripts/build-deb.sh | tail -1)
fi
[[ -f $deb ]] || { echo "test-package.sh: no package at $deb" >&2; exit 1; }

if ! command -v lintian >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "test-package.sh: lintian is missing (run as root, or: sudo apt-get install lintian)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null
fi

fail() {
    echo "test-package.sh: $*" >&2
    exit 1
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "== contents of $(basename "$deb")"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$scratch/contents"
expected=(
    /usr/bin/satellite
    /usr/lib/systemd/system/satellite.service
    /usr/lib/sysusers.d/satellite.conf
    /usr/lib/tmpfiles.d/satellite.conf
    /usr/lib/modules-load.d/satellite.conf
    /usr/lib/udev/rules.d/60-card-printer.rules
    /usr/share/man/man1/satellite.1.gz
    /usr/share/man/man1/satellite-run.1.gz
    /usr/share/man/man1/satellite-status.1.gz
    /usr/share/man/man1/satellite-doctor.1.gz
    /usr/share/man/man1/satellite-keygen.1.gz
    /usr/share/man/man1/satellite-printer-status.1.gz
    /usr/share/man/man1/satellite-jobs-resolve.1.gz
    /usr/share/bash-completion/completions/satellite
    /usr/share/zsh/vendor-completions/_satellite
    /usr/share/fish/vendor_completions.d/satellite.fish
    /usr/share/satellite/satellite.example.toml
    /usr/share/doc/satellite/examples/satellite.toml
    /usr/share/doc/satellite/README.md
    /usr/share/doc/satellite/CLI.md
    /usr/share/doc/satellite/copyright
    /usr/share/doc/satellite/changelog.Debian.gz
    /usr/share/lintian/overrides/satellite
)
for f in "${expected[@]}"; do
    grep -qxF "$f" "$scratch/contents" || fail "the package lacks $f"
done
# The production build: no page for the simulator's commands, nothing in /etc
# (a file there would be a conffile the technician's own would clash with).
for f in /usr/share/man/man1/satellite-demo.1.gz /usr/share/man/man1/satellite-bench.1.gz \
    /usr/share/man/man1/satellite-man.1.gz /usr/share/man/man1/satellite-completions.1.gz; do
    if grep -qxF "$f" "$scratch/contents"; then fail "the package has $f (a hidden command)"; fi
done
if grep -q '^/etc/.' "$scratch/contents"; then fail "the package installs into /etc"; fi
dpkg-deb --ctrl-tarfile "$deb" | tar -t >"$scratch/control"
for f in postinst prerm postrm; do
    grep -qx "./$f" "$scratch/control" || fail "the package has no $f"
done
echo "${#expected[@]} files present"

echo "== lintian"
# Errors and warnings fail; informational tags are shown only.
lintian --fail-on error,warning --info "$deb"

echo "== install into a scratch root"
root=$scratch/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
touch "$root/var/lib/dpkg/status"
# A kiosk has these groups (Debian's base-passwd): the unit's
# SupplementaryGroups= names them.
grep -E '^(root|dialout|lp):' /etc/group >"$root/etc/group"
grep -E '^root:' /etc/passwd >"$root/etc/passwd"
dpkg_root() {
    # --force-depends: the scratch root has no systemd or libc packages
    # installed; the maintainer scripts use the host's tools on DPKG_ROOT.
    dpkg --root="$root" --force-not-root --force-script-chrootless --force-depends \
        --log=/dev/null "$@"
}
dpkg_root -i "$deb" >/dev/null

exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$root/usr/lib/systemd/system/satellite.service")
[[ -x $root$exec_start ]] || fail "ExecStart= names $exec_start, not an executable in the package"
"$root$exec_start" --version
# Built without the simulator: demo refuses (64).
status=0
"$root$exec_start" demo >/dev/null 2>&1 || status=$?
((status == 64)) || fail "satellite demo exited $status: the packaged binary has the simulator"

grep -q '^satellite:x:[0-9]*:[0-9]*:[^:]*:/var/lib/satellite:/usr/sbin/nologin$' "$root/etc/passwd" \
    || fail "systemd-sysusers made no satellite user: $(grep satellite "$root/etc/passwd" || true)"
uid=$(awk -F: '$1 == "satellite" {print $3}' "$root/etc/passwd")
gid=$(awk -F: '$1 == "satellite" {print $3}' "$root/etc/group")
[[ -n $gid ]] || fail "no satellite group"
check_dir() { # path mode uid gid
    [[ -d $root$1 ]] || fail "$1 was not made"
    local got
    got=$(stat -c '%a %u %g' "$root$1")
    [[ $got == "$2 $3 $4" ]] || fail "$1 is $got (mode uid gid), not $2 $3 $4"
}
check_dir /etc/satellite 750 0 "$gid"
check_dir /var/lib/satellite 700 "$uid" "$gid"
check_dir /etc/credstore 700 0 0
check_dir /etc/credstore.encrypted 700 0 0

wants=$root/etc/systemd/system/multi-user.target.wants/satellite.service
[[ -L $wants ]] || fail "postinst did not enable satellite.service"
[[ -f $root$(readlink "$wants") ]] || fail "the enablement link points to $(readlink "$wants"), not the installed unit"

unit=$root/usr/lib/systemd/system/satellite.service
value() { sed -n "s/^$1=//p" "$unit"; }
# The unit's condition is the configuration the package leaves to the
# technician: its directory exists, the file does not (nothing started).
condition=$(value ConditionPathExists)
[[ $condition == /etc/satellite/satellite.toml ]] || fail "ConditionPathExists=$condition"
[[ ! -e $root$condition ]] || fail "the package installed $condition"
# The directories the unit makes are the example configuration's.
example=$root/usr/share/satellite/satellite.example.toml
cmp -s "$example" "$root/usr/share/doc/satellite/examples/satellite.toml" \
    || fail "the two example configurations differ"
grep -q '^path = "/var/lib/'"$(value StateDirectory)"'/' "$example" || fail "store.path is not in StateDirectory="
grep -q '^socket = "/run/'"$(value RuntimeDirectory)"'/api.sock"' "$example" || fail "api.socket is not in RuntimeDirectory="
grep -q '^ExecStart=.* --config '"$condition"'$' "$unit" || fail "ExecStart= does not read $condition"
# Every credential name the example configuration mentions, in use or
# commented out, is one the unit loads.
names=$(sed -n 's/^#* *[a-z_]*_credential = "\([^"]*\)".*/\1/p' "$example")
[[ -n $names ]] || fail "no *_credential in the example"
for n in $names; do
    grep -qx "LoadCredential=$n" "$unit" || fail "the example names credential $n; the unit does not load it"
done
# The udev rule gives the groups the unit joins, and the name it allows.
rules=$root/usr/lib/udev/rules.d/60-card-printer.rules
groups=" $(value SupplementaryGroups) "
for g in $(sed -n 's/^[^#].*GROUP="\([^"]*\)".*/\1/p' "$rules"); do
    [[ $groups == *" $g "* ]] || fail "the udev rule gives group $g; the unit's SupplementaryGroups= lacks it"
    grep -q "^$g:" "$root/etc/group" || fail "group $g does not exist"
done
link=$(sed -n 's/^[^#].*SYMLINK+="\([^"]*\)".*/\1/p' "$rules" | sort -u)
[[ $link == card-printer ]] || fail "the udev rule's names: $link"
grep -qx "DeviceAllow=/dev/$link rw" "$unit" || fail "the unit does not allow /dev/$link"
bash -n "$root/usr/share/bash-completion/completions/satellite" || fail "the bash completion does not parse"
grep -q 'complete -c satellite' "$root/usr/share/fish/vendor_completions.d/satellite.fish" || fail "the fish completion"
grep -q '^#compdef satellite' "$root/usr/share/zsh/vendor-completions/_satellite" || fail "the zsh completion"

# The example configuration, as the technician copies it, is accepted by
# the installed binary: the doctor's configuration check passes (the agent
# is not running, so the doctor itself reports failures: only "config" counts).
install -m 0640 "$example" "$root/etc/satellite/satellite.toml"
"$root$exec_start" doctor --config "$root/etc/satellite/satellite.toml" --json >"$scratch/doctor.json" || true
python3 - "$scratch/doctor.json" <<'PY'
import json, sys
checks = {c["id"]: c for c in json.load(open(sys.argv[1]))["checks"]}
c = checks["config"]
if c["result"] != "PASS":
    sys.exit(f"test-package.sh: the example configuration: {c['result']}: {c['detail']}")
print("example configuration:", c["detail"])
PY
rm "$root/etc/satellite/satellite.toml"

echo "== systemd checks on the installed unit and binary"
bash scripts/check-systemd.sh "$root"

echo "== purge"
touch "$root/var/lib/satellite/satellite.db"
dpkg_root --purge satellite >/dev/null 2>"$scratch/purge.err" || { cat "$scratch/purge.err"; fail "purge failed"; }
[[ ! -e $unit && ! -e $root/usr/bin/satellite ]] || fail "purge left the package's files"
[[ -f $root/var/lib/satellite/satellite.db ]] || fail "purge removed the store"
grep -q "is kept" "$scratch/purge.err" || fail "purge did not say the store is kept"
echo "== ok"
