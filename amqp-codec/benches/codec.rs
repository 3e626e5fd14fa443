//! Decode and encode throughput of `amqp-codec`, side by side with `amq-protocol` (lapin's codec)
//! decoding the identical bytes.
//!
//! ```text
//! cargo bench -p amqp-codec --bench codec
//! python3 amqp-codec/benches/summarize.py     # the table in BENCHMARKS.md
//! ```
//!
//! Cases (each a byte stream, decoded frame by frame from the first byte to the last):
//! - `seed_header`: the 90-byte content header frame of tutorial six's request;
//! - `rpc_request`: `basic.publish` + that header + the 2-byte body `30`;
//! - `rpc_request_traced`: the same request as the RPC layer sends it with deadlines and trace
//!   context: `expiration` and a `headers` table of `x-deadline` (signed 64-bit) and `traceparent`
//!   (a 55-character long string); the `read_headers` group also reads those two headers back;
//! - `deliver_{1k,64k,1m}`: `basic.deliver` + a header with all 14 properties (a 10-entry
//!   `headers` table among them) + a 1 KiB / 64 KiB / 1 MiB body in one body frame: the decode
//!   time should not grow with the body, which is a zero-copy slice of the input;
//! - `mixed_10k`: 10,000 frames of RPC traffic (publishes and deliveries with and without
//!   headers, bodies from 2 bytes to 192 KiB, acks, heartbeats, a few other methods), generated
//!   from a fixed seed.

use std::hint::black_box;

use amqp_codec::{
    encode_message, message_frames, BasicAck, BasicDeliver, BasicProperties, BasicPublish,
    BasicQos, ChannelFlow, Decimal, FieldArray, FieldTable, FieldValue, Frame, FrameDecoder,
    Method, QueueDeclareOk,
};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// RabbitMQ's default, used when a case needs bodies split as a broker would.
const FRAME_MAX: u32 = 131_072;

struct Case {
    name: &'static str,
    bytes: Bytes,
    frames: Vec<Frame>,
}

fn frames_of(bytes: &Bytes) -> Vec<Frame> {
    let mut src = bytes.clone();
    let mut decoder = FrameDecoder::new(0);
    let mut frames = Vec::new();
    while let Some(f) = decoder.decode_bytes(&mut src).expect("bench input decodes") {
        frames.push(f);
    }
    assert!(src.is_empty(), "bench input is whole frames");
    frames
}

fn case(name: &'static str, bytes: BytesMut) -> Case {
    let bytes = bytes.freeze();
    let frames = frames_of(&bytes);
    Case {
        name,
        bytes,
        frames,
    }
}

fn rpc_properties() -> BasicProperties {
    BasicProperties::default()
        .with_correlation_id("c1e5f310-0996-45fb-a3d8-bf2081cd891c")
        .with_reply_to("amq.gen-p169XGGXAjsVdvgeJjMlOw")
}

fn seed_header() -> Case {
    let mut wire = BytesMut::new();
    let header = Frame::Header(1, amqp_codec::ContentHeader::new(2, rpc_properties()));
    header.encode(&mut wire).unwrap();
    assert_eq!(wire.len(), 90);
    assert_eq!(&wire[..7], &[2, 0, 1, 0, 0, 0, 82]);
    case("seed_header", wire)
}

fn rpc_request() -> Case {
    let publish = BasicPublish {
        routing_key: "rpc_queue".into(),
        ..Default::default()
    };
    let mut wire = BytesMut::new();
    encode_message(
        &mut wire,
        1,
        &publish.into(),
        &rpc_properties(),
        b"30",
        FRAME_MAX,
    )
    .unwrap();
    case("rpc_request", wire)
}

/// The W3C trace context of a request (55 characters: version, trace id, span id, flags).
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The properties of a request with a deadline and trace context, as the RPC layer sends it.
fn traced_properties() -> BasicProperties {
    rpc_properties().with_expiration("5000").with_headers(
        FieldTable::new()
            .with("x-deadline", 1_700_000_005_000i64)
            .with("traceparent", TRACEPARENT),
    )
}

