//! Per-frame decode time, amqp-codec against amq-protocol (lapin's codec): each frame of the given
//! streams decoded alone, REPS times, best of three rounds; one line per frame, then the totals.
//!
//! ```text
//! cargo run --release -p amqp-codec --example compare_frames -- REPS FILE...
//! ```
//!
//! Where [`decode_stream`](decode_stream.rs) gives one figure for a whole stream, this shows which
//! frames make it: on the tutorial-six captures, the handshake's `connection.start`/`start-ok`
//! (field tables) against the small methods and headers that every call repeats. Each decode
//! includes what a decode of one frame costs either codec in a loop: ours takes a handle on the
//! frame's bytes (a reference count), theirs borrows them.

use std::process::ExitCode;
use std::time::Instant;

use amqp_codec::{Frame, FrameDecoder};
use bytes::Bytes;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let usage = "usage: compare_frames REPS FILE...";
    let Some(reps) = args.next().and_then(|r| r.parse::<u32>().ok()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let mut frames = Vec::new();
    for path in args {
        let data = match std::fs::read(&path) {
            Ok(data) => Bytes::from(data),
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::from(2);
            }
        };
        let mut rest = data.clone();
        let mut decoder = FrameDecoder::new(0);
        loop {
            let before = rest.clone();
            match decoder.decode_bytes(&mut rest) {
                Ok(Some(frame)) => {
                    frames.push((before.slice(..before.len() - rest.len()), frame));
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("{path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if frames.is_empty() {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }

    let (mut ours_total, mut theirs_total) = (0.0, 0.0);
    println!(
        "| frame | bytes | amqp-codec ns | amq-protocol ns | ratio |\n|---|---:|---:|---:|---:|"
    );
    for (bytes, frame) in &frames {
        let name = match frame {
            Frame::Method(_, m) => format!("{}.{}", m.info().class_name, m.info().method_name),
            Frame::Header(..) => "content header".to_owned(),
            Frame::Body(..) => "content body".to_owned(),
            Frame::Heartbeat => "heartbeat".to_owned(),
            Frame::ProtocolHeader(_) => "protocol header".to_owned(),
        };
        let (mut ours, mut theirs) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            let started = Instant::now();
            for _ in 0..reps {
                let mut src = bytes.clone();
                let frame = FrameDecoder::new(0).decode_bytes(&mut src);
                std::hint::black_box(frame.ok());
            }
            ours = ours.min(started.elapsed().as_secs_f64() * 1e9 / f64::from(reps));
            let started = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(amq_protocol::frame::parse_frame(&bytes[..]).ok());
            }
            theirs = theirs.min(started.elapsed().as_secs_f64() * 1e9 / f64::from(reps));
        }
        ours_total += ours;
        theirs_total += theirs;
        println!(
            "| {name} | {} | {ours:.1} | {theirs:.1} | {:.1}× |",
            bytes.len(),
            theirs / ours
        );
    }
    println!(
        "| all {} frames | | {ours_total:.0} | {theirs_total:.0} | {:.1}× |",
        frames.len(),
        theirs_total / ours_total
    );
    ExitCode::SUCCESS
}
