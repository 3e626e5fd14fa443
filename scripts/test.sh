#!/usr/bin/env bash
# The project's one test command: broker + pika, the other libraries' tutorial programs (tests/interop),
# headless Chromium (tests/decode_html), formatting, lints, docs (warnings are errors), then the workspace tests.
# Extra arguments go to `cargo test --workspace`, e.g. `scripts/test.sh golden -- --nocapture`.
set -euo pipefail
cd "$(dirname "$0")/.."

run() {
    printf '\n==> [%s] %s\n' "$(date +%T)" "$*" >&2
    "$@"
}

run scripts/broker.sh
run scripts/broker-tls.sh
run scripts/interop.sh
run scripts/chromium.sh     # headless Chromium for the browser test of `decode --html`
run cargo fmt --all -- --check
run cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" run cargo doc --workspace --no-deps --quiet
run cargo test --workspace "$@"
# The long resilience tests (3-node cluster, soak), each under a time bound.
run scripts/resilience.sh
printf '\n==> [%s] done in %d s\n' "$(date +%T)" "$SECONDS" >&2
