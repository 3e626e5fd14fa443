#!/usr/bin/env python3
"""A/B two (or more) builds of amqp-rpc against each other: alternating runs, medians.

    cp target/release/amqp-rpc /tmp/amqp-rpc-before     # build A
    ... change, cargo build --release ...
    python3 bench/ab.py --rounds 5 --calls 30000 --inflight 64 \\
        before=/tmp/amqp-rpc-before,/tmp/amqp-rpc-before after=target/release/amqp-rpc,target/release/amqp-rpc

Each variant is `name=SERVER_BINARY,CLIENT_BINARY`: `SERVER serve --prefetch C` is started on a freshly deleted
request queue, `CLIENT bench --calls N --inflight C --json` runs against it, the server's CPU time is read from /proc
around the client run. Giving two variants the same server (or the same client) isolates the other side's change.
Prints, per variant, the medians of calls/s, broker (beam.smp), server and client CPU µs/call and p50, and the
client CPU of every round (the spread tells whether a difference is more than noise). `--rate R` drives every
variant open loop at the same pace instead, so that CPU per call is compared at equal batching; `--queue` keeps
the runs off `rpc_queue`.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402


def broker_cpu_seconds():
    """CPU seconds of every RabbitMQ node's Erlang VM (beam.smp) on this machine, 0 if none is found."""
    try:
        out = subprocess.run(['pgrep', '-f', 'beam.smp'], capture_output=True, text=True).stdout
    except OSError:
        return 0.0
    return sum(compare.proc_cpu_seconds(int(pid)) for pid in out.split())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--calls', type=int, default=30000)
    p.add_argument('--inflight', type=int, default=64)
    p.add_argument('--rate', type=float, default=None,
                   help='open loop at this many calls/s (--calls / --rate seconds) instead of C calls in flight: '
                        'every variant then runs at the same pace, so CPU per call is not skewed by batching')
    p.add_argument('--queue', default='rpc_queue',
                   help='request queue (another name keeps the runs away from anything else using rpc_queue)')
    p.add_argument('variants', nargs='+', metavar='NAME=SERVER,CLIENT')
    args = p.parse_args()
    variants = []
    for v in args.variants:
        name, _, bins = v.partition('=')
        server, _, client = bins.partition(',')
        if not (name and server and client):
            p.error(f'expected NAME=SERVER,CLIENT, got {v!r}')
        variants.append((name, server, client))
    results = {name: [] for name, _, _ in variants}
    for r in range(args.rounds):
        for name, server_bin, client_bin in variants:
            compare.log(f'[ab] round {r + 1}/{args.rounds}: {name} (load {compare.load1():.2f})')
            compare.delete_rpc_queue(args.queue)
            server = subprocess.Popen([server_bin, 'serve', '--prefetch', str(args.inflight), '--uri', compare.URI,
                                       '--queue', args.queue],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            try:
                compare.wait_for_consumer(server, queue=args.queue)
                s0 = compare.proc_cpu_seconds(server.pid)
                b0 = broker_cpu_seconds()
                load = (['--rate', str(args.rate), '--duration', f'{args.calls / args.rate:.3f}s']
                        if args.rate else ['--calls', str(args.calls), '--inflight', str(args.inflight)])
                j = compare.run_client([client_bin, 'bench', *load, '--fib', '1', '--json', '--uri', compare.URI,
                                        '--queue', args.queue],
                                       timeout=600)
                s1 = compare.proc_cpu_seconds(server.pid)
                b1 = broker_cpu_seconds()
            finally:
                compare.stop(server)
            results[name].append(dict(rate=j['calls_per_sec'], server=(s1 - s0) * 1e6 / args.calls,
                                      broker=(b1 - b0) * 1e6 / args.calls,
                                      client=j['cpu_us_per_call'], p50=j['p50_us']))
            time.sleep(0.2)
    pace = f'open loop at {args.rate:,.0f} calls/s' if args.rate else f'C={args.inflight}'
    print(f'{args.rounds} alternating rounds of {args.calls} calls, {pace}, prefetch {args.inflight}; '
          'medians (server CPU from /proc: 10 ms ticks, so steps of '
          f'{1e4 / args.calls:.2f} µs/call)')
    for name, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ('rate', 'server', 'client', 'p50', 'broker')}
        print(f"{name:>12}: {med['rate']:9,.0f} calls/s  broker {med['broker']:6.2f}  server {med['server']:6.2f} µs/call  "
              f"client {med['client']:6.2f} µs/call  p50 {med['p50']:6.0f} µs  "
              f"client by round {[round(r['client'], 2) for r in rs]}")


if __name__ == '__main__':
    main()
