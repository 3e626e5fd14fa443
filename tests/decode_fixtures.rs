//! `amqp-rpc decode` against tshark: every AMQP frame of every fixture capture, compared frame by
//! frame with tshark's dissection (`fixtures/captures/NAME.expect.jsonl`), from the pcapng file
//! and from tshark's own `-x` hex dump of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use amqp_rpc::decode::{decode_slice, DecodeArgs, Outcome};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn captures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("fixtures/captures"))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".expect.jsonl").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no fixtures");
    names
}

/// Decode a file with `--json`; the objects and the outcome.
pub fn decode_json(path: &Path) -> (Vec<Value>, Outcome) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut args = DecodeArgs::new(None);
    args.json = true;
    let (out, result) = decode_slice(&bytes, &args);
    let outcome = result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let objects = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (objects, outcome)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Our `YYYY-MM-DD HH:MM:SS UTC` rendering of seconds, in tshark's `Nov 14, 2023 22:13:20.000000000 UTC`.
fn tshark_time(seconds: u64) -> String {
    let text = amqp_rpc::decode::print::utc(seconds);
    let (date, time) = text.split_once(' ').unwrap();
    let time = time.trim_end_matches(" UTC");
    let mut parts = date.split('-');
    let (y, m, d) = (
        parts.next().unwrap(),
        parts.next().unwrap().parse::<usize>().unwrap(),
        parts.next().unwrap().parse::<u32>().unwrap(),
    );
    format!("{} {d:>2}, {y} {time}.000000000 UTC", MONTHS[m - 1])
}

/// Does our JSON value say what tshark's does? Strings tshark shows as hex match our text's
/// bytes; decimals compare as numbers; timestamps through tshark's date format.
fn same(ours: &Value, theirs: &Value, ty: Option<&str>) -> bool {
    match (ours, theirs) {
        (Value::String(a), Value::String(b)) if ty == Some("decimal") => {
            a.parse::<f64>().ok() == b.parse::<f64>().ok()
        }
        (Value::Number(a), Value::String(b)) if ty == Some("timestamp") => {
            a.as_u64().map(tshark_time).as_deref() == Some(b.as_str())
        }
        (Value::String(a), Value::String(b)) => a == b || hex(a.as_bytes()) == *b,
        (Value::Object(a), Value::String(b)) if a.contains_key("hex") => a["hex"] == *b,
        (Value::Object(a), Value::Object(b)) => {
            // A typed table value {"type", "value"} or a table of them.
            if let (Some(ta), Some(tb)) = (a.get("type"), b.get("type")) {
                if b.len() == 2 && b.contains_key("value") {
                    return ta == tb && same(&a["value"], &b["value"], tb.as_str());
                }
            }
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same(v, w, None)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y, None))
        }
        (a, b) => a == b,
    }
}

