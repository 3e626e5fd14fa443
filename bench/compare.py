#!/usr/bin/env python3
"""Tutorial-six RPC on RabbitMQ: amqp-rpc against lapin, amqprs and pika, side by side, on the same broker.

    python3 bench/compare.py                 # build everything once (release), run, print + write bench/RESULTS.md
    python3 bench/compare.py --rounds 5 --seq-calls 5000 --pipe-calls 50000
    python3 bench/compare.py --skip-build --only ours,amqprs --rows seq,pipe64

Every row runs the implementations alternately (ours, lapin, amqprs, pika, ours, lapin, ... for --rounds rounds) and
reports medians, so a change of machine load hits every implementation alike. Each run gets its own RPC server
process (the implementation's own server: `amqp-rpc serve`, lapin-rpc server, amqprs-rpc server, the tutorial's
tests/pika/rpc_server.py), started on a freshly deleted `rpc_queue` and killed afterwards.

`blocking` is ours too: `amqp-rpc bench --blocking`, the blocking client (rpc_client::blocking on amqp-client's blocking
shell: one thread, no runtime, the caller's thread writes the request and reads the reply) against `amqp-rpc serve`,
in the sequential row only. `blocking@floor-srv` is the same client against the floor's server, so that the client
alone is compared with the floor's client (issue 13's targets).

`floor` (bench/floor-rpc) is not a peer but a bound: client and server on blocking sockets in one thread each, no
runtime, the request encoded once, one write per call (per batch when pipelined) and blocking reads. What it
reaches is about the best any client and server can do against this broker on this machine.

Measured per run: calls/s and latency percentiles (the client's HDR histogram), the client's CPU per call
(getrusage, reported by the client), the server's CPU per call and the broker's CPU per call (utime+stime of the
server process and of beam.smp from /proc, sampled around the client run), peak client RSS.

The broker-bound ceiling: on this machine client, server and broker share the cores, and the broker needs a
fixed CPU time per call. If the client and server took no CPU at all, the broker could at best use every core:
    ceiling calls/s = cores / broker CPU seconds per call
(broker CPU per call is the one measured during that very run, since it depends on how the client batches).
`of ceiling` is calls/s divided by that ceiling.
"""
import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, 'bench')
URI = os.environ.get('AMQP_URI', 'amqp://guest:guest@127.0.0.1:5672/%2f')
CLK_TCK = os.sysconf('SC_CLK_TCK')
CORES = os.cpu_count() or 1
PEERS = ('lapin', 'amqprs')


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The implementations: how to start each one's server, run its client, run its raw probe.

def ours_bin():
    target = os.environ.get('CARGO_TARGET_DIR', os.path.join(ROOT, 'target'))
    return os.path.join(target, 'release', 'amqp-rpc')


def peer_bin(name):
    target = os.environ.get('BENCH_TARGET_DIR', os.path.join(BENCH, 'target'))
    return os.path.join(target, 'release', f'{name}-rpc')


def impls():
    ours = ours_bin()
    pika_server = os.path.join(ROOT, 'tests', 'pika', 'rpc_server.py')
    pika_client = os.path.join(BENCH, 'pika', 'bench_client.py')

    def rust_peer(name):
        b = peer_bin(name)
        return {
            'server': lambda prefetch: [b, 'server', '--prefetch', str(prefetch), '--uri', URI],
            'client': lambda n, c, k, extra=(): [b, 'client', '--calls', str(n), '--inflight', str(c),
                                                  '--fib', str(k), '--json', '--uri', URI],
            'raw': lambda n: [b, 'raw', '--msgs', str(n), '--json', '--uri', URI],
        }

    return {
        'ours': {
            'server': lambda prefetch: [ours, 'serve', '--prefetch', str(prefetch), '--uri', URI],
            'client': lambda n, c, k, extra=(): [ours, 'bench', '--calls', str(n), '--inflight', str(c),
                                                  '--fib', str(k), '--json', '--uri', URI, *extra],
            'raw': lambda n: [ours, 'bench', '--raw', '--calls', str(n), '--json', '--uri', URI],
        },
        # The blocking client (one thread, sequential calls only): with our server, and with the floor's server.
        'blocking': {
            'server': lambda prefetch: [ours, 'serve', '--prefetch', str(prefetch), '--uri', URI],
            'client': lambda n, c, k, extra=(): [ours, 'bench', '--blocking', '--calls', str(n), '--fib', str(k),
                                                  '--json', '--uri', URI, *extra],
        },
        'blocking@floor-srv': {
            'server': lambda prefetch: [peer_bin('floor'), 'server', '--prefetch', str(prefetch), '--uri', URI],
            'client': lambda n, c, k, extra=(): [ours, 'bench', '--blocking', '--calls', str(n), '--fib', str(k),
                                                  '--json', '--uri', URI, *extra],
        },
        'lapin': rust_peer('lapin'),
        'amqprs': rust_peer('amqprs'),
        # Not a peer: the floor of a sequential call (bench/floor-rpc: blocking socket, one thread, request
        # pre-encoded, one write and blocking reads per call), so the table shows what no client can beat here.
        'floor': rust_peer('floor'),
        'pika': {
            # The tutorial's server is fixed at prefetch 1, so pika appears in the sequential row only.
            'server': lambda prefetch: [sys.executable, pika_server],
            'client': lambda n, c, k, extra=(): [sys.executable, pika_client, '--calls', str(n), '--inflight',
                                                  str(c), '--fib', str(k), '--json', '--uri', URI],
        },
    }


