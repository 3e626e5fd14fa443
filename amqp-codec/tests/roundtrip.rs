//! Property tests: encode ⇄ decode is the identity, and no input panics.
//!
//! Method frames are built here by an *independent* encoder driven by the spec's argument domains
//! (with its own bit packing), so a shared misunderstanding between the codec's reader and writer
//! cannot hide: the codec must decode these bytes and re-encode them identically, for every method.

use amqp_codec::method::ALL_METHODS;
use amqp_codec::{
    BasicProperties, ContentHeader, Decimal, FieldArray, FieldTable, FieldValue, Frame,
    FrameDecoder,
};
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

/// The spec's domains, resolved to their wire types (from the spec's `domains` list).
fn wire_type(domain: &str) -> &'static str {
    match domain {
        "bit" | "no-ack" | "no-local" | "redelivered" => "bit",
        "octet" => "octet",
        "short" | "class-id" | "method-id" | "reply-code" | "reject-code" => "short",
        "long" | "message-count" => "long",
        "longlong" | "delivery-tag" | "duration" | "offset" => "longlong",
        "timestamp" => "timestamp",
        "shortstr" | "consumer-tag" | "destination" | "exchange-name" | "path" | "queue-name"
        | "reply-text" | "reject-text" => "shortstr",
        "longstr" | "channel-id" | "reference" | "security-token" => "longstr",
        "table" | "peer-properties" => "table",
        other => panic!("domain {other} missing from the test's table"),
    }
}

#[derive(Debug, Clone)]
enum Arg {
    Bit(bool),
    Octet(u8),
    Short(u16),
    Long(u32),
    LongLong(u64),
    ShortStr(Vec<u8>),
    LongStr(Vec<u8>),
    Table(FieldTable),
}

fn arg_strategy(ty: &str) -> BoxedStrategy<Arg> {
    match ty {
        "bit" => any::<bool>().prop_map(Arg::Bit).boxed(),
        "octet" => any::<u8>().prop_map(Arg::Octet).boxed(),
        "short" => any::<u16>().prop_map(Arg::Short).boxed(),
        "long" => any::<u32>().prop_map(Arg::Long).boxed(),
        "longlong" | "timestamp" => any::<u64>().prop_map(Arg::LongLong).boxed(),
        "shortstr" => vec(any::<u8>(), 0..=255).prop_map(Arg::ShortStr).boxed(),
        "longstr" => vec(any::<u8>(), 0..600).prop_map(Arg::LongStr).boxed(),
        "table" => table().prop_map(Arg::Table).boxed(),
        other => panic!("{other}"),
    }
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..24)
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(FieldValue::Boolean),
        any::<i8>().prop_map(FieldValue::ShortShortInt),
        any::<u8>().prop_map(FieldValue::ShortShortUInt),
        any::<i16>().prop_map(FieldValue::ShortInt),
        any::<u16>().prop_map(FieldValue::ShortUInt),
        any::<i32>().prop_map(FieldValue::LongInt),
        any::<u32>().prop_map(FieldValue::LongUInt),
        any::<i64>().prop_map(FieldValue::LongLongInt),
        any::<f32>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(FieldValue::Float),
        any::<f64>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(FieldValue::Double),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| FieldValue::Decimal(Decimal { scale, value })),
        vec(any::<u8>(), 0..40).prop_map(|v| FieldValue::LongString(v.into())),
        vec(any::<u8>(), 0..40).prop_map(|v| FieldValue::ByteArray(Bytes::from(v))),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(|v| FieldValue::FieldArray(FieldArray::from(v))),
            vec((key(), inner), 0..8).prop_map(|kv| {
                let mut t = FieldTable::new();
                for (k, v) in kv {
                    t.push(k, v);
                }
                FieldValue::FieldTable(t)
            }),
        ]
    })
}

fn table() -> impl Strategy<Value = FieldTable> {
    vec((key(), field_value()), 0..10).prop_map(|kv| {
        let mut t = FieldTable::new();
        for (k, v) in kv {
            t.push(k, v);
        }
        t
    })
}

// --- the test's own encoder -------------------------------------------------------------------

fn put_table(out: &mut Vec<u8>, t: &FieldTable) {
    let mut body = Vec::new();
    for (k, v) in t.iter() {
        body.push(k.len() as u8);
        body.extend_from_slice(k.as_bytes());
        put_value(&mut body, v);
    }
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
}