/// Compare our frames with tshark's; returns the mismatches.
///
/// `from_pcap`: frames are matched by stream offset and packet number. From a `-Y amqp` hex dump,
/// which leaves out the packet with the protocol header (and the SYN, so offsets count from the
/// first byte shown), frames are matched by their order in each direction instead.
pub fn compare(name: &str, ours: &[Value], expect_path: &Path, from_pcap: bool) -> Vec<String> {
    let check_packets = from_pcap;
    let text = std::fs::read_to_string(expect_path).unwrap();
    let mut theirs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut ours: Vec<Value> = ours.to_vec();
    if !from_pcap {
        for (list, dir) in [(&mut theirs, "dir"), (&mut ours, "direction")] {
            list.retain(|v| v["type"] != "protocol-header");
            let mut seen: BTreeMap<(u64, String), u64> = BTreeMap::new();
            for v in list.iter_mut() {
                let n = seen
                    .entry((v["stream"].as_u64().unwrap_or(0), v[dir].to_string()))
                    .or_default();
                v["offset"] = Value::from(*n);
                *n += 1;
            }
        }
    }
    let key = |v: &Value, dir: &str| {
        (
            v["stream"].as_u64().unwrap_or(u64::MAX),
            v[dir].as_str().unwrap_or("?").to_string(),
            v["offset"].as_u64().unwrap_or(u64::MAX),
        )
    };
    let ours_by: BTreeMap<_, &Value> = ours.iter().map(|v| (key(v, "direction"), v)).collect();
    let mut bad = Vec::new();
    for t in &theirs {
        let k = key(t, "dir");
        let Some(o) = ours_by.get(&k) else {
            bad.push(format!("{name}: missing frame at {k:?}"));
            continue;
        };
        let mut check = |what: &str, a: &Value, b: &Value, ty: Option<&str>| {
            if !same(a, b, ty) {
                bad.push(format!("{name} {k:?} {what}: ours {a} tshark {b}"));
            }
        };
        let ty = match &t["type"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => match n.as_u64() {
                Some(1) => "method".into(),
                Some(2) => "header".into(),
                Some(3) => "body".into(),
                Some(8) => "heartbeat".into(),
                _ => "?".into(),
            },
            _ => "?".into(),
        };
        check("type", &o["type"], &Value::String(ty.clone()), None);
        if check_packets {
            check("packet", &o["packet"], &t["frame"], None);
        }
        if ty == "protocol-header" {
            check("bytes", &o["protocol"], &t["bytes_hex"], None);
            continue;
        }
        for field in ["channel", "length"] {
            check(field, &o[field], &t[field], None);
        }
        match ty.as_str() {
            "method" => {
                for field in ["class_id", "method_id"] {
                    check(field, &o[field], &t[field], None);
                }
                let (oa, ta) = (&o["arguments"], &t["args"]);
                for (arg, tv) in ta.as_object().into_iter().flatten() {
                    check(arg, oa.get(arg).unwrap_or(&Value::Null), tv, None);
                }
            }
            "header" => {
                for field in ["class_id", "weight", "body_size", "property_flags"] {
                    check(field, &o[field], &t[field], None);
                }
                let (op, tp) = (&o["properties"], &t["properties"]);
                check("property names", &keys(op), &keys(tp), None);
                for (p, tv) in tp.as_object().into_iter().flatten() {
                    let ty = (p == "timestamp").then_some("timestamp");
                    check(p, &op[p], tv, ty);
                }
            }
            "body" => {
                check("payload_len", &o["payload_len"], &t["payload_len"], None);
                // tshark_expect.py keeps the hex of payloads up to 64 bytes only.
                if t.get("payload_hex").is_some() {
                    check("payload_hex", &o["payload_hex"], &t["payload_hex"], None);
                }
            }
            _ => {}
        }
    }
    let frames = ours.iter().filter(|v| v["type"] != "error").count();
    if frames != theirs.len() {
        bad.push(format!("{name}: {frames} frames, tshark {}", theirs.len()));
    }
    bad
}

fn keys(v: &Value) -> Value {
    let mut k: Vec<&String> = v
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    k.sort();
    Value::from(k.into_iter().cloned().collect::<Vec<_>>())
}

