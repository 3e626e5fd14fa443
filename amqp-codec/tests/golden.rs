//! Golden tests against real traffic: every AMQP frame of the captures in `fixtures/captures/`
//! (made with tshark on loopback against RabbitMQ, pika as the peer) is decoded and compared field
//! by field with tshark's own dissection (`NAME.expect.jsonl`), then re-encoded to the identical
//! bytes. tshark is the independent oracle: its values were extracted from its dissection, not
//! from this codec.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use amqp_codec::method::ArgValue;
use amqp_codec::{FieldTable, FieldValue, Frame, FrameDecoder};
use bytes::{Bytes, BytesMut};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// "Nov 14, 2023 22:13:20.000000000 UTC" → seconds since the epoch.
fn tshark_time(s: &str) -> Option<u64> {
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut it = s.split_whitespace();
    let name = it.next()?;
    let mon = months.iter().position(|m| *m == name)? as i64 + 1;
    let day: i64 = it.next()?.trim_end_matches(',').parse().ok()?;
    let year: i64 = it.next()?.parse().ok()?;
    let hms: Vec<i64> = it
        .next()?
        .split('.')
        .next()?
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mon <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mon + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]) as u64)
}

/// tshark's names for field-value types (what it prints in the table subtree).
fn tshark_type(v: &FieldValue) -> &'static [&'static str] {
    match v {
        FieldValue::Boolean(_) => &["boolean"],
        FieldValue::ShortShortInt(_) => &["short short int", "byte"],
        FieldValue::ShortShortUInt(_) => &["short short uint", "unsigned byte"],
        FieldValue::ShortInt(_) => &["short int", "short"],
        FieldValue::ShortUInt(_) => &["short uint", "unsigned short"],
        FieldValue::LongInt(_) => &["integer"],
        FieldValue::LongUInt(_) => &["unsigned integer", "long uint"],
        FieldValue::LongLongInt(_) => &["long int"],
        FieldValue::Float(_) => &["float"],
        FieldValue::Double(_) => &["double"],
        FieldValue::Decimal(_) => &["decimal"],
        FieldValue::LongString(_) => &["string"],
        FieldValue::ByteArray(_) => &["byte array"],
        FieldValue::FieldArray(_) => &["array"],
        FieldValue::Timestamp(_) => &["timestamp"],
        FieldValue::FieldTable(_) => &["field table"],
        FieldValue::Void => &["void"],
    }
}

fn check_value(path: &str, ours: &FieldValue, theirs: &Value) {
    let ty = theirs["type"].as_str().unwrap_or("?");
    assert!(
        tshark_type(ours).contains(&ty),
        "{path}: type {ty} vs ours {ours:?}"
    );
    let v = &theirs["value"];
    let ok = match ours {
        FieldValue::Boolean(b) => v.as_bool() == Some(*b),
        FieldValue::ShortShortInt(n) => v.as_i64() == Some(*n as i64),
        FieldValue::ShortShortUInt(n) => v.as_u64() == Some(*n as u64),
        FieldValue::ShortInt(n) => v.as_i64() == Some(*n as i64),
        FieldValue::ShortUInt(n) => v.as_u64() == Some(*n as u64),
        FieldValue::LongInt(n) => v.as_i64() == Some(*n as i64),
        FieldValue::LongUInt(n) => v.as_u64() == Some(*n as u64),
        FieldValue::LongLongInt(n) => v.as_i64() == Some(*n),
        FieldValue::Float(f) => v.as_f64().map(|x| x as f32) == Some(*f),
        FieldValue::Double(f) => v.as_f64() == Some(*f),
        FieldValue::Decimal(d) => {
            let s = format!("{:.6}", d.value as f64 / 10f64.powi(d.scale as i32));
            v.as_str() == Some(s.as_str())
        }
        FieldValue::LongString(s) => {
            v.as_str() == s.as_str() || v.as_str() == Some(hex(s.as_bytes()).as_str())
        }
        FieldValue::ByteArray(b) => v.as_str() == Some(hex(b).as_str()),
        FieldValue::Timestamp(t) => v.as_str().and_then(tshark_time) == Some(*t),
        FieldValue::Void => v.is_null(),
        FieldValue::FieldTable(t) => {
            check_table(path, t, v);
            true
        }
        FieldValue::FieldArray(a) => {
            let items = v
                .as_array()
                .unwrap_or_else(|| panic!("{path}: not an array"));
            assert_eq!(items.len(), a.len(), "{path}: array length");
            for (i, (o, t)) in a.iter().zip(items).enumerate() {
                check_value(&format!("{path}[{i}]"), o, t);
            }
            true
        }
    };
    assert!(ok, "{path}: ours {ours:?} vs tshark {theirs}");
}

