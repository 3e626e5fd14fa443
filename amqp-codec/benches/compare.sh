#!/usr/bin/env bash
# Decode throughput, amqp-codec vs amq-protocol, on the bench's cases and the tutorial-six
# captures: each pair of decode_stream examples run alternately N times, best run of each kept.
# Alternating and keeping the best is what makes the ratio trustworthy on a shared machine,
# where criterion's medians for the two decoders are taken minutes apart under different load.
# `rpc_request_traced+get` decodes the traced request and reads `x-deadline` (lookup) and
# `traceparent` (lookup_str) from its headers, as the RPC server does with every request.
#
#   bash amqp-codec/benches/compare.sh [N]        (N = runs per decoder and case, default 9)
#
# BEFORE=PATH adds a third decoder to the alternation: a decode_stream binary built from another
# commit (build it there with this commit's examples/decode_stream.rs, in its own target
# directory: two checkouts sharing one overwrite each other's amqp-codec), for before/after figures.
#
# CLOCK=cpu measures each run's user CPU time (bash's `time`) instead of the wall clock the
# programs print: on a machine loaded past its cores, time spent preempted makes the wall clock
# useless even as a best of many runs, while CPU time stays within a few percent.
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
before=${BEFORE:-}

# Best (lowest) ns/frame of $1 and a new run of "$@"[2:], which decodes $2 frames in all.
best() {
    local cur=$1 total=$2
    shift 2
    local v t
    if [ "${CLOCK:-wall}" = cpu ]; then
        t=$( { TIMEFORMAT=%U; time "$@" >/dev/null; } 2>&1 )
        v=$(awk "BEGIN{printf \"%.1f\", $t * 1e9 / $total}")
    else
        v=$("$@" | sed -n 's/.*ns\/frame=\([0-9.]*\).*/\1/p')
    fi
    if [ -z "$cur" ] || awk "BEGIN{exit !($v < $cur)}"; then echo "$v"; else echo "$cur"; fi
}

if [ -n "$before" ]; then
    printf '| case | frames/rep | before ns/frame | amqp-codec ns/frame | amq-protocol ns/frame | before ratio | ratio |\n|---|---:|---:|---:|---:|---:|---:|\n'
else
    printf '| case | frames/rep | amqp-codec ns/frame | amq-protocol ns/frame | ratio |\n|---|---:|---:|---:|---:|\n'
fi
for c in seed_header rpc_request rpc_request_traced rpc_request_traced+get deliver_1k deliver_64k deliver_1m mixed_10k tutorial6; do
    get=()
    case $c in
        seed_header | rpc_request | rpc_request_traced) reps=300000 ;;
        rpc_request_traced+get) reps=300000 get=(--get x-deadline --get-str traceparent) ;;
        deliver_1m) reps=30000 ;;
        deliver_*) reps=100000 ;;
        mixed_10k) reps=10 ;;
        tutorial6) reps=3000 ;;
    esac
    # bash's `time` prints milliseconds: runs of ~0.1-1 s keep its rounding under 1 %.
    if [ "${CLOCK:-wall}" = cpu ]; then reps=$((reps * 10)); fi
    if [ "$c" = tutorial6 ]; then
        files=(fixtures/captures/tutorial6.s*.bin)
    else
        files=("$cases/${c%+get}.bin")
    fi
    frames=$("$ours" 1 "${files[@]}" | sed -n 's/^frames=\([0-9]*\).*/\1/p')
    o=""; a=""; b=""
    for _ in $(seq "$N"); do # alternate: one run of each, N times
        o=$(best "$o" $((frames * reps)) "$ours" "${get[@]}" "$reps" "${files[@]}")
        a=$(best "$a" $((frames * reps)) "$theirs" "${get[@]}" "$reps" "${files[@]}")
        if [ -n "$before" ]; then
            b=$(best "$b" $((frames * reps)) "$before" "${get[@]}" "$reps" "${files[@]}")
        fi
    done
    ratio=$(awk "BEGIN{printf \"%.1f\", $a / $o}")
    if [ -n "$before" ]; then
        printf '| %s | %s | %s | %s | %s | %s× | %s× |\n' "$c" "$frames" "$b" "$o" "$a" \
            "$(awk "BEGIN{printf \"%.1f\", $a / $b}")" "$ratio"
    else
        printf '| %s | %s | %s | %s | %s× |\n' "$c" "$frames" "$o" "$a" "$ratio"
    fi
done
