//! A scenario's traffic captured by tshark, then decoded twice: by `amqp-rpc decode --json` and by
//! tshark's own AMQP dissector (through `fixtures/tools/tshark_expect.py`, the golden tests'
//! oracle), and the two compared frame by frame.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::{self, Proc, STEP};
use super::{repo, BIN};

/// tshark writing the packets to and from `host:5672` into a pcapng file until stopped.
pub struct Capture {
    tshark: Proc,
    pub path: PathBuf,
}

impl Capture {
    pub fn start(host: &str, path: PathBuf) -> Capture {
        let _ = std::fs::remove_file(&path);
        let filter = format!("host {host} and tcp port 5672");
        let mut tshark = Proc::spawn(
            "tshark",
            Command::new("tshark")
                .args(["-i", "lo", "-f", &filter, "-w"])
                .arg(&path),
        );
        // Printed once the capture filter is set on the open interface. tshark needs root (or the
        // wireshark group's capture rights) for this.
        tshark.expect_line("Capturing on");
        // The same margin as fixtures/tools/capture.py: packets right after the message were seen
        // missing.
        std::thread::sleep(Duration::from_millis(500));
        Capture { tshark, path }
    }

    /// Stops tshark (SIGINT: it writes what it has and exits) once the last packets are in.
    pub fn stop(self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(300));
        self.tshark.signal("INT");
        let (status, lines) = self.tshark.finish(Instant::now() + STEP);
        assert!(status.success(), "tshark failed: {status}; {lines:#?}");
        self.path
    }
}

/// What one capture holds, as both decoders agree on it.
#[derive(Debug, Default)]
pub struct Agreed {
    /// AMQP frames (protocol headers included).
    pub frames: usize,
    /// TCP connections.
    pub streams: usize,
    /// Methods by tshark's label (`Basic.Publish`) and how many.
    pub methods: BTreeMap<String, usize>,
    /// Every correlation-id in a content header, as bytes.
    pub correlation_ids: Vec<Vec<u8>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// A short string's octets from either decoder: text, or `{"hex": ...}` when not UTF-8.
fn octets(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Object(o) => o.get("hex")?.as_str().map(unhex),
        _ => None,
    }
}

/// Does our value say what tshark's does? tshark shows `longstr` bytes (`response`) as hex and
/// tables as `{key: {type, value}}` like ours; numbers and booleans compare as they are.
fn same(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::String(a), Value::String(b)) => a == b || hex(a.as_bytes()) == *b,
        (Value::Object(a), Value::String(b)) if a.contains_key("hex") => a["hex"] == *b,
        (Value::Object(a), Value::Object(b)) if b.contains_key("hex") => {
            octets(ours) == octets(theirs)
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (a, b) => a == b,
    }
}

fn frame_type(t: &Value) -> &str {
    match t {
        Value::String(s) => s,
        Value::Number(n) => match n.as_u64() {
            Some(1) => "method",
            Some(2) => "header",
            Some(3) => "body",
            Some(8) => "heartbeat",
            _ => "?",
        },
        _ => "?",
    }
}

fn decode_ours(capture: &Path) -> Vec<Value> {
    let out = process::run(
        "amqp-rpc decode --json",
        Command::new(BIN)
            .args(["decode", "--json", "--color", "never"])
            .arg(capture),
    );
    assert!(out.0.success(), "amqp-rpc decode failed: {:#?}", out.1);
    out.1
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("decode --json line {l}: {e}")))
        .collect()
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Decodes `capture` with `amqp-rpc decode --json` and with tshark, and compares every frame:
/// position (connection, direction, offset), type, channel, length, class and method, every method
/// argument, every content property (correlation ids as bytes), body sizes and bytes. Fails listing
/// the differences; on agreement returns what the capture holds.
pub fn decode_against_tshark(capture: &Path) -> Agreed {
    decode_against_tshark_on(capture, 5672)
}

/// [`decode_against_tshark`] for a capture whose broker is on `port` (tshark is told to decode
/// it as AMQP).
pub fn decode_against_tshark_on(capture: &Path, port: u16) -> Agreed {
    let ours = decode_ours(capture);
    let expect = capture.with_extension("expect.jsonl");
    let out = process::run(
        "tshark_expect.py",
        Command::new("python3")
            .arg(repo().join("fixtures/tools/tshark_expect.py"))
            .arg(capture)
            .arg("--port")
            .arg(port.to_string())
            .arg("-o")
            .arg(&expect),
    );
    assert!(out.0.success(), "tshark_expect.py failed: {:#?}", out.1);
    compare(capture, &ours, &read_jsonl(&expect))
}