fn check_table(path: &str, ours: &FieldTable, theirs: &Value) {
    let obj = theirs
        .as_object()
        .unwrap_or_else(|| panic!("{path}: tshark table is {theirs}"));
    assert_eq!(ours.len(), obj.len(), "{path}: entry count");
    for (k, v) in ours.iter() {
        let key = k.to_string();
        let t = obj
            .get(&key)
            .unwrap_or_else(|| panic!("{path}.{key}: missing in tshark"));
        check_value(&format!("{path}.{key}"), v, t);
    }
}

fn check_arg(path: &str, ours: ArgValue<'_>, theirs: &Value) {
    let ok = match ours {
        ArgValue::Bit(b) => theirs.as_bool() == Some(b),
        ArgValue::Octet(n) => theirs.as_u64() == Some(n as u64),
        ArgValue::Short(n) => theirs.as_u64() == Some(n as u64),
        ArgValue::Long(n) => theirs.as_u64() == Some(n as u64),
        ArgValue::LongLong(n) => theirs.as_u64() == Some(n),
        ArgValue::Timestamp(n) => theirs.as_str().and_then(tshark_time) == Some(n),
        ArgValue::ShortStr(s) => theirs.as_str() == s.as_str(),
        ArgValue::LongStr(s) => {
            theirs.as_str() == s.as_str() || theirs.as_str() == Some(hex(s.as_bytes()).as_str())
        }
        ArgValue::Table(t) => {
            check_table(path, t, theirs);
            true
        }
    };
    assert!(ok, "{path}: ours {ours:?} vs tshark {theirs}");
}

fn property_value<'a>(p: &'a amqp_codec::BasicProperties, name: &str) -> Option<ArgValue<'a>> {
    Some(match name {
        "content-type" => ArgValue::ShortStr(p.content_type.as_ref()?),
        "content-encoding" => ArgValue::ShortStr(p.content_encoding.as_ref()?),
        "headers" => ArgValue::Table(p.headers.as_ref()?),
        "delivery-mode" => ArgValue::Octet(p.delivery_mode?),
        "priority" => ArgValue::Octet(p.priority?),
        "correlation-id" => ArgValue::ShortStr(p.correlation_id.as_ref()?),
        "reply-to" => ArgValue::ShortStr(p.reply_to.as_ref()?),
        "expiration" => ArgValue::ShortStr(p.expiration.as_ref()?),
        "message-id" => ArgValue::ShortStr(p.message_id.as_ref()?),
        "timestamp" => ArgValue::Timestamp(p.timestamp?),
        "type" => ArgValue::ShortStr(p.kind.as_ref()?),
        "user-id" => ArgValue::ShortStr(p.user_id.as_ref()?),
        "app-id" => ArgValue::ShortStr(p.app_id.as_ref()?),
        "cluster-id" => ArgValue::ShortStr(p.cluster_id.as_ref()?),
        other => panic!("unknown property {other}"),
    })
}

