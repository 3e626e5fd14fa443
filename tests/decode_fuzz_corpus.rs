//! Replays the committed fuzz corpora of `decode_hex` and `decode_capture` (fuzz/corpus/) through
//! `amqp-rpc decode`'s printers (tree, JSON, summary, flow, rpc, html), on stable: every input found once
//! stays panic-free in the CLI too. The dissector's own checks replay in
//! `amqp-dissect/tests/fuzz_corpus.rs`.

use std::path::Path;

use amqp_dissect::hexdump;
use amqp_rpc::decode::{decode_slice, DecodeArgs, FlowStyle, InputFormat};

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn decode_hex_corpus_replays_without_panic() {
    let corpus = inputs("decode_hex");
    assert!(!corpus.is_empty());
    for data in corpus {
        let _ = hexdump::parse(&String::from_utf8_lossy(&data));
        let mut args = DecodeArgs::new(Some(InputFormat::Hex));
        let _ = decode_slice(&data, &args);
        args.json = true;
        let _ = decode_slice(&data, &args);
        args.json = false;
        args.raw = true;
        args.summary = true;
        let _ = decode_slice(&data, &args);
    }
}

#[test]
fn decode_capture_corpus_replays_without_panic() {
    let corpus = inputs("decode_capture");
    assert!(!corpus.is_empty());
    for data in corpus {
        let mut args = DecodeArgs::new(Some(InputFormat::Pcap));
        let _ = decode_slice(&data, &args);
        args.format = None;
        args.flow = Some(FlowStyle::Text);
        let _ = decode_slice(&data, &args);
        args.flow = None;
        args.json = true;
        let _ = decode_slice(&data, &args);
        args.rpc = true;
        let _ = decode_slice(&data, &args);
        args.json = false;
        let _ = decode_slice(&data, &args);
        args.rpc = false;
        args.html = Some("unused.html".into());
        let _ = decode_slice(&data, &args);
    }
}
