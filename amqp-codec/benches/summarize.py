#!/usr/bin/env python3
"""Print the BENCHMARKS.md table from criterion's results of `cargo bench -p amqp-codec --bench codec`.

Reads <target>/criterion/{decode,encode}_<case>/{amqp-codec,amq-protocol}/new/{estimates,benchmark}.json
(target = $CARGO_TARGET_DIR, else ./target) and the case sizes from the throughput criterion
recorded. Times are criterion's median estimates.
"""
import json
import os
import pathlib
import sys

CASES = ["seed_header", "rpc_request", "deliver_1k", "deliver_64k", "deliver_1m", "mixed_10k"]
BYTES = {}  # filled from decode_stream-style dumps when given: case -> bytes


def load(root, op, case, who):
    d = root / f"{op}_{case}" / who / "new"
    est = json.loads((d / "estimates.json").read_text())
    bench = json.loads((d / "benchmark.json").read_text())
    frames = bench["throughput"]["Elements"]
    return est["median"]["point_estimate"], frames


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def main():
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    root = target / "criterion"
    dump = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print("| case | frames | op | amqp-codec | ns/frame | amq-protocol | ns/frame | ratio |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for case in CASES:
        for op in ("decode", "encode"):
            try:
                ours, n = load(root, op, case, "amqp-codec")
                theirs, _ = load(root, op, case, "amq-protocol")
            except FileNotFoundError:
                continue
            size = ""
            if dump and (dump / f"{case}.bin").exists():
                b = (dump / f"{case}.bin").stat().st_size
                size = f" ({b / (ours / 1e9) / 1e6:,.0f} MB/s)"
            print(
                f"| {case} | {n} | {op} | {fmt_ns(ours)}{size} | {ours / n:.0f} | "
                f"{fmt_ns(theirs)} | {theirs / n:.0f} | {theirs / ours:.1f}× |"
            )


if __name__ == "__main__":
    main()
