#!/usr/bin/env python3
"""Seed fuzz/corpus/connection/ (programs for fuzz/src/connection.rs) from real captures.

For each capture in fixtures/captures/ (the client's and the broker's streams of one
connection), the client's calls become application calls and the broker's frames become broker
bytes, interleaved as they happened: after each synchronous call, the broker's frames up to and
including its reply. Two seeds per capture: one after the harness's own scripted handshake (the
broker's handshake frames dropped), one with the broker's handshake from the capture.

A few hand-made programs add what the captures lack: confirms with `multiple`, blocked and
unblocked, channel.flow, a crossing channel close, the broker's connection.close, a consumer
cancelled by the broker and nowait cancels with deliveries in flight, basic.return, reply
and heartbeat deadlines.

Files are named by the SHA-1 of their content. Run from anywhere; re-running adds nothing twice.
"""
import hashlib
import pathlib
import struct

from seed_corpus import frames

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus" / "connection"
# The large-body capture (300 KB) would only slow the fuzzer; smallframes covers split bodies.
MAX_SEED = 40_000

# flags bits (see fuzz/src/connection.rs)
HB = {0: 0, 1: 1, 4: 2, 60: 3}
FRAME_MAX_4096 = 1 << 2
HANDSHAKE_IN_INPUT = 1 << 3
REPLY_1S = 1 << 4
CHANNEL_MAX_3 = 1 << 6
EOF_AT_END = 1 << 7

# (class, method) of a client method -> application op
OPS = {
    (20, 10): 0, (50, 10): 1, (60, 10): 2, (60, 20): 3, (60, 30): 5, (85, 10): 7, (60, 70): 8,
    (20, 40): 9, (60, 40): 10, (60, 80): 11, (60, 90): 12, (60, 120): 13, (40, 10): 14,
    (50, 20): 15, (40, 30): 16, (40, 40): 17, (50, 50): 18, (50, 30): 19, (50, 40): 20,
    (40, 20): 21, (60, 110): 22, (90, 10): 23, (90, 20): 24, (10, 50): 25, (20, 20): 26,
}
# Synchronous client methods -> the broker methods that answer them
REPLIES = {
    (20, 10): {(20, 11)}, (50, 10): {(50, 11)}, (60, 10): {(60, 11)}, (60, 20): {(60, 21)},
    (60, 30): {(60, 31)}, (85, 10): {(85, 11)}, (60, 70): {(60, 71), (60, 72)},
    (20, 40): {(20, 41)}, (40, 10): {(40, 11)}, (50, 20): {(50, 21)}, (40, 30): {(40, 31)},
    (40, 40): {(40, 51)}, (50, 50): {(50, 51)}, (50, 30): {(50, 31)}, (50, 40): {(50, 41)},
    (40, 20): {(40, 21)}, (60, 110): {(60, 111)}, (90, 10): {(90, 11)}, (90, 20): {(90, 21)},
    (10, 50): {(10, 51)}, (20, 20): {(20, 21)},
}


def write(data):
    CORPUS.mkdir(parents=True, exist_ok=True)
    (CORPUS / hashlib.sha1(data).hexdigest()).write_bytes(data)


# ---------------------------------------------------------------- program records

def data_record(b, piece=0):
    out = b""
    for at in range(0, max(len(b), 1), 0xFFFF):
        chunk = b[at:at + 0xFFFF]
        out += bytes([piece << 2]) + struct.pack(">H", len(chunk)) + chunk
    return out


def op(code, arg=0):
    return bytes([(code << 2) | 1, arg])


def clock(quarters, late=False):
    return bytes([(quarters << 2) | 2 | (0x80 if late else 0)])


# ---------------------------------------------------------------- frames from captures

def parse(frame):
    kind, channel = frame[0], struct.unpack(">H", frame[1:3])[0]
    payload = frame[7:-1]
    key = struct.unpack(">HH", payload[:4]) if kind == 1 and len(payload) >= 4 else None
    return kind, channel, key, payload


def handshake_end(broker):
    """Index after the broker's connection.open-ok (or its refusing close)."""
    for i, f in enumerate(broker):
        _, _, key, _ = parse(f)
        if key in ((10, 41), (10, 50)):
            return i + 1
    return len(broker)