/// Decode a raw one-direction stream: (offset, frame bytes, frame).
fn decode_stream(bytes: &[u8]) -> Vec<(usize, Bytes, Frame)> {
    let input = Bytes::copy_from_slice(bytes);
    let mut src = input.clone();
    let mut dec = FrameDecoder::new(0);
    let mut out = Vec::new();
    loop {
        let offset = input.len() - src.len();
        let before = src.clone();
        match dec.decode_bytes(&mut src) {
            Ok(Some(f)) => {
                let used = before.len() - src.len();
                out.push((offset, before.slice(..used), f));
            }
            Ok(None) => break,
            Err(e) => panic!("decode error at stream offset {offset}: {e}"),
        }
    }
    out
}

fn check_frame(ctx: &str, raw: &Bytes, frame: &Frame, exp: &Value) {
    // Re-encoding gives the identical bytes.
    let mut again = BytesMut::new();
    frame.encode(&mut again).unwrap();
    assert_eq!(&again[..], &raw[..], "{ctx}: re-encoding differs");

    let ty = &exp["type"];
    if ty.as_str() == Some("protocol-header") {
        assert!(matches!(frame, Frame::ProtocolHeader(_)), "{ctx}");
        assert_eq!(Some(hex(raw).as_str()), exp["bytes_hex"].as_str(), "{ctx}");
        return;
    }
    let kind = ty.as_u64().unwrap();
    assert_eq!(raw[0] as u64, kind, "{ctx}: type");
    assert_eq!(
        exp["channel"].as_u64(),
        Some(frame.channel() as u64),
        "{ctx}: channel"
    );
    assert_eq!(
        exp["length"].as_u64(),
        Some(raw.len() as u64 - 8),
        "{ctx}: length"
    );
    match frame {
        Frame::Method(_, m) => {
            assert_eq!(kind, 1, "{ctx}");
            assert_eq!(exp["class_id"].as_u64(), Some(m.class_id() as u64), "{ctx}");
            assert_eq!(
                exp["method_id"].as_u64(),
                Some(m.method_id() as u64),
                "{ctx}"
            );
            let name = exp["method"].as_str().unwrap_or("");
            if name.ends_with(".Unknown") {
                // tshark does not know this method (e.g. exchange.unbind-ok): ids only.
                return;
            }
            let info = m.info();
            let spec = format!("{}.{}", info.class_name, info.method_name);
            assert_eq!(name.to_ascii_lowercase(), spec, "{ctx}: method name");
            let args = exp["args"].as_object().cloned().unwrap_or_default();
            assert_eq!(
                args.len(),
                m.arguments().len(),
                "{ctx}: tshark shows {:?}",
                args.keys().collect::<Vec<_>>()
            );
            for (arg, v) in m.arguments() {
                let t = args
                    .get(arg)
                    .unwrap_or_else(|| panic!("{ctx}: {arg} missing in tshark"));
                check_arg(&format!("{ctx} {spec}.{arg}"), v, t);
            }
        }
        Frame::Header(_, h) => {
            assert_eq!(kind, 2, "{ctx}");
            assert_eq!(exp["class_id"].as_u64(), Some(h.class_id as u64), "{ctx}");
            assert_eq!(exp["weight"].as_u64(), Some(h.weight as u64), "{ctx}");
            assert_eq!(exp["body_size"].as_u64(), Some(h.body_size), "{ctx}");
            assert_eq!(
                exp["property_flags"].as_u64(),
                Some(h.properties.flags() as u64),
                "{ctx}: flags"
            );
            let props: BTreeMap<String, Value> = exp["properties"]
                .as_object()
                .map(|o| o.clone().into_iter().collect())
                .unwrap_or_default();
            for (name, _, _) in amqp_codec::properties::PROPERTIES {
                match (property_value(&h.properties, name), props.get(*name)) {
                    (None, None) => {}
                    (Some(ours), Some(theirs)) => check_arg(&format!("{ctx} {name}"), ours, theirs),
                    (ours, theirs) => panic!("{ctx} {name}: ours {ours:?} vs tshark {theirs:?}"),
                }
            }
        }
        Frame::Body(_, payload) => {
            assert_eq!(kind, 3, "{ctx}");
            assert_eq!(
                exp["payload_len"].as_u64(),
                Some(payload.len() as u64),
                "{ctx}"
            );
            if let Some(h) = exp["payload_hex"].as_str() {
                assert_eq!(hex(payload), h, "{ctx}: payload");
            }
        }
        Frame::Heartbeat => assert_eq!(kind, 8, "{ctx}"),
        Frame::ProtocolHeader(_) => panic!("{ctx}: protocol header where tshark saw type {kind}"),
    }
}

