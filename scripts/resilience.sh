#!/usr/bin/env bash
# The long resilience tests, each under a time bound: the 3-node cluster (a node stopped during CLUSTER_CALLS
# calls) and the soak (SOAK_CALLS calls through one client and two servers, memory/tasks/fds checked).
# The short fault tests (tests/resilience_*.rs) run with `cargo test --workspace`.
#
#   scripts/resilience.sh            cluster, then soak
#   scripts/resilience.sh cluster    only the cluster test
#   scripts/resilience.sh soak       only the soak
#
# Environment: CLUSTER_CALLS (default 10000), SOAK_CALLS (default 200000; 1000000 for the full soak, ~5 min),
# CLUSTER_TIMEOUT / SOAK_TIMEOUT (seconds, default 300 each). Needs the default broker (scripts/broker.sh) for
# the soak; the cluster test starts and removes its own nodes on 5681-5683 and never touches 5672.
set -euo pipefail
cd "$(dirname "$0")/.."

run() {
    printf '\n==> %s\n' "$*" >&2
    "$@"
}

what="${1:-all}"
case "$what" in
    all | cluster | soak) ;;
    -h | --help | help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "resilience.sh: unknown argument '$what' (expected: cluster, soak)" >&2
        exit 2
        ;;
esac

run scripts/broker.sh
# Build first, so that the time bounds below measure the tests, not the compiler.
run cargo test --test cluster --test soak --no-run

if [[ "$what" == all || "$what" == cluster ]]; then
    # On timeout the test's guard cannot run: tear the cluster down here too.
    trap 'bash scripts/cluster.sh stop >/dev/null 2>&1 || true' EXIT
    run timeout --signal=INT --kill-after=30 "${CLUSTER_TIMEOUT:-300}" \
        cargo test --test cluster -- --ignored --nocapture
fi
if [[ "$what" == all || "$what" == soak ]]; then
    run timeout --signal=INT --kill-after=30 "${SOAK_TIMEOUT:-300}" \
        cargo test --test soak -- --ignored --nocapture
fi
