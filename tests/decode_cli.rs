//! `amqp-rpc decode` as a user runs it: exit codes, output modes, damaged input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_amqp-rpc"));
    cmd.arg("decode").args(args).current_dir(root());
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn clean_capture_exits_0_without_colour_when_piped() {
    let o = run(&["fixtures/captures/tutorial6.pcapng"], None);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o);
    assert!(!out.contains('\x1b'));
    assert!(out.contains("Method: Publish (40)"));
    assert!(out.contains("Routing-Key: rpc_queue"));
    assert!(out.contains("broker → client"));
}

#[test]
fn json_lines_carry_the_documented_keys() {
    let o = run(&["--json", "fixtures/captures/properties.pcapng"], None);
    assert_eq!(o.status.code(), Some(0));
    let objects: Vec<serde_json::Value> = text(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let publish = objects
        .iter()
        .find(|v| v["type"] == "method" && v["method"] == "publish")
        .unwrap();
    for key in [
        "packet",
        "stream",
        "direction",
        "offset",
        "channel",
        "length",
        "class_id",
        "method_id",
        "class",
        "arguments",
    ] {
        assert!(publish.get(key).is_some(), "{key}");
    }
    assert_eq!(publish["class"], "basic");
    assert_eq!(publish["arguments"]["routing-key"], "fixtures.properties");
    let all = objects
        .iter()
        .find(|v| v["type"] == "header" && v["property_flags"] == 0xfffc)
        .unwrap();
    let props = &all["properties"];
    assert_eq!(props.as_object().unwrap().len(), 14);
    assert_eq!(
        props["correlation-id"],
        "c1e5f310-0996-45fb-a3d8-bf2081cd891c"
    );
    assert_eq!(props["headers"]["int-large"]["type"], "long int");
    assert_eq!(props["headers"]["int-large"]["value"], 1_099_511_627_777i64);
    assert_eq!(props["headers"]["decimal"]["value"], "12.345");
    assert_eq!(props["headers"]["bytes"]["value"], "0001feff");
    let body = objects.iter().find(|v| v["type"] == "body").unwrap();
    assert!(body["payload_len"].is_u64() && body["payload_hex"].is_string());
}

#[test]
fn summary_lists_frames_then_counts() {
    let o = run(&["--summary", "fixtures/captures/tutorial6.pcapng"], None);
    let out = text(&o);
    assert!(out.contains("Basic.Publish x= rk=rpc_queue"));
    assert!(out.contains("Basic.Ack tag=1"));
    assert!(out.lines().any(|l| l.trim() == "2  Basic.Publish"), "{out}");
}

#[test]
fn flow_shows_the_rpc_round_trip() {
    let o = run(&["--flow", "fixtures/captures/tutorial6.pcapng"], None);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o);
    let publish = out.find("Basic.Publish x= rk=rpc_queue").unwrap();
    let deliver = out.find("Basic.Deliver tag=1 x= rk=rpc_queue").unwrap();
    let reply = out.find("Basic.Publish x= rk=amq.gen-").unwrap();
    let back = out.find("Basic.Deliver tag=1 x= rk=amq.gen-").unwrap();
    assert!(
        publish < deliver && deliver < reply && reply < back,
        "{out}"
    );
    // The caller (who published with reply-to) stands left of the broker, the server right.
    let header = out.lines().next().unwrap();
    let (caller, broker) = (
        header.find("client").unwrap(),
        header.find("broker").unwrap(),
    );
    assert!(caller < broker && header.rfind("client").unwrap() > broker);
    let line = out
        .lines()
        .find(|l| l.contains("rk=rpc_queue reply-to"))
        .unwrap();
    assert!(
        line.contains("->|"),
        "request goes right, to the broker: {line}"
    );

    let o = run(
        &["--flow=mermaid", "fixtures/captures/tutorial6.pcapng"],
        None,
    );
    let out = text(&o);
    assert!(out.starts_with("sequenceDiagram\n"));
    assert_eq!(out.matches("participant").count(), 3);
    assert!(out
        .lines()
        .any(|l| l.contains("->>") && l.contains("Basic.Publish x= rk=rpc_queue")));
}

#[test]
fn stdin_and_dash_read_the_same() {
    let bytes = std::fs::read(root().join("fixtures/seed/seed_packet.x.txt")).unwrap();
    let a = run(&["-"], Some(&bytes));
    let b = run(&[], Some(&bytes));
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(text(&a), text(&b));
    assert!(text(&a).contains("Property flags: 0x0600"));
}

