#!/usr/bin/env python3
"""What the recorder hook costs: `amqp-rpc bench --with-server` of two builds (before the hook, after it with
`--record` off), and of the second with `--record`, alternating.

    cp target/release/amqp-rpc /tmp/amqp-rpc-before      # a build without the hook
    python3 bench/record_cost.py --before /tmp/amqp-rpc-before [--after target/release/amqp-rpc] [--rounds 5]

Client and server share one process (`--with-server`), so the process CPU per call is both sides', each with one
connection: every call is 4 reads and 4 writes there (request out, request in, reply out, reply in). Its own
queue (not rpc_queue). C=1 and C=64. Prints the medians of p50, calls/s and CPU µs/call per variant, and each
round's CPU (the spread says whether a difference is more than noise).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--before', required=True, help='amqp-rpc built without the recorder hook')
    p.add_argument('--after', default=os.path.join(compare.ROOT, 'target/release/amqp-rpc'))
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--calls', type=int, default=5000, help='calls per run at C=1')
    p.add_argument('--calls64', type=int, default=30000, help='calls per run at C=64')
    args = p.parse_args()
    queue = f'record-cost-{uuid.uuid4()}'
    capture = os.path.join(tempfile.gettempdir(), f'record-cost-{os.getpid()}.pcapng')
    variants = [('before', args.before, []), ('after', args.after, []),
                ('after --record', args.after, ['--record', capture])]
    results = {}
    for r in range(args.rounds):
        for inflight, calls in ((1, args.calls), (64, args.calls64)):
            order = variants if r % 2 == 0 else list(reversed(variants))
            for name, binary, extra in order:
                compare.log(f'[record] round {r + 1}/{args.rounds}: C={inflight} {name} (load {compare.load1():.2f})')
                j = compare.run_client([binary, 'bench', '--calls', str(calls), '--inflight', str(inflight),
                                        '--prefetch', str(inflight), '--with-server', '--queue', queue, '--json',
                                        '--uri', compare.URI, *extra], timeout=900)
                results.setdefault((inflight, name), []).append(
                    dict(p50=j['p50_us'], rate=j['calls_per_sec'], cpu=j['cpu_us_per_call']))
                time.sleep(0.2)
    if os.path.exists(capture):
        compare.log(f'[record] last capture: {os.path.getsize(capture)} bytes in {capture}')
    print(f'{args.rounds} alternating rounds, fib(1), client and server in one process; medians')
    print()
    print('| C | variant | p50 µs | calls/s | CPU µs/call (client + server) | CPU per round |')
    print('|---:|---|---:|---:|---:|---|')
    for inflight in (1, 64):
        for name, _, _ in variants:
            rows = results[(inflight, name)]
            med = lambda k: statistics.median(row[k] for row in rows)  # noqa: E731
            spread = ' '.join(f'{row["cpu"]:.1f}' for row in rows)
            print(f'| {inflight} | {name} | {med("p50"):.0f} | {med("rate"):,.0f} | {med("cpu"):.1f} | {spread} |')


if __name__ == '__main__':
    main()
