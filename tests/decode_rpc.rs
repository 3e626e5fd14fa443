//! `amqp-rpc decode --rpc` against the captures' own view of themselves: every call of every RPC
//! fixture is paired exactly as tshark's dissection of the capture says it must be.
//!
//! The oracle uses nothing of ours: `NAME.expect.jsonl` (tshark's frames: method, arguments,
//! properties, tshark's frame number) and `NAME.times.tsv` (tshark's `frame.time_epoch` of each
//! AMQP packet). In these fixtures every correlation id is a fresh uuid, so the oracle can pair by
//! correlation id alone and in frame order; `amqp_dissect::rpc` must reach the same result the
//! general way (reply queue, direct reply-to rewriting, acks by channel and tag) and stream.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use amqp_rpc::decode::{decode_slice, DecodeArgs};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn captures() -> PathBuf {
    root().join("fixtures/captures")
}

/// Our `--rpc --json` (or text) output for a file.
fn rpc(path: &Path, json: bool) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut args = DecodeArgs::new(None);
    args.rpc = true;
    args.json = json;
    let (out, result) = decode_slice(&bytes, &args);
    let outcome = result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(outcome.errors, 0, "{}", path.display());
    out
}

fn calls(path: &Path) -> Vec<Value> {
    rpc(path, true)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// A leg as the oracle expects it.
#[derive(Debug, Clone, PartialEq)]
struct Leg {
    stream: u64,
    channel: u64,
    frame: u64,
    time: f64,
    body_size: Option<u64>,
    delivery_tag: Option<u64>,
    redelivered: Option<bool>,
}

/// A content-bearing method with its content header, from tshark's frames.
#[derive(Debug, Clone)]
struct Message {
    method: String,
    client_dir: bool,
    leg: Leg,
    args: Value,
    props: Value,
}

#[derive(Debug, Default)]
struct Oracle {
    messages: Vec<Message>,
    /// (stream, channel, tag, multiple, frame, time) of every consumer ack (client → broker).
    acks: Vec<(u64, u64, u64, bool, u64, f64)>,
}

fn times(name: &str) -> HashMap<u64, f64> {
    let text = std::fs::read_to_string(captures().join(format!("{name}.times.tsv"))).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let (frame, time) = l.split_once('\t').unwrap();
            (frame.parse().unwrap(), time.parse().unwrap())
        })
        .collect()
}

fn oracle(name: &str) -> Oracle {
    let times = times(name);
    let text = std::fs::read_to_string(captures().join(format!("{name}.expect.jsonl"))).unwrap();
    let frames: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut oracle = Oracle::default();
    // Within a (stream, direction), expect.jsonl is in stream order: a content method's header
    // is the next frame on its channel.
    let mut waiting: HashMap<(u64, String, u64), usize> = HashMap::new();
    for f in &frames {
        let stream = f["stream"].as_u64().unwrap();
        let dir = f["dir"].as_str().unwrap().to_string();
        let channel = f["channel"].as_u64().unwrap_or(0);
        let frame = f["frame"].as_u64().unwrap();
        if f["type"] == "protocol-header" {
            // tshark's `amqp` filter (hence times.tsv) leaves the protocol header out.
            continue;
        }
        let time = times[&frame];
        match f["type"].as_u64() {
            Some(1) => {
                let method = f["method"].as_str().unwrap().to_string();
                let args = f["args"].clone();
                if method == "Basic.Ack" && dir == "client" {
                    oracle.acks.push((
                        stream,
                        channel,
                        args["delivery-tag"].as_u64().unwrap(),
                        args["multiple"].as_bool().unwrap(),
                        frame,
                        time,
                    ));
                }
                if ["Basic.Publish", "Basic.Deliver", "Basic.Return"].contains(&method.as_str()) {
                    let leg = Leg {
                        stream,
                        channel,
                        frame,
                        time,
                        body_size: None,
                        delivery_tag: args["delivery-tag"].as_u64(),
                        redelivered: args["redelivered"].as_bool(),
                    };
                    waiting.insert((stream, dir.clone(), channel), oracle.messages.len());
                    oracle.messages.push(Message {
                        method,
                        client_dir: dir == "client",
                        leg,
                        args,
                        props: Value::Null,
                    });
                }
            }
            Some(2) => {
                if let Some(i) = waiting.remove(&(stream, dir, channel)) {
                    let m = &mut oracle.messages[i];
                    m.props = f["properties"].clone();
                    m.leg.body_size = f["body_size"].as_u64();
                }
            }
            _ => {}
        }
    }
    oracle
}

