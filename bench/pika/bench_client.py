#!/usr/bin/env python3
"""RabbitMQ tutorial six's pika client (tests/pika/rpc_client.py), timed.

    bench_client.py [--calls N] [--inflight C] [--fib K] [--json] [--uri U]

The connection, callback queue and call are the tutorial's FibonacciRpcClient. With --inflight C > 1 it keeps C
requests published and publishes the next one as each reply arrives (the tutorial has one call in flight). It
prints the same JSON keys as `amqp-rpc bench --json`; percentiles come from the sorted latencies, exactly.
"""
import argparse
import json
import resource
import sys
import time
import uuid

import pika


def peak_rss_bytes():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class FibonacciRpcClient(object):

    def __init__(self, uri):
        self.connection = pika.BlockingConnection(pika.URLParameters(uri))
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue='', exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(
            queue=self.callback_queue,
            on_message_callback=self.on_response,
            auto_ack=True)
        self.pending = {}   # correlation id -> start time (ns)
        self.latencies = []

    def on_response(self, ch, method, props, body):
        started = self.pending.pop(props.correlation_id, None)
        if started is not None:
            self.latencies.append((time.perf_counter_ns() - started) / 1000.0)
            int(body)

    def publish(self, n):
        corr_id = str(uuid.uuid4())
        self.pending[corr_id] = time.perf_counter_ns()
        self.channel.basic_publish(
            exchange='',
            routing_key='rpc_queue',
            properties=pika.BasicProperties(
                reply_to=self.callback_queue,
                correlation_id=corr_id,
            ),
            body=str(n))

    def run(self, calls, inflight, n):
        sent = 0
        while sent < min(inflight, calls):
            self.publish(n)
            sent += 1
        while len(self.latencies) < calls:
            done = len(self.latencies)
            self.connection.process_data_events(time_limit=None)
            for _ in range(len(self.latencies) - done):
                if sent < calls:
                    self.publish(n)
                    sent += 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--calls', type=int, default=1000)
    p.add_argument('--inflight', type=int, default=1)
    p.add_argument('--fib', type=int, default=1)
    p.add_argument('--json', action='store_true')
    p.add_argument('--uri', default='amqp://guest:guest@127.0.0.1:5672/%2f')
    a = p.parse_args()

    client = FibonacciRpcClient(a.uri)
    t0, c0 = time.perf_counter(), cpu_seconds()
    client.run(a.calls, a.inflight, a.fib)
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    client.connection.close()

    lat = sorted(client.latencies)

    def q(p):
        return int(lat[min(len(lat) - 1, int(p * len(lat)))])

    report = {
        'client': 'pika', 'calls': a.calls, 'inflight': a.inflight, 'elapsed_s': elapsed,
        'calls_per_sec': a.calls / elapsed, 'p50_us': q(0.5), 'p90_us': q(0.9), 'p99_us': q(0.99),
        'p999_us': q(0.999), 'max_us': int(lat[-1]), 'mean_us': sum(lat) / len(lat),
        'cpu_us_per_call': cpu * 1e6 / a.calls, 'peak_rss_bytes': peak_rss_bytes(),
    }
    if a.json:
        print(json.dumps(report))
    else:
        print(f"pika: {a.calls} calls, {a.inflight} in flight, {elapsed:.2f} s: {report['calls_per_sec']:.0f} calls/s")
        print(f"latency µs: p50 {q(0.5)} p90 {q(0.9)} p99 {q(0.99)} p99.9 {q(0.999)} max {report['max_us']}")
        print(f"client CPU {report['cpu_us_per_call']:.1f} µs/call, peak RSS {report['peak_rss_bytes'] >> 20} MiB")


if __name__ == '__main__':
    sys.exit(main())