fn rpc_request_traced() -> Case {
    assert_eq!(TRACEPARENT.len(), 55);
    let publish = BasicPublish {
        routing_key: "rpc_queue".into(),
        ..Default::default()
    };
    let mut wire = BytesMut::new();
    encode_message(
        &mut wire,
        1,
        &publish.into(),
        &traced_properties(),
        b"30",
        FRAME_MAX,
    )
    .unwrap();
    case("rpc_request_traced", wire)
}

/// A `headers` table of ten entries of the types applications and RabbitMQ put there.
fn ten_headers() -> FieldTable {
    let mut death = FieldTable::new();
    death.insert("count", 1i64);
    death.insert("queue", "rpc_queue");
    death.insert("reason", "expired");
    FieldTable::new()
        .with("x-request-id", "5f0c6d2e-8a4b-4f7e-9c1d-2b3a4c5d6e7f")
        .with("x-retry", 3i32)
        .with("x-deadline-ms", 1_700_000_030_000i64)
        .with("x-traced", true)
        .with("x-sent-at", FieldValue::Timestamp(1_700_000_000))
        .with(
            "x-death",
            FieldArray::from(vec![FieldValue::FieldTable(death)]),
        )
        .with(
            "x-price",
            FieldValue::Decimal(Decimal {
                scale: 2,
                value: 1999,
            }),
        )
        .with("x-ratio", FieldValue::Double(0.75))
        .with(
            "x-blob",
            FieldValue::ByteArray(Bytes::from_static(b"\x00\x01\x02\x03")),
        )
        .with("x-origin", "rpc-server-1")
}

fn all_properties() -> BasicProperties {
    BasicProperties {
        content_type: Some("application/json".into()),
        content_encoding: Some("utf-8".into()),
        headers: Some(ten_headers()),
        delivery_mode: Some(2),
        priority: Some(5),
        correlation_id: Some("c1e5f310-0996-45fb-a3d8-bf2081cd891c".into()),
        reply_to: Some("amq.gen-p169XGGXAjsVdvgeJjMlOw".into()),
        expiration: Some("60000".into()),
        message_id: Some("msg-000042".into()),
        timestamp: Some(1_700_000_000),
        kind: Some("fib.request".into()),
        user_id: Some("guest".into()),
        app_id: Some("rpc-client".into()),
        cluster_id: Some("cluster-a".into()),
    }
}

fn deliver(name: &'static str, body_len: usize) -> Case {
    let deliver = BasicDeliver {
        consumer_tag: "ctag1.7b3a2f3e0c1d4e5f8a9b0c1d2e3f4a5b".into(),
        delivery_tag: 42,
        redelivered: false,
        exchange: "".into(),
        routing_key: "rpc_queue".into(),
    };
    let body: Vec<u8> = (0..body_len).map(|i| (i % 251) as u8).collect();
    let mut wire = BytesMut::new();
    // frame_max 0: the whole body in one frame, so the cases differ only by the body's size.
    encode_message(&mut wire, 1, &deliver.into(), &all_properties(), &body, 0).unwrap();
    let c = case(name, wire);
    assert_eq!(c.frames.len(), 3);
    c
}

