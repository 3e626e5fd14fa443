#!/usr/bin/env bash
# The open-loop picture (README, docs/bench-open-loop.png): a server stalled for 1 s under 1,000 calls/s.
#
#   bash bench/stall.sh [OUT.svg] [more bench arguments…]
#
# Starts `amqp-rpc serve --prefetch 64` on a queue of its own, runs `amqp-rpc bench --rate 1000 --duration 6s`
# against it, stops the server with SIGSTOP 3 s in and resumes it 1 s later (a GC pause, a stuck disk, a
# descheduled VM), prints the report, writes the plot (default /tmp/bench-open-loop.svg) and deletes the queue.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${AMQP_RPC:-target/release/amqp-rpc}
[ -x "$bin" ] || cargo build --release --quiet -p amqp-rpc
out=${1:-/tmp/bench-open-loop.svg}
shift || true
queue=bench-stall-$$

"$bin" serve --queue "$queue" --prefetch 64 >/dev/null 2>&1 &
server=$!
cleanup() {
    kill -CONT "$server" 2>/dev/null || true
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rabbitmqctl delete_queue "$queue" >/dev/null 2>&1 || true
}
trap cleanup EXIT
sleep 1
(sleep 3; kill -STOP "$server"; sleep 1; kill -CONT "$server") &
stall=$!
"$bin" bench --rate 1000 --duration 6s --timeout 10s --queue "$queue" --plot "$out" "$@"
wait "$stall"
