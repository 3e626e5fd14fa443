//! [`decode_stream`](decode_stream.rs) with `amq-protocol` (lapin's codec) as the decoder: same
//! arguments, same output line, so the two can be run alternately on the same files.
//!
//! ```text
//! cargo run --release -p amqp-codec --example decode_stream_amq_protocol -- [--get NAME]... REPS FILE...
//! ```
//!
//! `--get NAME` (or `--get-str NAME`, the same here) reads the header NAME of every content header that has a `headers` table (a
//! lookup in amq-protocol's `BTreeMap`, which its decoder has already built).

use std::process::ExitCode;
use std::time::Instant;

use amq_protocol::frame::AMQPFrame;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let usage = "usage: decode_stream_amq_protocol [--get NAME]... REPS FILE...";
    let mut lookups = Vec::new();
    while args.next_if(|a| a == "--get" || a == "--get-str").is_some() {
        let Some(name) = args.next() else {
            eprintln!("{usage}");
            return ExitCode::from(2);
        };
        lookups.push(name);
    }
    let Some(reps) = args.next().and_then(|r| r.parse::<u64>().ok()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let mut streams = Vec::new();
    for path in args {
        match std::fs::read(&path) {
            Ok(data) => streams.push((path, data)),
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if streams.is_empty() {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }

    let (mut frames, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    for _ in 0..reps {
        for (path, stream) in &streams {
            let mut rest = &stream[..];
            while !rest.is_empty() {
                match amq_protocol::frame::parse_frame(rest) {
                    Ok((after, frame)) => {
                        if let AMQPFrame::Header(_, _, h) = &frame {
                            if let Some(headers) = h.properties.headers() {
                                for name in &lookups {
                                    std::hint::black_box(headers.inner().get(name.as_str()));
                                }
                            }
                        }
                        std::hint::black_box(frame);
                        rest = after;
                        frames += 1;
                    }
                    // A partial frame at the end of a capture.
                    Err(e) if e.is_incomplete() => break,
                    Err(e) => {
                        let at = stream.len() - rest.len();
                        eprintln!("{path}: frame at byte {at}: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            bytes += (stream.len() - rest.len()) as u64;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "frames={frames} bytes={bytes} frames/s={:.0} MB/s={:.1} ns/frame={:.1}",
        frames as f64 / secs,
        bytes as f64 / secs / 1e6,
        secs * 1e9 / frames.max(1) as f64
    );
    ExitCode::SUCCESS
}