/// A deterministic xorshift generator: the mixed stream is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mixed_stream(total: usize) -> Case {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut frames: Vec<Frame> = Vec::with_capacity(total + 4);
    let mut delivery_tag = 0u64;
    while frames.len() < total {
        let channel = 1 + rng.below(3) as u16;
        let roll = rng.below(100);
        if roll < 70 {
            // A message: request (publish) or reply/delivery (deliver).
            let body_len = match rng.below(100) {
                0..=59 => 2 + rng.below(30),
                60..=89 => 64 + rng.below(960),
                90..=98 => 1024 + rng.below(15_360),
                _ => 131_072 + rng.below(65_536),
            } as usize;
            let body: Bytes = (0..body_len).map(|i| (i % 253) as u8).collect();
            let mut props = BasicProperties::default()
                .with_correlation_id(format!("{:032x}", rng.next()))
                .with_reply_to("amq.gen-p169XGGXAjsVdvgeJjMlOw");
            if rng.below(3) == 0 {
                props = props
                    .with_content_type("application/json")
                    .with_delivery_mode(2u8);
            }
            if rng.below(4) == 0 {
                props = props.with_headers(
                    FieldTable::new()
                        .with("x-request-id", format!("{:016x}", rng.next()))
                        .with("x-retry", rng.below(5) as i32)
                        .with("x-traced", rng.below(2) == 0),
                );
            }
            let method: Method = if roll < 35 {
                BasicPublish {
                    routing_key: "rpc_queue".into(),
                    ..Default::default()
                }
                .into()
            } else {
                delivery_tag += 1;
                BasicDeliver {
                    consumer_tag: "ctag1.7b3a2f3e0c1d4e5f8a9b0c1d2e3f4a5b".into(),
                    delivery_tag,
                    redelivered: rng.below(50) == 0,
                    exchange: "".into(),
                    routing_key: "amq.gen-p169XGGXAjsVdvgeJjMlOw".into(),
                }
                .into()
            };
            frames.extend(message_frames(channel, method, props, body, FRAME_MAX).unwrap());
        } else if roll < 90 {
            frames.push(Frame::Method(
                channel,
                BasicAck {
                    delivery_tag: delivery_tag.max(1),
                    multiple: rng.below(10) == 0,
                }
                .into(),
            ));
        } else if roll < 95 {
            frames.push(Frame::Heartbeat);
        } else {
            let method: Method = match rng.below(3) {
                0 => BasicQos {
                    prefetch_count: 1,
                    ..Default::default()
                }
                .into(),
                1 => ChannelFlow { active: true }.into(),
                _ => QueueDeclareOk {
                    queue: "amq.gen-p169XGGXAjsVdvgeJjMlOw".into(),
                    message_count: 0,
                    consumer_count: 1,
                }
                .into(),
            };
            frames.push(Frame::Method(channel, method));
        }
    }
    frames.truncate(total);
    let mut wire = BytesMut::new();
    for f in &frames {
        f.encode(&mut wire).unwrap();
    }
    let c = case("mixed_10k", wire);
    assert_eq!(c.frames.len(), total);
    c
}

fn cases() -> Vec<Case> {
    vec![
        seed_header(),
        rpc_request(),
        rpc_request_traced(),
        deliver("deliver_1k", 1 << 10),
        deliver("deliver_64k", 64 << 10),
        deliver("deliver_1m", 1 << 20),
        mixed_stream(10_000),
    ]
}

fn decode_ours(stream: &Bytes) -> usize {
    let mut decoder = FrameDecoder::new(0);
    let mut src = stream.clone();
    let mut n = 0;
    while let Some(frame) = decoder.decode_bytes(&mut src).unwrap() {
        black_box(frame);
        n += 1;
    }
    n
}

/// Decode, then read `x-deadline` and `traceparent` from each content header, as the server
/// does with every request: in place with `lookup`/`lookup_str`, or through `get` (which decodes
/// the table).
fn read_headers_ours(stream: &Bytes, in_place: bool) -> usize {
    let mut decoder = FrameDecoder::new(0);
    let mut src = stream.clone();
    let mut n = 0;
    while let Some(frame) = decoder.decode_bytes(&mut src).unwrap() {
        if let Frame::Header(_, h) = &frame {
            let headers = h.properties.headers.as_ref().unwrap();
            if in_place {
                let deadline = headers.lookup("x-deadline");
                assert!(matches!(deadline, Some(FieldValue::LongLongInt(_))));
                black_box(deadline);
                black_box(headers.lookup_str("traceparent"));
            } else {
                let deadline = headers.get("x-deadline");
                assert!(matches!(deadline, Some(FieldValue::LongLongInt(_))));
                black_box(deadline);
                black_box(headers.get("traceparent"));
            }
        }
        black_box(frame);
        n += 1;
    }
    n
}