fn put_value(out: &mut Vec<u8>, v: &FieldValue) {
    out.push(v.type_letter());
    match v {
        FieldValue::Boolean(b) => out.push(*b as u8),
        FieldValue::ShortShortInt(n) => out.extend_from_slice(&n.to_be_bytes()),
        FieldValue::ShortShortUInt(n) => out.push(*n),
        FieldValue::ShortInt(n) => out.extend_from_slice(&n.to_be_bytes()),
        FieldValue::ShortUInt(n) => out.extend_from_slice(&n.to_be_bytes()),
        FieldValue::LongInt(n) => out.extend_from_slice(&n.to_be_bytes()),
        FieldValue::LongUInt(n) => out.extend_from_slice(&n.to_be_bytes()),
        FieldValue::LongLongInt(n) => out.extend_from_slice(&n.to_be_bytes()),
        FieldValue::Float(n) => out.extend_from_slice(&n.to_be_bytes()),
        FieldValue::Double(n) => out.extend_from_slice(&n.to_be_bytes()),
        FieldValue::Decimal(d) => {
            out.push(d.scale);
            out.extend_from_slice(&d.value.to_be_bytes());
        }
        FieldValue::LongString(s) => {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        FieldValue::ByteArray(b) => {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
        FieldValue::FieldArray(a) => {
            let mut body = Vec::new();
            for v in a.iter() {
                put_value(&mut body, v);
            }
            out.extend_from_slice(&(body.len() as u32).to_be_bytes());
            out.extend_from_slice(&body);
        }
        FieldValue::Timestamp(t) => out.extend_from_slice(&t.to_be_bytes()),
        FieldValue::FieldTable(t) => put_table(out, t),
        FieldValue::Void => {}
    }
}

/// Method payload per spec 4.2.5: class, method, then arguments; consecutive bits share an octet,
/// least significant bit first, at most eight to an octet.
fn method_payload(class_id: u16, method_id: u16, args: &[Arg]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&class_id.to_be_bytes());
    out.extend_from_slice(&method_id.to_be_bytes());
    let mut bit = 8;
    for a in args {
        if let Arg::Bit(b) = a {
            if bit == 8 {
                out.push(0);
                bit = 0;
            }
            if *b {
                *out.last_mut().unwrap() |= 1 << bit;
            }
            bit += 1;
            continue;
        }
        bit = 8;
        match a {
            Arg::Octet(v) => out.push(*v),
            Arg::Short(v) => out.extend_from_slice(&v.to_be_bytes()),
            Arg::Long(v) => out.extend_from_slice(&v.to_be_bytes()),
            Arg::LongLong(v) => out.extend_from_slice(&v.to_be_bytes()),
            Arg::ShortStr(s) => {
                out.push(s.len() as u8);
                out.extend_from_slice(s);
            }
            Arg::LongStr(s) => {
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s);
            }
            Arg::Table(t) => put_table(&mut out, t),
            Arg::Bit(_) => unreachable!(),
        }
    }
    out
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(0xCE);
    f
}

fn decode_one(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let f = FrameDecoder::new(0)
        .decode(&mut buf)
        .expect("decodes")
        .expect("complete");
    assert!(buf.is_empty(), "frame consumed exactly");
    f
}

fn encode(f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    f.encode(&mut out).expect("encodes");
    out.to_vec()
}

fn method_case() -> impl Strategy<Value = (usize, u16, Vec<Arg>)> {
    (0..ALL_METHODS.len(), any::<u16>()).prop_flat_map(|(i, channel)| {
        let args: Vec<_> = ALL_METHODS[i]
            .arguments
            .iter()
            .map(|(_, d)| arg_strategy(wire_type(d)))
            .collect();
        (Just(i), Just(channel), args)
    })
}