#[test]
fn every_captured_frame_matches_tshark_and_re_encodes_byte_exact() {
    let dir = fixtures().join("captures");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("fixtures/captures")
        .filter_map(|e| {
            let n = e.ok()?.file_name().into_string().ok()?;
            n.strip_suffix(".expect.jsonl").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 3, "captures missing: {names:?}");
    let mut total = 0;
    let mut kinds = BTreeMap::new();
    for name in &names {
        let text = fs::read_to_string(dir.join(format!("{name}.expect.jsonl"))).unwrap();
        let mut expected: BTreeMap<(String, u64), Vec<Value>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            let key = (
                v["dir"].as_str().unwrap().to_owned(),
                v["stream"].as_u64().unwrap(),
            );
            expected.entry(key).or_default().push(v);
        }
        for ((dirn, stream), exps) in &expected {
            let multi = dir.join(format!("{name}.s{stream}.{dirn}.bin"));
            let single = dir.join(format!("{name}.{dirn}.bin"));
            let path = if multi.exists() { multi } else { single };
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let frames = decode_stream(&bytes);
            let by_offset: BTreeMap<usize, (&Bytes, &Frame)> =
                frames.iter().map(|(o, b, f)| (*o, (b, f))).collect();
            assert_eq!(
                frames.len(),
                exps.len(),
                "{name} {dirn} stream {stream}: we decode {} frames, tshark shows {}",
                frames.len(),
                exps.len()
            );
            for exp in exps {
                let off = exp["offset"].as_u64().unwrap() as usize;
                let ctx = format!("{name} {dirn} s{stream} @{off}");
                let (raw, frame) = by_offset
                    .get(&off)
                    .unwrap_or_else(|| panic!("{ctx}: no frame of ours starts here"));
                check_frame(&ctx, raw, frame, exp);
                total += 1;
                *kinds.entry(exp["type"].to_string()).or_insert(0) += 1;
            }
        }
    }
    eprintln!("checked {total} frames against tshark: {kinds:?}");
    assert!(total > 100, "only {total} frames checked");
}