fn read_headers_amq_protocol(stream: &[u8]) -> usize {
    let mut input = stream;
    let mut n = 0;
    while !input.is_empty() {
        let (rest, frame) = amq_protocol::frame::parse_frame(input).unwrap();
        if let amq_protocol::frame::AMQPFrame::Header(_, _, h) = &frame {
            let headers = h.properties.headers().as_ref().unwrap().inner();
            let deadline = headers.get("x-deadline");
            assert!(deadline.is_some());
            black_box(deadline);
            black_box(headers.get("traceparent"));
        }
        black_box(frame);
        input = rest;
        n += 1;
    }
    n
}

fn decode_amq_protocol(stream: &[u8]) -> usize {
    let mut input = stream;
    let mut n = 0;
    while !input.is_empty() {
        let (rest, frame) = amq_protocol::frame::parse_frame(input).unwrap();
        black_box(frame);
        input = rest;
        n += 1;
    }
    n
}

fn encode_ours(frames: &[Frame], dst: &mut BytesMut) {
    dst.clear();
    for f in frames {
        f.encode(dst).unwrap();
    }
}

fn encode_amq_protocol(frames: &[amq_protocol::frame::AMQPFrame], dst: Vec<u8>) -> Vec<u8> {
    let mut ctx = amq_protocol::frame::WriteContext::from(dst);
    for f in frames {
        ctx = amq_protocol::frame::gen_frame(f)(ctx).unwrap();
    }
    ctx.write
}

fn bench(c: &mut Criterion) {
    let cases = cases();
    // `AMQP_CODEC_BENCH_DUMP=DIR` writes each case's bytes to DIR/<case>.bin, for the
    // decode_stream example, another decoder, or callgrind (instruction counts do not depend on
    // what else the machine is running).
    if let Some(dir) = std::env::var_os("AMQP_CODEC_BENCH_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for case in &cases {
            std::fs::write(dir.join(format!("{}.bin", case.name)), &case.bytes).unwrap();
        }
    }
    for case in cases {
        let n = case.frames.len();
        assert_eq!(decode_ours(&case.bytes), n);
        assert_eq!(decode_amq_protocol(&case.bytes), n, "{}", case.name);

        let mut group = c.benchmark_group(format!("decode/{}", case.name));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter("amqp-codec"), |b| {
            b.iter(|| decode_ours(black_box(&case.bytes)))
        });
        group.bench_function(BenchmarkId::from_parameter("amq-protocol"), |b| {
            b.iter(|| decode_amq_protocol(black_box(&case.bytes)))
        });
        group.finish();

        if case.name == "rpc_request_traced" {
            let mut group = c.benchmark_group(format!("read_headers/{}", case.name));
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::from_parameter("amqp-codec lookup"), |b| {
                b.iter(|| read_headers_ours(black_box(&case.bytes), true))
            });
            group.bench_function(BenchmarkId::from_parameter("amqp-codec get"), |b| {
                b.iter(|| read_headers_ours(black_box(&case.bytes), false))
            });
            group.bench_function(BenchmarkId::from_parameter("amq-protocol"), |b| {
                b.iter(|| read_headers_amq_protocol(black_box(&case.bytes)))
            });
            group.finish();
        }

        let theirs: Vec<_> = {
            let mut input = &case.bytes[..];
            std::iter::from_fn(|| {
                (!input.is_empty()).then(|| {
                    let (rest, f) = amq_protocol::frame::parse_frame(input).unwrap();
                    input = rest;
                    f
                })
            })
            .collect()
        };
        let mut group = c.benchmark_group(format!("encode/{}", case.name));
        group.throughput(Throughput::Elements(n as u64));
        let mut dst = BytesMut::with_capacity(case.bytes.len());
        group.bench_function(BenchmarkId::from_parameter("amqp-codec"), |b| {
            b.iter(|| {
                encode_ours(black_box(&case.frames), &mut dst);
                dst.len()
            })
        });
        let mut vec = Some(Vec::with_capacity(case.bytes.len()));
        group.bench_function(BenchmarkId::from_parameter("amq-protocol"), |b| {
            b.iter(|| {
                let mut v = vec.take().unwrap();
                v.clear();
                let v = encode_amq_protocol(black_box(&theirs), v);
                let len = v.len();
                vec = Some(v);
                len
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
