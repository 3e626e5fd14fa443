//! Replays the committed corpus of the `connection` fuzz target (`fuzz/corpus/connection/*`,
//! and fixed crash inputs in `fuzz/regressions/connection/*`) through the very checks the
//! cargo-fuzz target runs (`fuzz/src/connection.rs`, included here), so `cargo test` exercises
//! on stable Rust every input the fuzzer found interesting.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/connection.rs"]
mod connection;

fn inputs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("connection")) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable corpus directory").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn connection_corpus() {
    let files = inputs();
    assert!(!files.is_empty(), "no corpus for fuzz target connection");
    let mut seen = BTreeSet::new();
    for path in &files {
        let data = std::fs::read(path).expect("readable corpus file");
        match std::panic::catch_unwind(|| connection::run(&data)) {
            Ok(s) => seen.extend(s),
            Err(_) => panic!("fuzz target connection fails on {}", path.display()),
        }
    }
    // The corpus reaches the deep states, not just the first violation: each of these happens
    // in at least one input.
    for state in [
        "Delivery",
        "Confirm",
        "Returned",
        "ConsumerEnded",
        "Blocked",
        "Unblocked",
        "Flow",
        "ChannelClosed",
        "get true",
        "get false",
        "reply",
        "reply error",
        "sent basic.reject",
        "sent channel.close-ok",
        "sent channel.flow-ok",
        "sent connection.close-ok",
        "sent Heartbeat",
        "close 200",
        "close 501",
        "close 505",
        "HeartbeatTimeout closed",
        "ReplyTimeout closed",
        "ConnectionClosed closed",
    ] {
        assert!(
            seen.contains(state),
            "no input reaches {state:?}; seen: {seen:?}"
        );
    }
}

/// The shortest programs: no input at all, each flag alone (the handshake from an empty input,
/// EOF at once, timers running dry).
#[test]
fn empty_and_one_byte_programs() {
    connection::check(&[]);
    for flags in 0..=u8::MAX {
        connection::check(&[flags]);
        connection::check(&[flags, 0, 0xff]);
    }
}