/// The calls tshark's frames say there are, by correlation id, in order of the request.
fn expected(name: &str) -> Vec<(String, BTreeMap<&'static str, Value>)> {
    let o = oracle(name);
    let corr = |m: &Message| m.props["correlation-id"].as_str().map(str::to_string);
    let has_reply_to = |m: &Message| m.props.get("reply-to").is_some();
    let mut requests: Vec<&Message> = o
        .messages
        .iter()
        .filter(|m| m.method == "Basic.Publish" && m.client_dir && has_reply_to(m))
        .collect();
    requests.sort_by_key(|m| m.leg.frame);
    let mut out = Vec::new();
    for request in requests {
        let id = corr(request).expect("fixture requests carry a correlation id");
        let of = |method: &str, reply_to: bool| -> Vec<&Message> {
            let mut v: Vec<&Message> = o
                .messages
                .iter()
                .filter(|m| {
                    m.method == method
                        && corr(m).as_deref() == Some(id.as_str())
                        && has_reply_to(m) == reply_to
                        && !std::ptr::eq(*m, request)
                })
                .collect();
            v.sort_by_key(|m| m.leg.frame);
            v
        };
        let deliveries = of("Basic.Deliver", true);
        let replies = of("Basic.Publish", false);
        let reply_deliveries = of("Basic.Deliver", false);
        let returns = of("Basic.Return", true);
        let first_reply = replies.first().map(|m| m.leg.frame).unwrap_or(u64::MAX);
        let delivery = deliveries
            .iter()
            .rev()
            .find(|d| d.leg.frame < first_reply)
            .map(|m| m.leg.clone());
        let ack = delivery.as_ref().and_then(|d| {
            let tag = d.delivery_tag.unwrap();
            o.acks
                .iter()
                .find(|&&(s, c, t, multiple, frame, _)| {
                    s == d.stream
                        && c == d.channel
                        && frame > d.frame
                        && (t == tag || multiple && (t == 0 || t >= tag))
                })
                .map(|&(stream, channel, _, _, frame, time)| Leg {
                    stream,
                    channel,
                    frame,
                    time,
                    body_size: None,
                    delivery_tag: Some(tag),
                    redelivered: None,
                })
        });
        let reply = replies.first().map(|m| m.leg.clone());
        let reply_delivery = reply_deliveries.first().map(|m| m.leg.clone());
        let x_error = replies
            .first()
            .and_then(|m| m.props["headers"]["x-error"]["value"].as_str())
            .map(str::to_string);
        let (outcome, error) = if let Some(r) = returns.first() {
            let code = r.args["reply-code"].as_u64().unwrap();
            let text = r.args["reply-text"].as_str().unwrap();
            ("returned", Some(format!("{code} {text}")))
        } else if reply.is_some() || reply_delivery.is_some() {
            match x_error {
                Some(e) => ("error", Some(e)),
                None => ("answered", None),
            }
        } else {
            ("no-reply", None)
        };
        let mut call: BTreeMap<&'static str, Value> = BTreeMap::new();
        let leg_json = |l: &Option<Leg>| match l {
            None => Value::Null,
            Some(l) => serde_json::json!({
                "stream": l.stream, "channel": l.channel, "packet": l.frame, "time": l.time,
                "body_size": l.body_size, "delivery_tag": l.delivery_tag, "redelivered": l.redelivered,
            }),
        };
        let ms = |a: &Option<Leg>, b: &Option<Leg>| match (a, b) {
            (Some(a), Some(b)) => serde_json::json!(((b.time - a.time) * 1e6).round() / 1e3),
            _ => Value::Null,
        };
        let request_leg = Some(request.leg.clone());
        call.insert("queue", request.args["routing-key"].clone());
        call.insert("reply_to", request.props["reply-to"].clone());
        call.insert("outcome", Value::from(outcome));
        call.insert("error", serde_json::json!(error));
        call.insert(
            "duplicates",
            Value::from(replies.len().max(reply_deliveries.len()).saturating_sub(1)),
        );
        call.insert("deliveries", Value::from(deliveries.len()));
        call.insert("request", leg_json(&request_leg));
        call.insert("delivery", leg_json(&delivery));
        call.insert("reply", leg_json(&reply));
        call.insert("reply_delivery", leg_json(&reply_delivery));
        call.insert("ack", leg_json(&ack));
        call.insert(
            "returned",
            leg_json(&returns.first().map(|m| m.leg.clone())),
        );
        call.insert(
            "latency_ms",
            serde_json::json!({
                "total": ms(&request_leg, &reply_delivery),
                "to_server": ms(&request_leg, &delivery),
                "server": ms(&delivery, &reply),
                "to_client": ms(&reply, &reply_delivery),
            }),
        );
        out.push((id, call));
    }
    out
}