fn compare(capture: &Path, ours: &[Value], theirs: &[Value]) -> Agreed {
    let key = |v: &Value, dir: &str| {
        (
            v["stream"].as_u64().unwrap_or(u64::MAX),
            v[dir].as_str().unwrap_or("?").to_string(),
            v["offset"].as_u64().unwrap_or(u64::MAX),
        )
    };
    let errors: Vec<&Value> = ours.iter().filter(|v| v["type"] == "error").collect();
    let ours_by: BTreeMap<_, &Value> = ours
        .iter()
        .filter(|v| v["type"] != "error")
        .map(|v| (key(v, "direction"), v))
        .collect();
    let mut bad: Vec<String> = errors
        .iter()
        .map(|e| format!("amqp-rpc decode reports an error: {e}"))
        .collect();
    let mut agreed = Agreed::default();
    let mut streams = std::collections::BTreeSet::new();
    for t in theirs {
        let k = key(t, "dir");
        streams.insert(k.0);
        let Some(o) = ours_by.get(&k) else {
            bad.push(format!("frame at {k:?} ({t}) missing from amqp-rpc decode"));
            continue;
        };
        let mut check = |what: &str, a: &Value, b: &Value| {
            if !same(a, b) {
                bad.push(format!("{k:?} {what}: amqp-rpc decode {a}, tshark {b}"));
            }
        };
        let ty = frame_type(&t["type"]).to_string();
        check("type", &o["type"], &Value::String(ty.clone()));
        check("packet", &o["packet"], &t["frame"]);
        if ty == "protocol-header" {
            check("bytes", &o["protocol"], &t["bytes_hex"]);
            continue;
        }
        check("channel", &o["channel"], &t["channel"]);
        check("length", &o["length"], &t["length"]);
        match ty.as_str() {
            "method" => {
                check("class_id", &o["class_id"], &t["class_id"]);
                check("method_id", &o["method_id"], &t["method_id"]);
                for (arg, tv) in t["args"].as_object().into_iter().flatten() {
                    check(arg, o["arguments"].get(arg).unwrap_or(&Value::Null), tv);
                }
                let label = t["method"].as_str().unwrap_or("?").to_string();
                *agreed.methods.entry(label).or_default() += 1;
            }
            "header" => {
                for field in ["class_id", "weight", "body_size", "property_flags"] {
                    check(field, &o[field], &t[field]);
                }
                let (op, tp) = (&o["properties"], &t["properties"]);
                let names = |v: &Value| -> Vec<String> {
                    v.as_object()
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default()
                };
                check(
                    "property names",
                    &Value::from(names(op)),
                    &Value::from(names(tp)),
                );
                for (p, tv) in tp.as_object().into_iter().flatten() {
                    // tshark shows the timestamp property only as date text; no program here sets it.
                    if p != "timestamp" {
                        check(p, &op[p], tv);
                    }
                }
                if let Some(id) = tp.get("correlation-id").and_then(octets) {
                    agreed.correlation_ids.push(id);
                }
            }
            "body" => {
                check("payload_len", &o["payload_len"], &t["payload_len"]);
                if t.get("payload_hex").is_some() {
                    check("payload_hex", &o["payload_hex"], &t["payload_hex"]);
                }
            }
            _ => {}
        }
    }
    agreed.frames = theirs.len();
    agreed.streams = streams.len();
    if ours_by.len() != theirs.len() {
        bad.push(format!(
            "amqp-rpc decode found {} frames, tshark {}",
            ours_by.len(),
            theirs.len()
        ));
    }
    assert!(
        bad.is_empty(),
        "{}: amqp-rpc decode and tshark disagree ({} differences):\n  {}",
        capture.display(),
        bad.len(),
        bad.iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    agreed
}

/// The comparison on a fixture capture (pika's tutorial six, with tshark's view recorded beside
/// it): it agrees there, and a changed correlation-id byte or a missing frame is caught.
#[test]
fn comparison_catches_a_changed_correlation_id_and_a_missing_frame() {
    let capture = repo().join("fixtures/captures/tutorial6.pcapng");
    let ours = decode_ours(&capture);
    let theirs = read_jsonl(&capture.with_extension("expect.jsonl"));
    let agreed = compare(&capture, &ours, &theirs);
    assert_eq!((agreed.streams, agreed.correlation_ids.len()), (2, 4));

    let mut changed = theirs.clone();
    let header = changed
        .iter_mut()
        .find(|t| t["properties"].get("correlation-id").is_some())
        .expect("a header with a correlation-id");
    let id = header["properties"]["correlation-id"]
        .as_str()
        .unwrap()
        .to_string();
    header["properties"]["correlation-id"] = Value::from(format!("x{}", &id[1..]));
    let missing: Vec<Value> = theirs[1..].to_vec();
    for (what, bad) in [("changed id", changed), ("missing frame", missing)] {
        let caught = std::panic::catch_unwind(|| compare(&capture, &ours, &bad)).is_err();
        assert!(caught, "the comparison missed a {what}");
    }
}
