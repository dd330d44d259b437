#!/usr/bin/env bash
# Makes sure pcsc-lite's daemon runs with Debian's vpcd virtual reader, for the
# chip tests (tests/chip_pcsc.rs) and for trying the simulator's virtual card.
#
# Idempotent: when pcscd already runs, it only waits for the vpcd ports.
# Otherwise it starts `pcscd -f` in the background (log: $PCSCD_LOG) and waits,
# at most $PCSCD_WAIT_S seconds, until the vpcd ports listen and pcscd's
# socket exists.
#
# pcscd runs at its default log level on purpose: never add -a (it logs every
# APDU, and personalisation APDUs are card data) nor -d.
#
# Debian's /etc/reader.conf.d/vpcd (channel 0x8C7B) gives two readers of one
# slot each: "Virtual PCD 00 00" on port 35963 and "Virtual PCD 00 01" on 35964.
# vpcd listens on all interfaces: on a kiosk, firewall these ports.
#
# Environment: VPCD_PORTS ("35963 35964"), PCSCD_LOG (/tmp/pcscd.log),
# PCSCD_WAIT_S (10).
set -euo pipefail

ports="${VPCD_PORTS:-35963 35964}"
log="${PCSCD_LOG:-/tmp/pcscd.log}"
wait_s="${PCSCD_WAIT_S:-10}"

die() {
    echo "pcscd-up: $*" >&2
    exit 1
}

pcscd_bin="$(command -v pcscd || true)"
if [[ -z "$pcscd_bin" && -x /usr/sbin/pcscd ]]; then
    pcscd_bin=/usr/sbin/pcscd
fi
[[ -n "$pcscd_bin" ]] || die "pcscd is not installed (Debian: apt-get install pcscd vsmartcard-vpcd pcsc-tools)"

if ! grep -qs libifdvpcd /etc/reader.conf.d/* 2>/dev/null; then
    die "the vpcd virtual reader is not configured in /etc/reader.conf.d (Debian: apt-get install vsmartcard-vpcd)"
fi

# A live (not zombie) process named pcscd.
pcscd_running() {
    local pid stat
    for pid in $(pgrep -x pcscd 2>/dev/null || true); do
        stat="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
        [[ -n "$stat" && "$stat" != Z* ]] && return 0
    done
    return 1
}

# A port is in LISTEN state (checked in /proc rather than by connecting: a
# connection to vpcd is a card insertion for pcscd).
port_listening() {
    local hex
    hex="$(printf '%04X' "$1")"
    awk -v p=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Every vpcd port listens.
ports_listening() {
    local p
    for p in $ports; do
        port_listening "$p" || return 1
    done
}

if pcscd_running; then
    echo "pcscd-up: pcscd already running"
else
    echo "pcscd-up: starting $pcscd_bin -f (log: $log)"
    setsid nohup "$pcscd_bin" -f >>"$log" 2>&1 </dev/null &
    disown || true
fi

# pcscd's client socket (libpcsclite honours the same variable).
sock="${PCSCLITE_CSOCK_NAME:-/run/pcscd/pcscd.comm}"

deadline=$((SECONDS + wait_s))
until ports_listening && [[ -S "$sock" ]]; do
    if ((SECONDS >= deadline)); then
        if ! pcscd_running; then
            echo "pcscd-up: pcscd is not running; last lines of $log:" >&2
            tail -n 20 "$log" >&2 2>/dev/null || true
        fi
        ports_listening || die "vpcd ports $ports do not all listen after ${wait_s}s (is vsmartcard-vpcd installed and are the ports free?)"
        die "pcscd's socket $sock does not exist after ${wait_s}s"
    fi
    sleep 0.2
done

echo "pcscd-up: pcscd ready, vpcd listening on ports $ports"