#[test]
fn damaged_frames_are_reported_and_decoding_goes_on_with_exit_1() {
    let mut bytes = std::fs::read(root().join("fixtures/captures/methods.client.bin")).unwrap();
    // Frame 2 (start-ok at offset 8): break its frame-end; further on, a bogus type octet.
    let size = u32::from_be_bytes(bytes[11..15].try_into().unwrap()) as usize;
    bytes[8 + 7 + size] = 0x00;
    let end = bytes.len();
    bytes[end / 2] = 0x42;
    bytes.truncate(end - 3);
    let o = run(&["--json", "--raw", "-"], Some(&bytes));
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let objects: Vec<serde_json::Value> = text(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let errors: Vec<_> = objects.iter().filter(|v| v["type"] == "error").collect();
    assert!(errors.len() >= 2, "{errors:?}");
    assert!(errors[0]["error"].as_str().unwrap().contains("frame-end"));
    assert_eq!(errors[0]["offset"], 8);
    assert!(errors.last().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("truncated"));
    // Frames after the damage still decode.
    let after = objects.iter().filter(|v| v["type"] == "method").count();
    assert!(after > 50, "{after}");
}

#[test]
fn unreadable_input_exits_2() {
    for input in [
        &b""[..],
        b"\x00\x9f\x92\x96 binary \xff\xfe",
        b"just some words",
    ] {
        let o = run(&[], Some(input));
        assert_eq!(o.status.code(), Some(2), "{input:?}");
        assert!(!o.stderr.is_empty());
    }
    let o = run(&["/nonexistent/capture.pcap"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_truncated_capture_decodes_what_is_there_with_exit_1() {
    let bytes = std::fs::read(root().join("fixtures/captures/tutorial6.pcapng")).unwrap();
    let cut = &bytes[..bytes.len() / 2];
    let o = run(&["--summary", "-"], Some(cut));
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("Connection.Start"));
}

/// Hostile nesting (20,000 levels of arrays in one frame) prints in output linear in the input:
/// indentation is capped, deeper lines say their depth.
#[test]
fn deep_nesting_prints_linear_output() {
    let mut value = vec![b'A', 0, 0, 0, 0];
    for _ in 0..20_000 {
        let mut outer = vec![b'A'];
        outer.extend_from_slice(&(value.len() as u32).to_be_bytes());
        outer.extend_from_slice(&value);
        value = outer;
    }
    let mut table = vec![1, b'k'];
    table.extend_from_slice(&value);
    let mut payload = vec![0, 10, 0, 10, 0, 9];
    payload.extend_from_slice(&(table.len() as u32).to_be_bytes());
    payload.extend_from_slice(&table);
    for s in [&b"PLAIN"[..], b"en_US"] {
        payload.extend_from_slice(&(s.len() as u32).to_be_bytes());
        payload.extend_from_slice(s);
    }
    let mut frame = vec![1, 0, 0];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(0xCE);
    let dir = std::env::temp_dir().join(format!("amqp-rpc-deep-{}", std::process::id()));
    std::fs::write(&dir, &frame).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amqp-rpc"))
        .args(["decode", "--raw", "--color", "never"])
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[depth 20000]"), "deepest level shown");
    assert!(
        out.stdout.len() < frame.len() * 40,
        "{} bytes of output for a {}-byte frame",
        out.stdout.len(),
        frame.len()
    );
}

/// Strings from the wire reach the terminal escaped in every text view (issue 13): a routing key
/// with an ANSI escape and line breaks, a correlation id with a NUL, a table key with a bidi
/// override, a close's reply text with control characters.
#[test]
fn wire_strings_are_escaped_in_every_text_view() {
    use amqp_codec::{
        encode_message, BasicProperties, BasicPublish, ConnectionClose, FieldTable, Frame,
    };

    let mut wire = bytes::BytesMut::from(&b"AMQP\x00\x00\x09\x01"[..]);
    let publish = BasicPublish {
        routing_key: "q\x1b[31m\r\nFAKE LINE".into(),
        ..Default::default()
    };
    let props = BasicProperties {
        correlation_id: Some("id\0\x07".into()),
        reply_to: Some("amq.gen-\u{202e}x".into()),
        headers: Some(FieldTable::new().with("k\u{202e}ey", "v\x1b]0;title\x07")),
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
    for view in [
        &[][..],
        &["--summary"],
        &["--flow"],
        &["--flow=mermaid"],
        &["--rpc"],
    ] {
        let mut args = vec!["--raw", "--color", "never", "-"];
        args.extend_from_slice(view);
        let o = run(&args, Some(&wire));
        let out = text(&o);
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "{view:?}: a control character reached the output:\n{out:?}"
        );
        assert!(
            !out.contains('\u{202e}'),
            "{view:?}: a bidi override got through"
        );
    }
    let tree = text(&run(&["--raw", "-"], Some(&wire)));
    for shown in [
        "Routing-Key: q\\u{1b}[31m\\u{d}\\u{a}FAKE LINE",
        "Correlation-Id: id\\u{0}\\u{7}",
        "k\\u{202e}ey (string): v\\u{1b}]0;title\\u{7}",
        "Reply-Text: \\u{0}\\u{d}\\u{a}\\u{1b}[31m",
    ] {
        assert!(tree.contains(shown), "no {shown:?} in\n{tree}");
    }
}
