#!/usr/bin/env python3
"""Seed fuzz/corpus/{frame,table}/ from the real bytes under fixtures/.

frame/: every capture stream whole, and each of its frames alone.
table/: the body (after the 4-byte length) of every field table found in those frames:
server/client properties, `arguments` of the declare/bind/consume methods, the `headers`
property; plus a few hand-made tables covering every field type and nesting.

Files are named by the SHA-1 of their content, as libFuzzer names its own. Run from anywhere;
re-running adds nothing twice. After a fuzzing run, `cargo fuzz cmin` keeps the corpus small.
"""
import hashlib
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
# Larger seeds (the 300 KB large-body streams, their 128 KiB body frames) only slow the fuzzer
# down: a body payload is never looked at. Their framing is covered by the smaller streams.
MAX_SEED = 20_000

# (class, method) -> where the table starts in the method payload, as a function of the payload.
def _shortstrs(p, at, n):
    for _ in range(n):
        at += 1 + p[at]
    return at

TABLE_AT = {
    (10, 10): lambda p: 6,                              # connection.start: server-properties
    (10, 11): lambda p: 4,                              # connection.start-ok: client-properties
    (40, 10): lambda p: _shortstrs(p, 6, 2) + 1,        # exchange.declare: arguments
    (40, 30): lambda p: _shortstrs(p, 6, 3) + 1,        # exchange.bind
    (40, 40): lambda p: _shortstrs(p, 6, 3) + 1,        # exchange.unbind
    (50, 10): lambda p: _shortstrs(p, 6, 1) + 1,        # queue.declare
    (50, 20): lambda p: _shortstrs(p, 6, 3) + 1,        # queue.bind
    (50, 50): lambda p: _shortstrs(p, 6, 3),            # queue.unbind (no bits)
    (60, 20): lambda p: _shortstrs(p, 6, 2) + 1,        # basic.consume
}


def write(kind, data):
    d = CORPUS / kind
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def frames(stream):
    at = 0
    while at < len(stream):
        if stream[at:at + 4] == b"AMQP":
            yield stream[at:at + 8]
            at += 8
            continue
        if at + 7 > len(stream):
            return
        size = struct.unpack(">I", stream[at + 3:at + 7])[0]
        yield stream[at:at + size + 8]
        at += size + 8


def table_body(payload, at):
    if at + 4 > len(payload):
        return None
    n = struct.unpack(">I", payload[at:at + 4])[0]
    return payload[at + 4:at + 4 + n] if n else None


def tables(frame):
    kind, payload = frame[0], frame[7:-1]
    if kind == 1 and len(payload) >= 4:
        cm = struct.unpack(">HH", payload[:4])
        if cm in TABLE_AT:
            return [table_body(payload, TABLE_AT[cm](payload))]
    if kind == 2 and len(payload) >= 14:
        flags = struct.unpack(">H", payload[12:14])[0]
        if flags & 0x2000:
            at = 14
            for bit in (0x8000, 0x4000):                # content-type, content-encoding
                if flags & bit:
                    at += 1 + payload[at]
            return [table_body(payload, at)]
    return []


def sstr(s):
    return bytes([len(s)]) + s


def entry(name, letter, value):
    return sstr(name) + letter + value


def handmade():
    scalars = [
        entry(b"t", b"t", b"\x01"), entry(b"b", b"b", b"\xff"), entry(b"B", b"B", b"\xff"),
        entry(b"s", b"s", b"\x80\x00"), entry(b"u", b"u", b"\xff\xff"),
        entry(b"I", b"I", b"\x80\x00\x00\x00"), entry(b"i", b"i", b"\xff\xff\xff\xff"),
        entry(b"l", b"l", b"\x80" + b"\x00" * 7), entry(b"f", b"f", struct.pack(">f", 1.5)),
        entry(b"d", b"d", struct.pack(">d", -2.25)), entry(b"D", b"D", b"\x02\x00\x00\x30\x39"),
        entry(b"S", b"S", struct.pack(">I", 5) + b"hello"), entry(b"x", b"x", struct.pack(">I", 2) + b"\x00\xff"),
        entry(b"T", b"T", struct.pack(">Q", 1_700_000_000)), entry(b"V", b"V", b""),
    ]
    yield b"".join(scalars)
    inner = entry(b"n", b"I", b"\x00\x00\x00\x07")
    array = b"I\x00\x00\x00\x01" + b"S" + struct.pack(">I", 1) + b"a" + b"V"
    nested = entry(b"a", b"A", struct.pack(">I", len(array)) + array)
    nested += entry(b"F", b"F", struct.pack(">I", len(inner)) + inner)
    yield nested
    # x-death as RabbitMQ writes it: an array of tables.
    death = entry(b"count", b"l", struct.pack(">q", 1)) + entry(b"queue", b"S", struct.pack(">I", 3) + b"rpc")
    arr = b"F" + struct.pack(">I", len(death)) + death
    yield entry(b"x-death", b"A", struct.pack(">I", len(arr)) + arr)


def seed_header_frame():
    props = sstr(b"c1e5f310-0996-45fb-a3d8-bf2081cd891c") + sstr(b"amq.gen-p169XGGXAjsVdvgeJjMlOw")
    payload = struct.pack(">HHQH", 60, 0, 2, 0x0600) + props
    return struct.pack(">BHI", 2, 1, len(payload)) + payload + b"\xce"


def main():
    streams = sorted((ROOT / "fixtures" / "captures").glob("*.bin"))
    streams += sorted((ROOT / "fixtures" / "seed").glob("*.bin"))
    blobs = [p.read_bytes() for p in streams] + [seed_header_frame()]
    assert len(blobs[-1]) == 90
    for blob in blobs:
        if len(blob) <= MAX_SEED:
            write("frame", blob)
        for f in frames(blob):
            if len(f) <= MAX_SEED:
                write("frame", f)
            for t in tables(f):
                if t:
                    write("table", t)
    for t in handmade():
        write("table", t)
    for kind in ("frame", "table"):
        files = list((CORPUS / kind).iterdir())
        print(f"{kind}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