# ---------------------------------------------------------------------------------------------------------------
# /proc sampling

def proc_cpu_seconds(pid):
    """utime + stime of a process (and its reaped children do not matter here), in seconds."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def beam_pids():
    """The broker process: the beam.smp that listens on the URI's port (other RabbitMQ nodes may run on this
    machine, e.g. a test cluster, and must not count). Falls back to every beam.smp."""
    port = int(URI.rsplit(':', 1)[1].split('/')[0]) if URI.count(':') >= 2 else 5672
    inodes = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    cols = line.split()
                    if int(cols[1].rsplit(':', 1)[1], 16) == port and cols[3] == '0A':  # 0A: LISTEN
                        inodes.add(cols[9])
        except OSError:
            pass
    beams = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/comm') as f:
                    if f.read().strip() != 'beam.smp':
                        continue
            except OSError:
                continue
            beams.append(int(entry))
            try:
                for fd in os.listdir(f'/proc/{entry}/fd'):
                    link = os.readlink(f'/proc/{entry}/fd/{fd}')
                    if link.startswith('socket:[') and link[8:-1] in inodes:
                        return [int(entry)]
            except OSError:
                pass
    return beams


def machine_busy():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open('/proc/stat') as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def load1():
    return os.getloadavg()[0]


# ---------------------------------------------------------------------------------------------------------------
# Broker housekeeping through pika (installed by scripts/broker.sh)

def delete_rpc_queue(queue='rpc_queue'):
    import pika
    conn = pika.BlockingConnection(pika.URLParameters(URI))
    try:
        conn.channel().queue_delete(queue)
    finally:
        conn.close()


def wait_for_consumer(proc, timeout=20.0, queue='rpc_queue'):
    """Waits until the request queue exists and has a consumer, i.e. the server is ready."""
    import pika
    deadline = time.monotonic() + timeout
    conn = pika.BlockingConnection(pika.URLParameters(URI))
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f'server exited with {proc.returncode}: {proc_output(proc)}')
            ch = conn.channel()
            try:
                ok = ch.queue_declare(queue, passive=True)
                if ok.method.consumer_count >= 1:
                    return
                ch.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass  # 404: not declared yet
            time.sleep(0.05)
    finally:
        conn.close()
    raise RuntimeError('server did not start consuming rpc_queue in time')


def proc_output(proc):
    try:
        out, _ = proc.communicate(timeout=1)
        return (out or b'').decode(errors='replace')[-2000:]
    except subprocess.TimeoutExpired:
        return ''


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------------------------
# One measured run

def run_client(cmd, timeout):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f'{cmd[0]} exited {p.returncode}: {p.stderr.decode(errors="replace")[-2000:]}')
    lines = [l for l in p.stdout.decode().splitlines() if l.startswith('{')]
    if not lines:
        raise RuntimeError(f'no JSON from {cmd}: {p.stdout.decode()[-500:]}')
    return json.loads(lines[-1])


def measure(name, impl, row, args):
    """Runs one implementation once in one row; returns its metrics."""
    count = row.get('calls') or row.get('msgs')
    server = None
    if row['kind'] == 'rpc':
        delete_rpc_queue()
        server = subprocess.Popen(impl['server'](row['prefetch']), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, start_new_session=True)
    try:
        if server is not None:
            wait_for_consumer(server)
        beams = beam_pids()
        b0 = sum(proc_cpu_seconds(p) for p in beams)
        s0 = proc_cpu_seconds(server.pid) if server else 0.0
        m0 = machine_busy()
        if row['kind'] == 'rpc':
            cmd = impl['client'](row['calls'], row['inflight'], args.fib, row.get('extra', ()))
        else:
            cmd = impl['raw'](row['msgs'])
        result = run_client(cmd, timeout=args.run_timeout)
        b1 = sum(proc_cpu_seconds(p) for p in beams)
        s1 = proc_cpu_seconds(server.pid) if server else 0.0
        m1 = machine_busy()
        if server is not None and server.poll() is not None:
            raise RuntimeError(f'{name} server died during the run: {proc_output(server)}')
    finally:
        if server is not None:
            stop(server)
    elapsed = result['elapsed_s']
    result['broker_cpu_us_per_op'] = (b1 - b0) * 1e6 / count
    result['server_cpu_us_per_call'] = (s1 - s0) * 1e6 / count if server else None
    busy, total = m1[0] - m0[0], m1[1] - m0[1]
    result['machine_busy_pct'] = 100.0 * busy / total if total else None
    rate = result.get('calls_per_sec') or result.get('msgs_per_sec')
    broker_s = (b1 - b0) / count
    result['ceiling_per_sec'] = CORES / broker_s if broker_s > 0 else None
    result['of_ceiling'] = rate / result['ceiling_per_sec'] if result['ceiling_per_sec'] else None
    result['wall_s'] = elapsed
    return result


# ---------------------------------------------------------------------------------------------------------------
# Rows, rounds, medians, table

def rows(args):
    all_rows = {
        'seq': dict(title=f'sequential: C=1, prefetch 1, {args.seq_calls} calls', kind='rpc', calls=args.seq_calls,
                    inflight=1, prefetch=1,
                    impls=['ours', 'blocking', 'blocking@floor-srv', 'lapin', 'amqprs', 'pika', 'floor']),
        'pipe64': dict(title=f'pipelined: C=64, prefetch 64, {args.pipe_calls} calls', kind='rpc',
                       calls=args.pipe_calls, inflight=64, prefetch=64, impls=['ours', 'lapin', 'amqprs', 'floor']),
        'pipe256': dict(title=f'pipelined: C=256, prefetch 64, {args.pipe_calls} calls', kind='rpc',
                        calls=args.pipe_calls, inflight=256, prefetch=64, impls=['ours', 'lapin', 'amqprs']),
        'raw': dict(title=f'broker ceiling: publish + consume through one queue, {args.raw_msgs} msgs of 16 bytes',
                    kind='raw', msgs=args.raw_msgs, impls=['ours', 'lapin', 'amqprs']),
        'drt': dict(title='ours: direct reply-to (amq.rabbitmq.reply-to) against a declared callback queue',
                    kind='rpc-variants', variants=[
                        ('seq, callback queue', dict(calls=args.seq_calls, inflight=1, prefetch=1, extra=())),
                        ('seq, direct reply-to', dict(calls=args.seq_calls, inflight=1, prefetch=1,
                                                      extra=('--direct-reply-to',))),
                        ('C=64, callback queue', dict(calls=args.pipe_calls, inflight=64, prefetch=64, extra=())),
                        ('C=64, direct reply-to', dict(calls=args.pipe_calls, inflight=64, prefetch=64,
                                                       extra=('--direct-reply-to',))),
                    ]),
        'rss10k': dict(title='ours: 10,000 calls in flight (prefetch 64)', kind='rpc-variants', variants=[
            ('C=10000', dict(calls=args.rss_calls, inflight=10000, prefetch=64, extra=())),
        ]),
    }
    return [(k, all_rows[k]) for k in args.rows.split(',')]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results):
    keys = set().union(*[r.keys() for r in results])
    out = {}
    for k in keys:
        vals = [r.get(k) for r in results]
        if all(isinstance(v, (int, float)) or v is None for v in vals):
            out[k] = med(vals)
    out['runs'] = len(results)
    return out


def fmt(v, digits=0):
    if v is None:
        return '—'
    if digits == 0:
        return f'{v:,.0f}'
    return f'{v:,.{digits}f}'


def ratio(a, b):
    if a is None or b is None or b == 0:
        return '—'
    return f'{a / b:.2f}×'


def table_rpc(row, summary):
    peers = [summary[p] for p in PEERS if p in summary]
    best_rate = max((p['calls_per_sec'] for p in peers), default=None)
    best_p50 = min((p['p50_us'] for p in peers), default=None)
    best_cpu = min((p['cpu_us_per_call'] for p in peers), default=None)
    lines = [f'### {row["title"]}', '',
             '| impl | calls/s | ×best peer | p50 µs | ×best peer | p90 µs | p99 µs | p99.9 µs | max µs '
             '| client CPU µs/call | ×best peer | server CPU µs/call | broker CPU µs/call | of ceiling '
             '| peak RSS MiB |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for name in row['impls']:
        s = summary.get(name)
        if not s:
            lines.append(f'| {name} | failed |' + ' |' * 14)
            continue
        lines.append(
            f'| {name} | {fmt(s["calls_per_sec"])} | {ratio(s["calls_per_sec"], best_rate)} '
            f'| {fmt(s["p50_us"])} | {ratio(s["p50_us"], best_p50)} | {fmt(s["p90_us"])} | {fmt(s["p99_us"])} '
            f'| {fmt(s.get("p999_us"))} | {fmt(s["max_us"])} '
            f'| {fmt(s["cpu_us_per_call"], 1)} | {ratio(s["cpu_us_per_call"], best_cpu)} '
            f'| {fmt(s.get("server_cpu_us_per_call"), 1)} | {fmt(s.get("broker_cpu_us_per_op"), 1)} '
            f'| {fmt(100 * s["of_ceiling"] if s.get("of_ceiling") else None)}% '
            f'| {fmt(s["peak_rss_bytes"] / 2**20, 1)} |')
    return lines


def table_raw(row, summary):
    best = max((summary[p]['msgs_per_sec'] for p in PEERS if p in summary), default=None)
    lines = [f'### {row["title"]}', '',
             '| impl | msgs/s | ×best peer | client CPU µs/msg | broker CPU µs/msg | broker-bound msgs/s |',
             '|---|---:|---:|---:|---:|---:|']
    for name in row['impls']:
        s = summary.get(name)
        if not s:
            lines.append(f'| {name} | failed | | | | |')
            continue
        lines.append(f'| {name} | {fmt(s["msgs_per_sec"])} | {ratio(s["msgs_per_sec"], best)} '
                     f'| {fmt(s["cpu_us_per_msg"], 1)} | {fmt(s.get("broker_cpu_us_per_op"), 1)} '
                     f'| {fmt(s.get("ceiling_per_sec"))} |')
    return lines


def table_variants(row, summary):
    lines = [f'### {row["title"]}', '',
             '| variant | calls/s | p50 µs | p99 µs | max µs | client CPU µs/call | broker CPU µs/call '
             '| peak RSS MiB |', '|---|---:|---:|---:|---:|---:|---:|---:|']
    for label, _ in row['variants']:
        s = summary.get(label)
        if not s:
            lines.append(f'| {label} | failed | | | | | | |')
            continue
        lines.append(f'| {label} | {fmt(s["calls_per_sec"])} | {fmt(s["p50_us"])} | {fmt(s["p99_us"])} '
                     f'| {fmt(s["max_us"])} | {fmt(s["cpu_us_per_call"], 1)} '
                     f'| {fmt(s.get("broker_cpu_us_per_op"), 1)} | {fmt(s["peak_rss_bytes"] / 2**20, 1)} |')
    return lines


def verdicts(summaries):
    """The issue's targets, checked against this run's medians."""
    out = []

    def check(label, ok, detail):
        out.append(f'- {"met" if ok else "NOT met"}: {label} ({detail})')

    seq = summaries.get('seq', {})
    if 'ours' in seq:
        peers = [seq[p] for p in PEERS if p in seq]
        if peers:
            best = min(p['p50_us'] for p in peers)
            r = seq['ours']['p50_us'] / best
            check('sequential p50 ≤ 0.75× the faster of lapin/amqprs', r <= 0.75, f'{r:.2f}×')
            best_cpu = min(p['cpu_us_per_call'] for p in peers)
            r = seq['ours']['cpu_us_per_call'] / best_cpu
            check('sequential client CPU per call ≤ 0.5× theirs', r <= 0.5, f'{r:.2f}×')
        if 'pika' in seq:
            r = seq['ours']['p50_us'] / seq['pika']['p50_us']
            check("sequential p50 ≤ 0.6× pika's", r <= 0.6, f'{r:.2f}×')
        if 'floor' in seq and peers:
            f = seq['floor']
            best = min(p['p50_us'] for p in peers)
            best_cpu = min(p['cpu_us_per_call'] for p in peers)
            out.append(f'- the floor (bench/floor-rpc, blocking client and server, no runtime): p50 '
                       f'{f["p50_us"]:,.0f} µs = {f["p50_us"] / best:.2f}× the faster peer\'s, client CPU '
                       f'{f["cpu_us_per_call"]:.1f} µs/call = {f["cpu_us_per_call"] / best_cpu:.2f}× theirs; ours is '
                       f'{seq["ours"]["p50_us"] / f["p50_us"]:.2f}× and {seq["ours"]["cpu_us_per_call"] / f["cpu_us_per_call"]:.2f}× '
                       'the floor')
    f = seq.get('floor')
    for name, label in (('blocking', 'with our server'), ('blocking@floor-srv', "with the floor's server")):
        b = seq.get(name)
        if not (b and f):
            continue
        r = b['cpu_us_per_call'] / f['cpu_us_per_call']
        check(f'blocking client {label}: sequential client CPU per call ≤ 1.15× the floor\'s (issue 13)', r <= 1.15,
              f'{r:.2f}×: {b["cpu_us_per_call"]:.1f} vs {f["cpu_us_per_call"]:.1f} µs/call')
        r = b['p50_us'] / f['p50_us']
        check(f'blocking client {label}: sequential p50 ≤ 1.05× the floor\'s (issue 13)', r <= 1.05,
              f'{r:.2f}×: {b["p50_us"]:,.0f} vs {f["p50_us"]:,.0f} µs')
    pipe = summaries.get('pipe64', {})
    if 'ours' in pipe:
        peers = [pipe[p] for p in PEERS if p in pipe]
        if peers:
            best = max(p['calls_per_sec'] for p in peers)
            r = pipe['ours']['calls_per_sec'] / best
            check('C=64 calls/s ≥ 1.3× the faster of lapin/amqprs', r >= 1.3, f'{r:.2f}×')
            best_cpu = min(p['cpu_us_per_call'] for p in peers)
            r = pipe['ours']['cpu_us_per_call'] / best_cpu
            check('C=64 client CPU per call ≤ 0.5× theirs', r <= 0.5, f'{r:.2f}×')
        oc = pipe['ours'].get('of_ceiling')
        if oc is not None:
            check('C=64 within 80% of the broker-bound ceiling', oc >= 0.8,
                  f'{100 * oc:.0f}% of {pipe["ours"]["ceiling_per_sec"]:,.0f} calls/s')
        f = pipe.get('floor')
        if f and f.get('of_ceiling') is not None:
            out.append(f'- the floor at C=64: {f["calls_per_sec"]:,.0f} calls/s, {100 * f["of_ceiling"]:.0f}% of its '
                       f'ceiling, client {f["cpu_us_per_call"]:.1f} + server '
                       f'{fmt(f.get("server_cpu_us_per_call"), 1)} µs/call (ours: '
                       f'{pipe["ours"]["cpu_us_per_call"]:.1f} + {fmt(pipe["ours"].get("server_cpu_us_per_call"), 1)})')
    rss = summaries.get('rss10k', {}).get('C=10000')
    if rss:
        mb = rss['peak_rss_bytes'] / 2**20
        check('10,000 calls in flight in under 64 MB RSS', rss['peak_rss_bytes'] < 64 * 2**20, f'{mb:.1f} MiB')
    drt = summaries.get('drt', {})
    for shape in ('seq', 'C=64'):
        a, b = drt.get(f'{shape}, callback queue'), drt.get(f'{shape}, direct reply-to')
        if a and b:
            out.append(f'- direct reply-to vs callback queue, {shape}: {b["calls_per_sec"]:,.0f} vs '
                       f'{a["calls_per_sec"]:,.0f} calls/s ({b["calls_per_sec"] / a["calls_per_sec"]:.2f}×), '
                       f'p50 {b["p50_us"]:,.0f} vs {a["p50_us"]:,.0f} µs')
    return out


def build(args):
    log('building amqp-rpc (release) and the peers (release)...')
    subprocess.run(['cargo', 'build', '--release', '--bin', 'amqp-rpc'], cwd=ROOT, check=True)
    # The peers have their own target dir even when CARGO_TARGET_DIR is set for the root workspace.
    subprocess.run(['cargo', 'build', '--release', '--manifest-path', os.path.join(BENCH, 'Cargo.toml'),
                    '--target-dir', os.environ.get('BENCH_TARGET_DIR', os.path.join(BENCH, 'target'))],
                   cwd=ROOT, check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--seq-calls', type=int, default=3000)
    p.add_argument('--pipe-calls', type=int, default=30000)
    p.add_argument('--raw-msgs', type=int, default=200000)
    p.add_argument('--rss-calls', type=int, default=20000)
    p.add_argument('--fib', type=int, default=1)
    p.add_argument('--rows', default='seq,pipe64,pipe256,raw,drt,rss10k')
    p.add_argument('--only', default='', help='comma-separated implementations to run (default: all)')
    p.add_argument('--skip-build', action='store_true')
    p.add_argument('--run-timeout', type=float, default=120.0)
    p.add_argument('--wait-load', type=float, default=0.0,
                   help='before starting, wait (at most 10 min) for the 1-minute load average to drop below this')
    p.add_argument('--out', default=os.path.join(BENCH, 'RESULTS.md'))
    args = p.parse_args()

    # The broker up and pika importable (the pika peer, and queue housekeeping here, use it).
    subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'broker.sh')], check=True)
    if not args.skip_build:
        build(args)
    if args.wait_load:
        deadline = time.monotonic() + 600
        while load1() >= args.wait_load and time.monotonic() < deadline:
            log(f'load {load1():.2f} >= {args.wait_load}: waiting')
            time.sleep(15)
    if not beam_pids():
        log('warning: no beam.smp process visible: broker CPU and the ceiling will be missing')

    only = set(filter(None, args.only.split(',')))
    table = impls()
    started = time.time()
    load_start = load1()
    summaries, raw = {}, {}
    plan = rows(args)
    for _, row in plan:
        if 'impls' in row:
            row['impls'] = [n for n in row['impls'] if not only or n in only]
    for key, row in plan:
        if row['kind'] == 'rpc-variants':
            if only and 'ours' not in only:
                continue
            order = [(label, dict(row=dict(kind='rpc', **spec), impl='ours')) for label, spec in row['variants']]
        else:
            order = [(name, dict(row=row, impl=name)) for name in row['impls'] if not only or name in only]
        results = {label: [] for label, _ in order}
        for rnd in range(args.rounds):
            for label, job in order:
                log(f'[{key}] round {rnd + 1}/{args.rounds}: {label} (load {load1():.2f})')
                for attempt in (1, 2):
                    try:
                        results[label].append(measure(job['impl'], table[job['impl']], job['row'], args))
                        break
                    except Exception as e:  # one failing implementation must not sink the table
                        log(f'  failed: {e!r}')
                        # The broker may have been restarted under us (other tests on this machine stop it):
                        # bring it back and try this run once more.
                        subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'broker.sh')], check=False)
        summaries[key] = {label: summarize(rs) for label, rs in results.items() if rs}
        raw[key] = results

    if not any(summaries.values()):
        log('every run failed: nothing written')
        sys.exit(1)
    lines = ['# Tutorial-six RPC on RabbitMQ: amqp-rpc and its peers', '',

             f'Command: `python3 bench/compare.py{"".join(" " + a for a in sys.argv[1:])}`', '',
             f'Machine: {CORES} cores, {platform.machine()}, Linux {platform.release()}; fib({args.fib}); '
             f'medians of {args.rounds} alternating rounds; load average {load_start:.2f} at start, '
             f'{load1():.2f} at end; {time.time() - started:.0f} s.', '',
             '`×best peer` compares with the better of lapin and amqprs in that column. `of ceiling` is calls/s '
             'divided by cores / (broker CPU per call): what the broker could do with every core to itself. '
             '`floor` is not a peer: bench/floor-rpc, a blocking single-threaded client and server with no runtime '
             'and almost no user-space work, i.e. about the least any implementation can cost on this machine and '
             'broker. `blocking` is our blocking client (one thread, no runtime) with our server; '
             "`blocking@floor-srv` the same client with the floor's server.", '']
    for key, row in plan:
        if key not in summaries:
            continue
        if row['kind'] == 'rpc':
            lines += table_rpc(row, summaries[key])
        elif row['kind'] == 'raw':
            lines += table_raw(row, summaries[key])
        else:
            lines += table_variants(row, summaries[key])
        lines.append('')
    lines += ['### Targets (issues 6 and 13)', ''] + verdicts(summaries) + ['']
    text = '\n'.join(lines)
    print(text)
    with open(args.out, 'w') as f:
        f.write(text)
    with open(os.path.splitext(args.out)[0] + '.json', 'w') as f:
        json.dump({'summaries': summaries, 'runs': raw}, f, indent=1)
    log(f'wrote {args.out}')


if __name__ == '__main__':
    main()
