#!/usr/bin/env bash
# Instructions per frame of a decode_stream-style binary, counted by callgrind: the run with 2R
# repetitions minus the run with R, divided by R × FRAMES (start-up cancels out). Unlike a time,
# the count does not depend on what else the machine is running.
#
#   bash amqp-codec/benches/ir.sh BIN R FRAMES_PER_REP [BIN's flags, e.g. --get NAME] -- FILE...
#
# BIN: target/release/examples/decode_stream, decode_stream_amq_protocol, or a decode_stream
# built from another commit. FRAMES_PER_REP: frames in one pass over the FILEs (decode_stream
# prints it with REPS 1).
set -euo pipefail
bin=$1 r=$2 frames=$3
shift 3
flags=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    flags+=("$1")
    shift
done
shift
ir() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "${flags[@]}" "$@" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
a=$(ir "$r" "$@")
b=$(ir "$((2 * r))" "$@")
awk "BEGIN{printf \"%.0f\n\", ($b - $a) / ($r * $frames)}"
