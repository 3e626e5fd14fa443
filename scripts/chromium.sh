#!/usr/bin/env bash
# Make sure headless Chromium (Debian's `chromium`) is installed, for the browser test of `decode --html`
# (tests/decode_html.rs). Idempotent: ~10 ms when it is already there.
#
#   scripts/chromium.sh           ensure chromium (apt-get install when missing; retries while another
#                                 process holds the apt lock)
#   scripts/chromium.sh status    exit 1 when chromium is missing
set -euo pipefail

log() { printf 'chromium.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ "$(id -u)" -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi

have() { command -v chromium >/dev/null 2>&1; }

if [[ "${1:-}" == status ]]; then
    have && { chromium --version 2>/dev/null; exit 0; }
    log "chromium is not installed"
    exit 1
fi

have && exit 0
command -v apt-get >/dev/null || die "apt-get not found; install chromium by hand"
# Another agent or apt's timers may hold the lock: wait for it (bounded) rather than fail.
for attempt in $(seq 1 30); do
    if "${SUDO[@]}" apt-get update -qq \
        && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
        break
    fi
    (( attempt == 30 )) && die "apt-get install chromium failed 30 times"
    log "apt-get failed (lock busy?); retrying in 10 s ($attempt/30)"
    sleep 10
done
have || die "chromium still missing after apt-get install"
log "installed $(chromium --version 2>/dev/null)"
