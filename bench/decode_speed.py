#!/usr/bin/env python3
"""How fast `amqp-rpc decode` reads a large capture, in each view, against tshark (and against another build).

    python3 bench/decode_speed.py                       # capture 100,000 calls, time every view, 3 rounds
    python3 bench/decode_speed.py --calls 100000 --rounds 5 --tshark
    python3 bench/decode_speed.py --capture /tmp/big.pcapng --baseline /tmp/amqp-rpc-old --modes summary,tree

The capture is made here, not committed: `dumpcap -i lo -f "tcp port 5672"` (root) records
`amqp-rpc bench -n CALLS -c 16 --with-server` on a queue of its own (client, server and the direct traffic
of the broker; other programs using the broker meanwhile only add frames). dumpcap's count of dropped
packets is printed: a capture with drops still measures speed, but its calls do not all pair.

Each view reads the file with its output sent to /dev/null; the views (and, with --baseline, the two
builds) run alternately for --rounds rounds and the medians are reported: wall time, CPU time (user +
system, getrusage of the child: the steadier figure on a shared machine), MB/s of CPU time, peak RSS. `--tshark` adds one run of `tshark -r FILE -V -Y amqp`.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URI = os.environ.get('AMQP_URI', 'amqp://guest:guest@127.0.0.1:5672/%2f')

MODES = {
    'summary': ['--summary'],
    'tree': [],
    'json': ['--json'],
    'rpc': ['--rpc'],
    'rpc-json': ['--rpc', '--json'],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def default_bin():
    target = os.environ.get('CARGO_TARGET_DIR', os.path.join(ROOT, 'target'))
    return os.path.join(target, 'release', 'amqp-rpc')


def make_capture(binary, calls, inflight, path):
    queue = f'decode-speed-{os.getpid()}'
    dumpcap = subprocess.Popen(['dumpcap', '-i', 'lo', '-f', 'tcp port 5672', '-B', '256', '-w', path],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # dumpcap prints "Capturing on" a moment before its filter is attached.
    line = ''
    deadline = time.time() + 15
    while 'Capturing on' not in line:
        if time.time() > deadline or dumpcap.poll() is not None:
            dumpcap.kill()
            raise SystemExit('dumpcap did not start (run as root?)')
        line = dumpcap.stderr.readline()
    time.sleep(1.0)
    try:
        bench = subprocess.run([binary, 'bench', '-n', str(calls), '-c', str(inflight), '--with-server',
                                '--queue', queue, '--uri', URI], capture_output=True, text=True, timeout=1800)
        if bench.returncode != 0:
            raise SystemExit(f'bench failed:\n{bench.stderr}')
        time.sleep(0.5)
    finally:
        dumpcap.send_signal(2)
        rest = dumpcap.communicate(timeout=30)[1]
    drops = [l for l in rest.splitlines() if 'dropped' in l.lower()]
    log(f'capture: {path} {os.path.getsize(path) / 1e6:.1f} MB; dumpcap: {"; ".join(drops) or rest.strip()}')


def run_once(cmd):
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one run, output to /dev/null."""
    start = time.perf_counter()
    with open(os.devnull, 'wb') as null:
        proc = subprocess.Popen(cmd, stdout=null, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors='replace')
    if proc.returncode not in (0, 1):
        raise SystemExit(f'{cmd}: exit {proc.returncode}\n{err}')
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def supports(binary, flag):
    help_text = subprocess.run([binary, 'decode', '--help'], capture_output=True, text=True).stdout
    return flag in help_text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--capture', help='an existing capture to read (else one is made)')
    ap.add_argument('--keep', help='where to keep the capture made (default: a temporary file, removed)')
    ap.add_argument('--calls', type=int, default=100_000)
    ap.add_argument('--inflight', type=int, default=16)
    ap.add_argument('--bin', default=default_bin())
    ap.add_argument('--baseline', help='another amqp-rpc build to time alternately with --bin')
    ap.add_argument('--modes', default=','.join(MODES))
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--tshark', action='store_true')
    args = ap.parse_args()

    tmp = None
    path = args.capture
    if not path:
        path = args.keep or tempfile.mkstemp(suffix='.pcapng', prefix='decode-speed-')[1]
        tmp = None if args.keep else path
        make_capture(args.bin, args.calls, args.inflight, path)
    size = os.path.getsize(path)
    try:
        builds = [('new', args.bin)] + ([('base', args.baseline)] if args.baseline else [])
        runs = {}
        modes = [m for m in args.modes.split(',') if m]
        for r in range(args.rounds):
            for mode in modes:
                for name, binary in builds:
                    flags = MODES[mode]
                    if flags and not all(supports(binary, f) for f in flags if f.startswith('--rpc')):
                        continue
                    wall, cpu, rss = run_once([binary, 'decode', *flags, '--color', 'never', path])
                    runs.setdefault((mode, name), []).append((wall, cpu, rss))
                    log(f'round {r + 1} {mode:9} {name}: {wall:.2f} s, CPU {cpu:.2f} s, {rss:.0f} MB')
        if args.tshark:
            wall, cpu, rss = run_once(['tshark', '-r', path, '-V', '-Y', 'amqp'])
            runs[('tshark -V -Y amqp', 'tshark')] = [(wall, cpu, rss)]
        print(f'\ncapture {path}: {size / 1e6:.1f} MB, {args.rounds} round(s), medians\n')
        print('| view | build | wall s | CPU s | MB/s (CPU) | peak RSS MB |')
        print('|---|---|---:|---:|---:|---:|')
        for (mode, name), samples in runs.items():
            wall = statistics.median(w for w, _, _ in samples)
            cpu = statistics.median(c for _, c, _ in samples)
            rss = max(m for _, _, m in samples)
            print(f'| {mode} | {name} | {wall:.2f} | {cpu:.2f} | {size / 1e6 / cpu:.1f} | {rss:.0f} |')
    finally:
        if tmp:
            os.unlink(tmp)


if __name__ == '__main__':
    main()