#[test]
fn every_capture_matches_tshark_frame_by_frame() {
    let mut bad = Vec::new();
    for name in captures() {
        let dir = root().join("fixtures/captures");
        let (ours, outcome) = decode_json(&dir.join(format!("{name}.pcapng")));
        bad.extend(compare(
            &name,
            &ours,
            &dir.join(format!("{name}.expect.jsonl")),
            true,
        ));
        assert_eq!(outcome.errors, 0, "{name}: {ours:?}");
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_tshark_hex_dump_matches_tshark() {
    // tshark -x -Y amqp shows only the packets carrying AMQP, so packet numbers differ; frames,
    // streams and offsets do not (the dump starts at the protocol header of each stream).
    let mut bad = Vec::new();
    for name in captures() {
        let dir = root().join("fixtures/captures");
        let (ours, outcome) = decode_json(&dir.join(format!("{name}.x.txt")));
        bad.extend(compare(
            &name,
            &ours,
            &dir.join(format!("{name}.expect.jsonl")),
            false,
        ));
        assert_eq!(outcome.errors, 0, "{name}");
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// Every input form of tutorial six in `fixtures/decode/` (made by `make_variants.py`): all hold
/// every packet of the capture, so frames match tshark's by offset and packet number.
#[test]
fn every_input_format_of_tutorial_six_matches_tshark() {
    let expect = root().join("fixtures/captures/tutorial6.expect.jsonl");
    let variants = [
        "le.pcap",
        "be.pcap",
        "nsec.pcap",
        "rawip.pcap",
        "null.pcap",
        "loop.pcap",
        "sll.pcap",
        "sll2.pcap",
        "ipv6.pcapng",
        "text2pcap.pcap",
        "all.x.txt",
        "wireshark.txt",
        "xxd.txt",
        "hexdump.txt",
        "od.txt",
    ];
    let mut bad = Vec::new();
    for v in variants {
        let path = root().join(format!("fixtures/decode/tutorial6.{v}"));
        let (ours, outcome) = decode_json(&path);
        assert_eq!(outcome.errors, 0, "{v}");
        bad.extend(compare(v, &ours, &expect, true));
        let has_time = ours.iter().all(|o| o.get("time").is_some());
        assert_eq!(has_time, v.contains("pcap"), "{v}: timestamps");
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn capture_timestamps_agree_across_byte_orders_and_resolutions() {
    let times = |v: &str| -> Vec<f64> {
        let (ours, _) = decode_json(&root().join(format!("fixtures/decode/tutorial6.{v}")));
        ours.iter().map(|o| o["time"].as_f64().unwrap()).collect()
    };
    let le = times("le.pcap");
    for v in ["be.pcap", "nsec.pcap", "sll2.pcap"] {
        let other = times(v);
        assert_eq!(le.len(), other.len());
        assert!(
            le.iter().zip(&other).all(|(a, b)| (a - b).abs() < 1e-6),
            "{v}"
        );
    }
    let (ng, _) = decode_json(&root().join("fixtures/captures/tutorial6.pcapng"));
    assert!((ng[0]["time"].as_f64().unwrap() - le[0]).abs() < 1e-6);
}

/// A raw client stream as `xxd` shows it matches tshark's client frames of that stream.
#[test]
fn raw_stream_as_xxd_matches_the_client_side() {
    let (ours, outcome) = decode_json(&root().join("fixtures/decode/tutorial6.s1.client.xxd.txt"));
    assert_eq!(outcome.errors, 0);
    let text =
        std::fs::read_to_string(root().join("fixtures/captures/tutorial6.expect.jsonl")).unwrap();
    let theirs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["stream"] == 1 && v["dir"] == "client")
        .collect();
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(o["direction"], "client");
        assert_eq!(o["offset"], t["offset"]);
        assert_eq!(o["channel"], t["channel"]);
    }
}

/// The seed document's frame, whole 156-byte packet, in every hex form people paste.
#[test]
fn seed_packet_in_every_hex_form_shows_flags_correlation_id_and_reply_to() {
    let files = [
        "fixtures/seed/seed_packet.x.txt",
        "fixtures/seed/seed_packet.pcap",
        "fixtures/seed/seed_header_frame.bin",
        "fixtures/decode/seed_packet.plain.txt",
        "fixtures/decode/seed_packet.colons.txt",
        "fixtures/decode/seed_packet.0x.txt",
    ];
    for f in files {
        let bytes = std::fs::read(root().join(f)).unwrap();
        let (out, result) = decode_slice(&bytes, &DecodeArgs::new(None));
        let outcome = result.unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!((outcome.frames, outcome.errors), (1, 0), "{f}");
        for needle in [
            "Type: Content header (2)",
            "Channel: 1",
            "Length: 82",
            "Class ID: Basic (60)",
            "Body size: 2",
            "Property flags: 0x0600",
            "Correlation-Id: c1e5f310-0996-45fb-a3d8-bf2081cd891c",
            "Reply-To: amq.gen-p169XGGXAjsVdvgeJjMlOw",
        ] {
            assert!(out.contains(needle), "{f}: no {needle:?} in\n{out}");
        }
        assert!(out.contains("client → broker"), "{f}");
    }
}

/// Tutorial six captured live with `tshark -i any` in both Linux cooked formats (SLL and SLL2;
/// `fixtures/tools/gen_any.py`): every frame matches tshark's own dissection of that capture, and
/// the request's content header shows flags 0x0600.
#[test]
fn live_any_interface_captures_match_tshark() {
    let mut bad = Vec::new();
    for v in ["any-sll", "any-sll2"] {
        let path = root().join(format!("fixtures/decode/tutorial6.{v}.pcapng"));
        let (ours, outcome) = decode_json(&path);
        assert_eq!(outcome.errors, 0, "{v}");
        assert_eq!(ours.len(), 53, "{v}: frames");
        assert!(
            ours.iter()
                .any(|o| o["type"] == "header" && o["property_flags"] == 0x0600),
            "{v}: the request's header"
        );
        bad.extend(compare(
            v,
            &ours,
            &root().join(format!("fixtures/decode/tutorial6.{v}.expect.jsonl")),
            true,
        ));
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
