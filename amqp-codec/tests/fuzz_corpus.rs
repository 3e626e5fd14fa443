//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the same checks the
//! cargo-fuzz targets run, so CI exercises every input the fuzzer found interesting without
//! needing nightly or libFuzzer. Crash inputs fixed since are kept in `fuzz/regressions/<target>/`
//! and replayed here too.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/frame.rs"]
mod frame;
#[path = "../../fuzz/src/table.rs"]
mod table;

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
fn frame_corpus() {
    replay("frame", frame::check);
}

#[test]
fn table_corpus() {
    replay("table", table::check);
}