/// Does our value say what the oracle's does? Integers exactly; capture times within 2 µs (ours
/// are f64 seconds from the capture's integer timestamps, tshark's its decimal text read as f64);
/// latencies, in ms rounded to the µs, within a µs (a rounding may fall either side).
fn same(ours: &Value, theirs: &Value, tolerance: f64) -> bool {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => b
            .iter()
            .all(|(k, v)| same(a.get(k).unwrap_or(&Value::Null), v, tolerance)),
        (Value::Number(a), Value::Number(b)) => match (a.as_u64(), b.as_u64()) {
            (Some(a), Some(b)) => a == b,
            _ => (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= tolerance,
        },
        _ => ours == theirs,
    }
}

fn check(name: &str) -> Vec<Value> {
    let ours = calls(&captures().join(format!("{name}.pcapng")));
    let theirs = expected(name);
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{name}: {} calls, tshark's frames hold {} requests",
        ours.len(),
        theirs.len()
    );
    let mut bad = Vec::new();
    for (i, (call, (id, want))) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(
            call["call"],
            i as u64 + 1,
            "{name}: calls in order of the request"
        );
        if call["correlation_id"] != id.as_str() {
            bad.push(format!(
                "{name} call {}: correlation id {} but request {} is {id}",
                i + 1,
                call["correlation_id"],
                i + 1
            ));
            continue;
        }
        for (key, value) in want {
            let tolerance = if *key == "latency_ms" { 1.001e-3 } else { 2e-6 };
            if !same(&call[*key], value, tolerance) {
                bad.push(format!(
                    "{name} call {} ({id}) {key}: ours {} tshark {value}",
                    i + 1,
                    call[*key]
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
    ours
}

fn count(calls: &[Value], outcome: &str) -> usize {
    calls.iter().filter(|c| c["outcome"] == outcome).count()
}

#[test]
fn tutorial_six_pika_client_and_server() {
    let calls = check("tutorial6");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["outcome"], "answered");
    assert_eq!(calls[0]["queue"], "rpc_queue");
    assert!(calls[0]["ack"].is_object(), "the pika server acks");
}

#[test]
fn two_hundred_calls_sixteen_in_flight() {
    let calls = check("rpc_inflight");
    assert_eq!(count(&calls, "answered"), 200);
    // The server acks with prefetch 64: many acks cover several deliveries at once, or come in
    // one packet with other frames; every call still has its own.
    assert!(calls
        .iter()
        .all(|c| c["ack"].is_object() && c["delivery"].is_object()));
    let overlapping = calls
        .windows(2)
        .filter(|w| w[1]["request"]["time"].as_f64() < w[0]["reply_delivery"]["time"].as_f64())
        .count();
    assert!(overlapping > 100, "calls overlap: {overlapping}");
}

#[test]
fn direct_reply_to_pairs_through_the_rewritten_name() {
    let calls = check("rpc_direct");
    assert_eq!(count(&calls, "answered"), 3);
    for c in &calls {
        assert_eq!(c["reply_to"], "amq.rabbitmq.reply-to");
        // The server publishes direct replies on a connection of its own: a third stream.
        let (delivery, reply) = (&c["delivery"]["stream"], &c["reply"]["stream"]);
        assert_ne!(delivery, reply, "{c}");
        assert_eq!(c["request"]["stream"], c["reply_delivery"]["stream"]);
    }
}

#[test]
fn a_request_to_no_queue_is_returned() {
    let calls = check("rpc_returned");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["outcome"], "returned");
    assert_eq!(calls[0]["error"], "312 NO_ROUTE");
    assert!(calls[0]["delivery"].is_null() && calls[0]["reply"].is_null());
}

#[test]
fn an_error_reply_carries_its_code() {
    let calls = check("rpc_error");
    assert_eq!(calls[0]["outcome"], "error");
    assert_eq!(calls[0]["error"], "bad-request");
    assert_eq!(calls[1]["outcome"], "answered");
    assert!(calls[1]["error"].is_null());
}

#[test]
fn a_server_killed_mid_request_and_the_request_redelivered() {
    let calls = check("rpc_redelivered");
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c["outcome"], "answered");
    assert_eq!(c["deliveries"], 2);
    assert_eq!(c["delivery"]["redelivered"], true);
    assert_ne!(c["delivery"]["stream"], 0, "the second server's delivery");
    // The text view names the problems: the first delivery lost with its connection, and the
    // redelivery.
    let text = rpc(&captures().join("rpc_redelivered.pcapng"), false);
    assert!(text.contains("redelivered: 1"), "{text}");
    assert!(
        text.contains("connection lost (no connection.close)"),
        "{text}"
    );
    assert!(text.contains("calls: 1: answered 1"), "{text}");
}

