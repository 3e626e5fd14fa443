#!/usr/bin/env bash
# Decode throughput, amqp-codec vs amq-protocol, on the bench's cases and the tutorial-six
# captures: each pair of decode_stream examples run alternately N times, best run of each kept.
# Alternating and keeping the best is what makes the ratio trustworthy on a shared machine,
# where criterion's medians for the two decoders are taken minutes apart under different load.
#
#   bash amqp-codec/benches/compare.sh [N]        (N = runs per decoder and case, default 9)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-9}
target=${CARGO_TARGET_DIR:-target}
cases=$(mktemp -d)
trap 'rm -rf "$cases"' EXIT

cargo build -q --release -p amqp-codec --example decode_stream --example decode_stream_amq_protocol
# The bench writes its cases' bytes and, with a filter matching nothing, measures nothing.
AMQP_CODEC_BENCH_DUMP="$cases" cargo bench -q -p amqp-codec --bench codec -- '^$' >/dev/null
ours="$target/release/examples/decode_stream"
theirs="$target/release/examples/decode_stream_amq_protocol"


printf '| case | frames/rep | amqp-codec ns/frame | amq-protocol ns/frame | ratio |\n|---|---:|---:|---:|---:|\n'
for c in seed_header rpc_request deliver_1k deliver_64k deliver_1m mixed_10k tutorial6; do
    case $c in
        seed_header | rpc_request) reps=300000 ;;
        deliver_1m) reps=30000 ;;
        deliver_*) reps=100000 ;;
        mixed_10k) reps=10 ;;
        tutorial6) reps=3000 ;;
    esac
    if [ "$c" = tutorial6 ]; then
        files=(fixtures/captures/tutorial6.s*.bin)
    else
        files=("$cases/$c.bin")
    fi
    frames=$("$ours" 1 "${files[@]}" | sed -n 's/^frames=\([0-9]*\).*/\1/p')
    o=""; a=""
    for _ in $(seq "$N"); do # alternate: one run of each, N times
        v=$("$ours" "$reps" "${files[@]}" | sed -n 's/.*ns\/frame=\([0-9.]*\).*/\1/p')
        if [ -z "$o" ] || awk "BEGIN{exit !($v < $o)}"; then o=$v; fi
        v=$("$theirs" "$reps" "${files[@]}" | sed -n 's/.*ns\/frame=\([0-9.]*\).*/\1/p')
        if [ -z "$a" ] || awk "BEGIN{exit !($v < $a)}"; then a=$v; fi
    done
    printf '| %s | %s | %s | %s | %s× |\n' "$c" "$frames" "$o" "$a" "$(awk "BEGIN{printf \"%.1f\", $a / $o}")"
done