def calls(client):
    """The client's method frames after the handshake, with their ops and args."""
    for f in client:
        if f.startswith(b"AMQP"):
            continue
        kind, channel, key, payload = parse(f)
        if kind != 1 or key in ((10, 11), (10, 31), (10, 40)) or key not in OPS:
            continue
        code = OPS[key]
        arg = (channel - 1) & 7 if channel else 0
        if key == (60, 20) and len(payload) > 6:
            # basic.consume: the no-ack bit (2nd) after queue and consumer-tag
            at = 6
            for _ in range(2):
                at += 1 + payload[at]
            if at < len(payload) and payload[at] & 2:
                code = 4
        yield key, code, arg, channel


def program_from_capture(client, broker, tune):
    """Records replaying the capture after the handshake."""
    out = b""
    i = 0
    for key, code, arg, channel in calls(client):
        out += op(code, arg)
        if key not in REPLIES:
            continue
        for j in range(i, len(broker)):
            kind, ch, k, _ = parse(broker[j])
            if ch == channel and k in REPLIES[key]:
                end = j + 1
                # the content of a get-ok travels with it
                while end < len(broker) and parse(broker[end])[0] in (2, 3) and parse(broker[end])[1] == ch:
                    end += 1
                out += data_record(b"".join(broker[i:end]))
                i = end
                break
    if i < len(broker):
        out += data_record(b"".join(broker[i:]))
    return out


def tune_of(broker):
    for f in broker:
        _, _, key, payload = parse(f)
        if key == (10, 30):
            return struct.unpack(">HIH", payload[4:12])
    return (2047, 131072, 0)


def flags_for(tune):
    channel_max, frame_max, heartbeat = tune
    hb = min(HB, key=lambda h: abs(h - heartbeat)) if heartbeat else 0
    f = HB[hb]
    if frame_max and frame_max <= 4096:
        f |= FRAME_MAX_4096
    return f


def capture_seeds():
    for broker_path in sorted((ROOT / "fixtures" / "captures").glob("*.broker.bin")):
        client_path = broker_path.with_name(broker_path.name.replace(".broker.", ".client."))
        broker = list(frames(broker_path.read_bytes()))
        client = list(frames(client_path.read_bytes())) if client_path.exists() else []
        tune = tune_of(broker)
        flags = flags_for(tune)
        end = handshake_end(broker)
        after = broker[end:]
        # The harness's scripted handshake, then the capture's calls and frames.
        if parse(broker[end - 1])[2] == (10, 41):
            seed = bytes([flags, 0]) + program_from_capture(client, after, tune)
            if len(seed) <= MAX_SEED:
                write(seed)
        # The broker's own handshake from the capture.
        seed = bytes([flags | HANDSHAKE_IN_INPUT, 0]) + data_record(b"".join(broker[:end]))
        seed += program_from_capture(client, after, tune)
        if len(seed) <= MAX_SEED:
            write(seed)
        # The whole broker stream in one read, then EOF.
        seed = bytes([flags | HANDSHAKE_IN_INPUT | EOF_AT_END, 0]) + data_record(b"".join(broker))
        if len(seed) <= MAX_SEED:
            write(seed)


# ---------------------------------------------------------------- hand-made programs

def sstr(s):
    return bytes([len(s)]) + s


def method(channel, cls, mid, args=b""):
    payload = struct.pack(">HH", cls, mid) + args
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


def header(channel, size):
    payload = struct.pack(">HHQH", 60, 0, size, 0)
    return struct.pack(">BHI", 2, channel, len(payload)) + payload + b"\xce"


def body(channel, data):
    return struct.pack(">BHI", 3, channel, len(data)) + data + b"\xce"


HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"


def open_ok(ch):
    return method(ch, 20, 11, struct.pack(">I", 0))


def consume_ok(ch, tag):
    return method(ch, 60, 21, sstr(tag))


def deliver(ch, tag, dtag, data, piece=4088):
    frames_ = method(ch, 60, 60, sstr(tag) + struct.pack(">QB", dtag, 0) + sstr(b"") + sstr(b"q"))
    frames_ += header(ch, len(data))
    for at in range(0, len(data), piece):
        frames_ += body(ch, data[at:at + piece])
    return frames_


