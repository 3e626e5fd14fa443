//! Decode raw AMQP byte streams and report the decoder's throughput.
//!
//! ```text
//! cargo run --release -p amqp-codec --example decode_stream -- REPS FILE...
//! ```
//!
//! Each FILE is one direction of one connection as it crossed the wire (protocol header included
//! if the capture has it); every file is decoded whole, REPS times over, and one line is printed:
//! `frames=F bytes=B frames/s=… MB/s=… ns/frame=…` (F and B count every repetition). Feed it your
//! own captures to compare decoders on the traffic you care about.

use std::process::ExitCode;
use std::time::Instant;

use amqp_codec::FrameDecoder;
use bytes::Bytes;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let usage = "usage: decode_stream REPS FILE...";
    let Some(reps) = args.next().and_then(|r| r.parse::<u64>().ok()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let mut streams = Vec::new();
    for path in args {
        match std::fs::read(&path) {
            Ok(data) => streams.push((path, Bytes::from(data))),
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
            // A capture is already bounded by its length; 0 lifts the frame_max check so that a
            // stream negotiated above the default still decodes.
            let mut decoder = FrameDecoder::new(0);
            let mut rest = stream.clone();
            loop {
                match decoder.decode_bytes(&mut rest) {
                    Ok(Some(frame)) => {
                        std::hint::black_box(frame);
                        frames += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let at = stream.len() - rest.len();
                        eprintln!("{path}: frame at byte {at}: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            if !rest.is_empty() {
                eprintln!(
                    "{path}: {} trailing bytes are not a whole frame",
                    rest.len()
                );
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
