#!/usr/bin/env python3
"""Where a sequential tutorial-six call spends its time, read off the wire.

    python3 bench/latency_split.py                  # ours, lapin, amqprs: 3 alternating rounds of 3,000 calls
    python3 bench/latency_split.py --only ours,amqprs --calls 5000 --rounds 5

For each implementation it starts the implementation's own server (prefetch 1), captures loopback port 5672 with
tshark while the implementation's client makes sequential fib(1) calls, and splits every call by the times the
packets crossed `lo`:

    t0  client -> broker   basic.publish to rpc_queue           (the request)
    t1  broker -> server   basic.deliver from rpc_queue
    t2  server -> broker   basic.publish to the reply queue      (+ basic.ack)
    t3  broker -> client   basic.deliver from the reply queue
    t0' client -> broker   the next request

    broker in   = t1 - t0     the broker routes the request and delivers it to the server
    server      = t2 - t1     the server is woken, reads, answers, writes       (the server's own share)
    broker out  = t3 - t2     the broker routes the reply and delivers it to the client
    client      = t0' - t3    the client is woken, reads, completes the call, sends the next one
    wire total  = t3 - t0

`server` and `client` are what an implementation controls; the two broker hops are RabbitMQ's, the same for
everyone. A call's latency as the client measures it is the wire total plus the client's own time before t0 and
after t3. Medians of per-call values, then the median over rounds. Needs tshark and permission to capture on lo.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the implementations and broker helpers)

PUBLISH, DELIVER = '40', '60'
PARTS = ('broker in', 'server', 'broker out', 'client', 'wire total')


def split(pcap):
    """Per-call intervals (µs) from a capture of one sequential run."""
    out = subprocess.run(
        ['tshark', '-r', pcap, '-Y', 'amqp', '-T', 'fields', '-e', 'frame.time_epoch',
         '-e', 'amqp.method.method', '-e', 'amqp.method.arguments.routing_key',
         '-E', 'separator=|', '-E', 'occurrence=a', '-E', 'aggregator=,'],
        capture_output=True, text=True, check=True).stdout
    events = []
    for line in out.splitlines():
        t, methods, keys = line.split('|')
        methods, keys = methods.split(','), keys.split(',')
        to_queue = 'rpc_queue' in keys
        to_reply = any(k and k != 'rpc_queue' for k in keys)
        if PUBLISH in methods and to_queue:
            events.append(('t0', float(t)))
        elif DELIVER in methods and to_queue:
            events.append(('t1', float(t)))
        elif PUBLISH in methods and to_reply:
            events.append(('t2', float(t)))
        elif DELIVER in methods and to_reply:
            events.append(('t3', float(t)))
    parts = {p: [] for p in PARTS}
    call = {}
    for kind, t in events:
        if kind == 't0':
            if 't3' in call:
                parts['client'].append(t - call['t3'])
            call = {'t0': t}
        elif kind not in call and 't0' in call:
            call[kind] = t
            if kind == 't1':
                parts['broker in'].append(t - call['t0'])
            elif kind == 't2' and 't1' in call:
                parts['server'].append(t - call['t1'])
            elif kind == 't3' and 't2' in call:
                parts['broker out'].append(t - call['t2'])
                parts['wire total'].append(t - call['t0'])
    return {p: statistics.median(v) * 1e6 for p, v in parts.items() if v}, len(parts['wire total'])


def run_once(name, impl, calls, fib):
    compare.delete_rpc_queue()
    server = subprocess.Popen(impl['server'](1), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    with tempfile.TemporaryDirectory() as tmp:
        pcap = os.path.join(tmp, f'{name}.pcap')
        capture = None
        try:
            compare.wait_for_consumer(server)
            capture = subprocess.Popen(['tshark', '-q', '-i', 'lo', '-f', 'tcp port 5672', '-w', pcap],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while not os.path.exists(pcap) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # tshark is listening once the file exists and dumpcap has started
            result = compare.run_client(impl['client'](calls, 1, fib), timeout=600)
            time.sleep(0.3)
        finally:
            if capture is not None:
                capture.send_signal(signal.SIGINT)
                capture.wait(timeout=10)
            compare.stop(server)
        parts, matched = split(pcap)
    parts['client-measured p50'] = result['p50_us']
    return parts, matched


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--only', default='ours,lapin,amqprs')
    p.add_argument('--calls', type=int, default=3000)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--fib', type=int, default=1)
    args = p.parse_args()
    impls = compare.impls()
    names = args.only.split(',')
    results = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            compare.log(f'[split] round {r + 1}/{args.rounds}: {name} (load {compare.load1():.2f})')
            parts, matched = run_once(name, impls[name], args.calls, args.fib)
            if matched < args.calls * 0.9:
                raise RuntimeError(f'{name}: only {matched} of {args.calls} calls found in the capture')
            results[name].append(parts)
    cols = PARTS + ('client-measured p50',)
    print(f'Sequential fib({args.fib}) calls, C=1, prefetch 1; medians (µs) of per-call values, median of '
          f'{args.rounds} alternating rounds of {args.calls} calls.\n')
    print('| impl | ' + ' | '.join(cols) + ' | server + client |')
    print('|---|' + '---:|' * (len(cols) + 1))
    for name in names:
        med = {c: statistics.median(r[c] for r in results[name]) for c in cols}
        own = med['server'] + med['client']
        print(f'| {name} | ' + ' | '.join(f'{med[c]:.0f}' for c in cols) + f' | {own:.0f} |')


if __name__ == '__main__':
    main()
