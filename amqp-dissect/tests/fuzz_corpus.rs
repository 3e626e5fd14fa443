//! Replays the committed corpora of the fuzz targets `decode_capture` and `decode_hex`
//! (`fuzz/corpus/<target>/*`) through the same checks the cargo-fuzz targets run, on stable.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/decode.rs"]
mod decode;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
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

fn replay(target: &str, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for fuzz target {target}");
    for path in &files {
        let data = std::fs::read(path).expect("readable corpus file");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("fuzz target {target} fails on {}", path.display());
        }
    }
}

#[test]
fn decode_capture_corpus() {
    replay("decode_capture", decode::check_capture);
}

#[test]
fn decode_hex_corpus() {
    replay("decode_hex", decode::check_hex);
}
