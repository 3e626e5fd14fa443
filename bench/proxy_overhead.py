#!/usr/bin/env python3
"""What `amqp-rpc proxy --quiet` adds to an RPC call: `amqp-rpc bench` direct and through the proxy, alternating.

    python3 bench/proxy_overhead.py [--rounds 5] [--calls 5000] [--calls64 30000] [--bin target/release/amqp-rpc]
                                    [--both] [--record]

Each round runs, in alternating order, `bench --with-server` with the client connected directly to the broker and
with the client connected through one running proxy (the in-process server always straight to the broker, with
`--server-uri`: so each call crosses the proxy twice, request up and reply down, on one connection); `--both` puts
the server behind the proxy too (four crossings per call). C=1 (sequential) and C=64. Its own queue (not
rpc_queue), so it does not disturb anything else on the broker. Prints the medians of p50 latency, calls/s and the
proxy's CPU per call (from /proc), and the added p50 per round. `--record` makes the proxy record a pcapng capture
(to /tmp) as well, to see what recording costs.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402


def start_proxy(binary, record):
    cmd = [binary, 'proxy', '--listen', '127.0.0.1:0', '--quiet']
    path = None
    if record:
        path = os.path.join(tempfile.gettempdir(), f'proxy-overhead-{os.getpid()}.pcapng')
        cmd += ['--record', path]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    line = proc.stderr.readline().decode()
    if 'listening on ' not in line:
        raise RuntimeError(f'the proxy did not start: {line!r}')
    addr = line.split('listening on ')[1].split(',')[0].split(' ')[0]
    return proc, addr, path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--calls', type=int, default=5000, help='calls per run at C=1')
    p.add_argument('--calls64', type=int, default=30000, help='calls per run at C=64')
    p.add_argument('--bin', default=os.path.join(compare.ROOT, 'target/release/amqp-rpc'))
    p.add_argument('--both', action='store_true', help='the server through the proxy too')
    p.add_argument('--record', action='store_true', help='the proxy records a capture as well')
    args = p.parse_args()
    proxy, addr, path = start_proxy(args.bin, args.record)
    via = f'amqp://guest:guest@{addr}/%2f'
    queue = f'proxy-overhead-{uuid.uuid4()}'
    results = {}
    try:
        for r in range(args.rounds):
            for inflight, calls in ((1, args.calls), (64, args.calls64)):
                modes = ['direct', 'proxy'] if r % 2 == 0 else ['proxy', 'direct']
                for mode in modes:
                    compare.log(f'[proxy] round {r + 1}/{args.rounds}: C={inflight} {mode} '
                                f'(load {compare.load1():.2f})')
                    client = compare.URI if mode == 'direct' else via
                    server = via if (mode == 'proxy' and args.both) else compare.URI
                    c0 = compare.proc_cpu_seconds(proxy.pid)
                    j = compare.run_client([args.bin, 'bench', '--calls', str(calls), '--inflight', str(inflight),
                                            '--prefetch', str(max(inflight, 1)), '--with-server', '--queue', queue,
                                            '--json', '--uri', client, '--server-uri', server], timeout=900)
                    c1 = compare.proc_cpu_seconds(proxy.pid)
                    results.setdefault((inflight, mode), []).append(
                        dict(p50=j['p50_us'], p99=j['p99_us'], rate=j['calls_per_sec'],
                             proxy_cpu=(c1 - c0) * 1e6 / calls))
                    time.sleep(0.2)
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        if path:
            compare.log(f'[proxy] recording: {os.path.getsize(path)} bytes in {path}')
    crossings = 'client and server' if args.both else 'client only (server direct)'
    print(f'{args.rounds} alternating rounds, fib(1), through the proxy: {crossings}'
          f'{", recording" if args.record else ""}; medians')
    print()
    print('| C | direct p50 µs | proxy p50 µs | added p50 µs | direct calls/s | proxy calls/s | proxy CPU µs/call |')
    print('|---:|---:|---:|---:|---:|---:|---:|')
    for inflight in (1, 64):
        d, x = results[(inflight, 'direct')], results[(inflight, 'proxy')]
        med = lambda rows, k: statistics.median(row[k] for row in rows)  # noqa: E731
        print(f'| {inflight} | {med(d, "p50"):.0f} | {med(x, "p50"):.0f} | {med(x, "p50") - med(d, "p50"):+.0f} '
              f'| {med(d, "rate"):,.0f} | {med(x, "rate"):,.0f} | {med(x, "proxy_cpu"):.1f} |')
    print()
    for inflight in (1, 64):
        d, x = results[(inflight, 'direct')], results[(inflight, 'proxy')]
        added = [f'{b["p50"] - a["p50"]:+.0f}' for a, b in zip(d, x)]
        print(f'C={inflight}: added p50 per round (µs): {" ".join(added)}')


if __name__ == '__main__':
    main()