/// The same pairing from tshark's `-x` hex dump of each capture: no timestamps there, but the
/// same calls with the same outcomes.
#[test]
fn hex_dumps_pair_the_same_calls() {
    for name in [
        "tutorial6",
        "rpc_inflight",
        "rpc_direct",
        "rpc_returned",
        "rpc_error",
        "rpc_redelivered",
    ] {
        let from_dump = calls(&captures().join(format!("{name}.x.txt")));
        let from_capture = calls(&captures().join(format!("{name}.pcapng")));
        let key = |c: &Value| {
            (
                c["correlation_id"].to_string(),
                c["outcome"].to_string(),
                c["duplicates"].to_string(),
                c["deliveries"].to_string(),
            )
        };
        let a: Vec<_> = from_dump.iter().map(key).collect();
        let b: Vec<_> = from_capture.iter().map(key).collect();
        assert_eq!(a, b, "{name}");
        assert!(from_dump
            .iter()
            .all(|c| c["request"]["time"].is_null() && c["latency_ms"]["total"].is_null()));
    }
}

/// Every key the README documents is on every call, legs are objects or null.
#[test]
fn json_lines_have_the_documented_keys() {
    for c in calls(&captures().join("rpc_error.pcapng")) {
        for key in [
            "call",
            "correlation_id",
            "queue",
            "reply_to",
            "outcome",
            "error",
            "duplicates",
            "request",
            "delivery",
            "reply",
            "reply_delivery",
            "ack",
            "latency_ms",
        ] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
        for leg in ["request", "delivery", "reply", "reply_delivery", "ack"] {
            let l = &c[leg];
            assert!(l.is_object(), "{leg}: {l}");
            for key in ["stream", "packet", "time"] {
                assert!(l.get(key).is_some(), "{leg}.{key}");
            }
        }
        for key in ["total", "to_server", "server", "to_client"] {
            assert!(c["latency_ms"][key].is_number(), "{key}");
        }
    }
}

/// Strings from the wire reach the terminal escaped: a queue name with an ANSI escape and line
/// breaks, a correlation id that is not UTF-8 (shown as hex), a close's reply text with a NUL.
#[test]
fn wire_strings_are_escaped_in_the_text_view() {
    use amqp_codec::{encode_message, BasicProperties, BasicPublish, ConnectionClose, Frame};

    let mut wire = bytes::BytesMut::from(&b"AMQP\x00\x00\x09\x01"[..]);
    let publish = BasicPublish {
        routing_key: "q\x1b[31m\r\nFAKE LINE".into(),
        ..Default::default()
    };
    let props = BasicProperties {
        correlation_id: Some((&[0xff, 0xfe, 0x1b][..]).into()),
        reply_to: Some("amq.gen-\u{202e}x".into()),
        ..Default::default()
    };
    encode_message(&mut wire, 1, &publish.into(), &props, b"\x1b[2J", 131_072).unwrap();
    let close = ConnectionClose {
        reply_code: 320,
        reply_text: "\0\r\n\x1b[31m".into(),
        class_id: 0,
        method_id: 0,
    };
    Frame::Method(0, close.into()).encode(&mut wire).unwrap();
    let mut args = DecodeArgs::new(None);
    args.raw = true;
    args.rpc = true;
    let (text, result) = decode_slice(&wire, &args);
    result.unwrap();
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached the output:\n{text:?}"
    );
    assert!(text.contains("q\\u{1b}[31m\\u{d}\\u{a}FAKE LINE"), "{text}");
    assert!(text.contains("corr 0xfffe1b"), "{text}");
    assert!(text.contains("\\u{0}\\u{d}\\u{a}\\u{1b}[31m"), "{text}");
    assert!(text.contains("no-reply"), "{text}");
    args.json = true;
    let (json, _) = decode_slice(&wire, &args);
    let call: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(call["correlation_id"]["hex"], "fffe1b");
    assert_eq!(
        call["queue"], "q\x1b[31m\r\nFAKE LINE",
        "JSON keeps the bytes, escaped by JSON"
    );
    assert!(!json.contains('\x1b'));
}