#[test]
fn spec_table_matches_the_codec() {
    let text = fs::read_to_string(fixtures().join("spec/methods.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    let ours = amqp_codec::method::ALL_METHODS;
    assert_eq!(rows.len(), ours.len(), "method count");
    for (row, m) in rows.iter().zip(ours) {
        let args: Vec<String> = m
            .arguments
            .iter()
            .map(|(n, d)| format!("{n}:{d}"))
            .collect();
        let expect = [
            m.class_id.to_string(),
            m.class_name.to_owned(),
            m.method_id.to_string(),
            m.method_name.to_owned(),
            (m.synchronous as u8).to_string(),
            (m.content as u8).to_string(),
            args.join(","),
        ];
        let row: Vec<String> = (0..7)
            .map(|i| row.get(i).copied().unwrap_or("").to_owned())
            .collect();
        assert_eq!(row, expect, "{}.{}", m.class_name, m.method_name);
    }

    let text = fs::read_to_string(fixtures().join("spec/properties.tsv")).unwrap();
    let props: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(props.len(), 14);
    for (i, (row, (name, ty, flag))) in props
        .iter()
        .zip(amqp_codec::properties::PROPERTIES)
        .enumerate()
    {
        assert_eq!(row[0], "60");
        assert_eq!(row[1], i.to_string());
        assert_eq!(row[2], *name);
        assert_eq!(row[3], *ty);
        assert_eq!(*flag, 1 << (15 - i), "{name} flag bit");
    }
}

/// The seed document's Wireshark frame: content header, channel 1, length 82, flags 0x0600, its
/// correlation-id and reply-to; 90 bytes on the wire (of a 156-byte packet). Byte-exact both ways.
#[test]
fn seed_documents_frame_decodes_and_encodes_byte_exact() {
    let bytes = fs::read(fixtures().join("seed/seed_header_frame.bin")).unwrap();
    assert_eq!(bytes.len(), 90);
    let frames = decode_stream(&bytes);
    assert_eq!(frames.len(), 1);
    let (_, raw, frame) = &frames[0];
    let Frame::Header(channel, h) = frame else {
        panic!("{frame:?}")
    };
    assert_eq!(*channel, 1);
    assert_eq!(raw.len() - 8, 82, "Length: 82");
    assert_eq!(h.class_id, 60);
    assert_eq!(h.weight, 0);
    assert_eq!(h.body_size, 2);
    assert_eq!(h.properties.flags(), 0x0600);
    assert_eq!(
        h.properties.correlation_id.as_ref().unwrap(),
        "c1e5f310-0996-45fb-a3d8-bf2081cd891c"
    );
    assert_eq!(
        h.properties.reply_to.as_ref().unwrap(),
        "amq.gen-p169XGGXAjsVdvgeJjMlOw"
    );

    // Built from scratch, the same frame encodes to the same 90 bytes.
    let built = Frame::Header(
        1,
        amqp_codec::ContentHeader::new(
            2,
            amqp_codec::BasicProperties::default()
                .with_correlation_id("c1e5f310-0996-45fb-a3d8-bf2081cd891c")
                .with_reply_to("amq.gen-p169XGGXAjsVdvgeJjMlOw"),
        ),
    );
    let mut out = BytesMut::new();
    built.encode(&mut out).unwrap();
    assert_eq!(&out[..], &bytes[..]);

    // And tshark's dissection of the seed packet agrees field by field.
    let exp: Value = serde_json::from_str(
        fs::read_to_string(fixtures().join("seed/seed_packet.expect.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    check_frame("seed", raw, frame, &exp);
}

/// The spec's constants section (fixtures/spec/constants.tsv, derived from the spec JSON): every
/// reply code is a `ReplyCode` with the spec's name and class, every frame constant is ours.
#[test]
fn spec_constants_match_the_codec() {
    use amqp_codec::reply_code::{Severity, ALL_REPLY_CODES};
    use amqp_codec::{constants, ReplyCode};
    let text = fs::read_to_string(fixtures().join("spec/constants.tsv")).unwrap();
    let mut codes = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split('\t').collect();
        let (name, value, class) = (cells[0], cells[1].parse::<u32>().unwrap(), cells.get(2));
        let frame_constant = match name {
            "FRAME-METHOD" => Some(u32::from(constants::FRAME_METHOD)),
            "FRAME-HEADER" => Some(u32::from(constants::FRAME_HEADER)),
            "FRAME-BODY" => Some(u32::from(constants::FRAME_BODY)),
            "FRAME-HEARTBEAT" => Some(u32::from(constants::FRAME_HEARTBEAT)),
            "FRAME-MIN-SIZE" => Some(constants::FRAME_MIN_SIZE),
            "FRAME-END" => Some(u32::from(constants::FRAME_END)),
            _ => None,
        };
        if let Some(ours) = frame_constant {
            assert_eq!(ours, value, "{name}");
            continue;
        }
        let code = ReplyCode::from(value as u16);
        assert_eq!(code.name(), name.replace('-', "_"), "{value}");
        let severity = match class.copied().unwrap_or("") {
            "soft-error" => Some(Severity::Soft),
            "hard-error" => Some(Severity::Hard),
            _ => None,
        };
        assert_eq!(code.severity(), severity, "{name}");
        codes.push(code);
    }
    codes.sort_by_key(|c| c.code());
    let mut ours = ALL_REPLY_CODES.to_vec();
    ours.sort_by_key(|c| c.code());
    assert_eq!(codes, ours, "every spec reply code and no other");
}