fn properties() -> impl Strategy<Value = BasicProperties> {
    let s = || proptest::option::of(vec(any::<u8>(), 0..=255));
    (
        (
            s(),
            s(),
            proptest::option::of(table()),
            proptest::option::of(any::<u8>()),
        ),
        (proptest::option::of(any::<u8>()), s(), s(), s(), s()),
        (proptest::option::of(any::<u64>()), s(), s(), s(), s()),
    )
        .prop_map(
            |((a, b, c, d), (e, f, g, h, i), (j, k, l, m, n))| BasicProperties {
                content_type: a.map(Into::into),
                content_encoding: b.map(Into::into),
                headers: c,
                delivery_mode: d,
                priority: e,
                correlation_id: f.map(Into::into),
                reply_to: g.map(Into::into),
                expiration: h.map(Into::into),
                message_id: i.map(Into::into),
                timestamp: j,
                kind: k.map(Into::into),
                user_id: l.map(Into::into),
                app_id: m.map(Into::into),
                cluster_id: n.map(Into::into),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn every_method_round_trips_with_arbitrary_arguments((i, channel, args) in method_case()) {
        let info = &ALL_METHODS[i];
        let payload = method_payload(info.class_id, info.method_id, &args);
        let bytes = frame(1, channel, &payload);
        let decoded = decode_one(&bytes);
        let Frame::Method(ch, m) = &decoded else { panic!("not a method: {decoded:?}") };
        prop_assert_eq!(*ch, channel);
        prop_assert_eq!(m.info(), info);
        prop_assert_eq!(m.arguments().len(), args.len());
        prop_assert_eq!(encode(&decoded), bytes.clone());
        // decode(encode(m)) == m
        prop_assert_eq!(decode_one(&encode(&decoded)), decoded);
    }

    #[test]
    fn content_headers_round_trip_with_arbitrary_properties(
        props in properties(), body_size in any::<u64>(), channel in any::<u16>()
    ) {
        let flags = props.flags();
        let header = Frame::Header(channel, ContentHeader::new(body_size, props));
        let bytes = encode(&header);
        // Flags sit at bytes 19..21 of the frame: present properties on bits 15..2 in spec order.
        prop_assert_eq!(u16::from_be_bytes([bytes[19], bytes[20]]), flags);
        prop_assert_eq!(flags & 0b11, 0);
        let back = decode_one(&bytes);
        prop_assert_eq!(&back, &header);
        prop_assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn nested_tables_round_trip_and_match_the_independent_encoder(t in table()) {
        let m = amqp_codec::QueueDeclare { arguments: t.clone(), ..Default::default() };
        let bytes = encode(&Frame::Method(1, m.into()));
        let mut expect = Vec::new();
        put_table(&mut expect, &t);
        prop_assert!(bytes.windows(expect.len()).any(|w| w == expect.as_slice()));
        let Frame::Method(_, amqp_codec::Method::QueueDeclare(back)) = decode_one(&bytes) else {
            panic!("not queue.declare")
        };
        prop_assert_eq!(back.arguments, t);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..3000), max in prop_oneof![Just(0u32), Just(4096), Just(64)]) {
        let mut buf = BytesMut::from(&bytes[..]);
        let mut dec = FrameDecoder::new(max);
        while let Ok(Some(_)) = dec.decode(&mut buf) {}
    }

    #[test]
    fn arbitrary_payloads_in_sound_frames_never_panic(
        kind in prop_oneof![Just(1u8), Just(2), Just(3), Just(8)],
        head in prop_oneof![
            // Steer into real classes and methods so argument parsing is exercised.
            (0..ALL_METHODS.len()).prop_map(|i| {
                let m = &ALL_METHODS[i];
                let mut v = m.class_id.to_be_bytes().to_vec();
                v.extend_from_slice(&m.method_id.to_be_bytes());
                v
            }),
            Just(vec![0, 60, 0, 0]),
        ],
        tail in vec(any::<u8>(), 0..400),
    ) {
        let mut payload = head;
        payload.extend_from_slice(&tail);
        let bytes = frame(kind, 0, &payload);
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok(Some(f)) = FrameDecoder::new(0).decode(&mut buf) {
            // Whatever decodes must re-encode to the same bytes (booleans aside: non-zero octets
            // in a field table's `t` normalise to 1).
            let again = encode(&f);
            prop_assert_eq!(decode_one(&again), f);
        }
    }

    #[test]
    fn any_single_byte_change_of_a_valid_frame_is_an_answer_not_a_panic(
        (i, channel, args) in method_case(), at in any::<prop::sample::Index>(), to in any::<u8>()
    ) {
        let info = &ALL_METHODS[i];
        let mut bytes = frame(1, channel, &method_payload(info.class_id, info.method_id, &args));
        let at = at.index(bytes.len());
        bytes[at] = to;
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = FrameDecoder::new(0).decode(&mut buf);
    }
}
