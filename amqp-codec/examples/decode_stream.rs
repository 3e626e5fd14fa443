//! Decode raw AMQP byte streams and report the decoder's throughput.
//!
//! ```text
//! cargo run --release -p amqp-codec --example decode_stream -- [--get NAME]... [--get-str NAME]... [--get-ref NAME]... REPS FILE...
//! ```
//!
//! Each FILE is one direction of one connection as it crossed the wire (protocol header included
//! if the capture has it); every file is decoded whole, REPS times over, and one line is printed:
//! `frames=F bytes=B frames/s=… MB/s=… ns/frame=…` (F and B count every repetition). Feed it your
//! own captures to compare decoders on the traffic you care about.
//!
//! `--get NAME` also reads the header NAME of every content header that has a `headers` table,
//! as a receiver of each message would, with [`FieldTable::lookup`](amqp_codec::FieldTable::lookup)
//! (in place); `--get-str NAME` with [`FieldTable::lookup_str`](amqp_codec::FieldTable::lookup_str)
//! (a string borrowed in place); `--get-ref NAME` with
//! [`FieldTable::get`](amqp_codec::FieldTable::get) (which decodes the whole table once, to lend a
//! reference).

use std::process::ExitCode;
use std::time::Instant;

use amqp_codec::{Frame, FrameDecoder};
use bytes::Bytes;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let usage =
        "usage: decode_stream [--get NAME]... [--get-str NAME]... [--get-ref NAME]... REPS FILE...";
    let (mut lookups, mut strs, mut gets) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(flag) = args.next_if(|a| a.starts_with("--")) {
        let Some(name) = args.next() else {
            eprintln!("{usage}");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--get" => lookups.push(name),
            "--get-str" => strs.push(name),
            "--get-ref" => gets.push(name),
            _ => {
                eprintln!("{usage}");
                return ExitCode::from(2);
            }
        }
    }
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
                        if let Frame::Header(_, h) = &frame {
                            if let Some(headers) = &h.properties.headers {
                                for name in &lookups {
                                    std::hint::black_box(headers.lookup(name));
                                }
                                for name in &strs {
                                    std::hint::black_box(headers.lookup_str(name));
                                }
                                for name in &gets {
                                    std::hint::black_box(headers.get(name));
                                }
                            }
                        }
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