def close(ch, cls, code, text):
    return method(ch, cls, 40 if cls == 20 else 50, struct.pack(">H", code) + sstr(text) + struct.pack(">HH", 0, 0))


def handmade():
    # A consumer: deliveries, acks, a nowait cancel with deliveries in flight, a broker cancel,
    # blocked/unblocked, flow.
    yield bytes([0, 0]) + op(0) + op(3) + op(4, 0) + data_record(
        open_ok(1) + consume_ok(1, b"c") + consume_ok(1, b"d")
        + deliver(1, b"c", 1, b"hello") + deliver(1, b"d", 2, b"")
    ) + op(11) + op(6) + data_record(
        deliver(1, b"c", 3, b"late") + deliver(1, b"d", 4, b"x")
        + method(0, 10, 60, sstr(b"low memory")) + method(0, 10, 61)
        + method(1, 20, 20, b"\x00") + method(1, 60, 30, sstr(b"d") + b"\x00")
    )
    # Confirms with multiple: a nack, acks, a publish that returns.
    yield bytes([0, 0]) + op(0) + op(7) + data_record(open_ok(1) + method(1, 85, 11)) \
        + op(10, 8) + op(10, 16) + op(10, 24) + op(10, 1) + data_record(
            method(1, 60, 80, struct.pack(">QB", 2, 1)) + method(1, 60, 120, struct.pack(">QB", 3, 0))
            + method(1, 60, 50, struct.pack(">H", 312) + sstr(b"NO_ROUTE") + sstr(b"") + sstr(b"q"))
            + header(1, 3) + body(1, b"abc") + method(1, 60, 80, struct.pack(">QB", 4, 0))
        )
    # basic.get: get-ok with content, get-empty; in 7-byte pieces.
    yield bytes([0, 7]) + op(0) + op(8) + op(8) + data_record(
        open_ok(1) + method(1, 60, 71, struct.pack(">QB", 1, 0) + sstr(b"") + sstr(b"q") + struct.pack(">I", 1))
        + header(1, 2) + body(1, b"hi") + method(1, 60, 72, sstr(b""))
    )
    # Crossing channel closes, then a second channel reusing nothing yet, then close-ok.
    yield bytes([0, 0]) + op(0) + data_record(open_ok(1)) + op(9) + data_record(
        close(1, 20, 406, b"PRECONDITION_FAILED")
    ) + op(0) + data_record(open_ok(2) + method(1, 20, 41)) + op(0) + data_record(open_ok(1))
    # The broker's connection.close with calls pending.
    yield bytes([0, 0]) + op(0) + op(1) + data_record(open_ok(1)) + data_record(
        close(0, 10, 320, b"CONNECTION_FORCED - shutdown")
    )
    # Our close crossed by the broker's.
    yield bytes([0, 0]) + op(25) + data_record(close(0, 10, 320, b"CONNECTION_FORCED"))
    # A reply deadline of 1 s: the declare is never answered; then close-ok.
    yield bytes([REPLY_1S, 0]) + op(0) + data_record(open_ok(1)) + op(1) + clock(5) \
        + data_record(method(0, 10, 51))
    # Heartbeats of 1 s: the broker talks for a while, then falls silent.
    yield bytes([HB[1], 0]) + (data_record(HEARTBEAT) + clock(3)) * 4 + clock(12)
    # Heartbeats of 4 s with a late driver.
    yield bytes([HB[4], 0]) + op(0) + data_record(open_ok(1)) + clock(31, late=True)
    # frame_max 4096: a body over several frames, fed in 100-byte pieces.
    yield bytes([FRAME_MAX_4096, 100]) + op(0) + op(3) + data_record(
        open_ok(1) + consume_ok(1, b"c") + deliver(1, b"c", 1, bytes(range(256)) * 40)
    ) + op(10, 255)
    # channel_max 3: channels run out; garbage at the end.
    yield bytes([CHANNEL_MAX_3 | EOF_AT_END, 0]) + op(0) + op(0) + op(0) + op(0) \
        + data_record(open_ok(1) + open_ok(2) + open_ok(3) + b"GET / HTTP/1.1\r\n")


def main():
    capture_seeds()
    for seed in handmade():
        write(seed)
    files = list(CORPUS.iterdir())
    print(f"connection: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
