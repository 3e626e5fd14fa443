//! Targets `decode_capture` and `decode_hex`: arbitrary bytes through the dissector
//! (`amqp_dissect`): capture reader, hex-dump parser, link/IP/TCP layers, reassembly, frames.
//!
//! For every input: nothing panics and the run ends; the outcome counts exactly the events handed
//! out (one more error when the input itself was damaged); within a stream direction, frames and
//! errors come in stream order (offsets never go back), a TCP close comes at most once, and every
//! event names a packet that was read; only capture files
//! carry timestamps; and a sink that stops after the first event gets no second one. The RPC
//! pairing (`amqp_dissect::rpc`) runs on every event with a small bound: it never keeps more calls
//! than the bound, and reports every call it made exactly once, in order of their numbers.
//!
//! Self-contained (it uses only `amqp_dissect`), so that `amqp-dissect/tests/fuzz_corpus.rs`
//! includes this very file with `#[path]` and replays the committed corpora on stable.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use amqp_dissect::rpc::{Limits, Pairing, Report};
use amqp_dissect::{dissect, hexdump, input, InputFormat, Options, Side, What};

/// Calls the pairing may keep while fuzzed: small, so that eviction is exercised.
const MAX_PENDING: usize = 8;

/// `decode_capture`: the input as a capture file, then with its format detected.
pub fn check_capture(data: &[u8]) {
    run(data, Some(InputFormat::Pcap), false);
    run(data, None, false);
}

/// `decode_hex`: the input as a hex dump of packets, the hex-dump parser alone, and the input
/// as a raw AMQP stream (hex or binary, as detected).
pub fn check_hex(data: &[u8]) {
    let _ = hexdump::parse(&String::from_utf8_lossy(data));
    run(data, Some(InputFormat::Hex), false);
    run(data, None, true);
}

fn run(data: &[u8], format: Option<InputFormat>, raw: bool) {
    let options = Options {
        format,
        raw,
        ..Options::default()
    };
    let mut frames = 0u64;
    let mut errors = 0u64;
    let mut closed = 0u64;
    let mut timed = 0u64;
    let mut last: HashMap<(u32, Side), u64> = HashMap::new();
    let mut closes: HashSet<(u32, Side)> = HashSet::new();
    let mut packets = Vec::new();
    let mut pairing = Pairing::new(Limits {
        max_pending: MAX_PENDING,
        ..Limits::default()
    });
    let mut reported = Vec::new();
    let mut on_report = |report: Report| {
        if let Report::Call(call) = report {
            reported.push(call.number);
        }
    };
    let result = dissect(data, &options, |event| {
        pairing.event(event, &mut on_report);
        assert!(
            pairing.kept() <= MAX_PENDING,
            "{} calls kept",
            pairing.kept()
        );
        match event.what {
            What::Frame { .. } => frames += 1,
            What::Error { .. } => errors += 1,
            What::Closed { .. } => closed += 1,
        }
        if event.time.is_some() {
            timed += 1;
        }
        if let What::Closed { .. } = event.what {
            // A FIN or RST says where the direction's bytes end, which may be past a partial
            // frame reported later, at the end of input: it is not in stream order with frames.
            assert!(
                closes.insert((event.stream, event.side)),
                "stream {} {:?}: closed twice",
                event.stream,
                event.side
            );
        } else {
            let previous = last.insert((event.stream, event.side), event.offset);
            assert!(
                previous.is_none_or(|p| p <= event.offset),
                "stream {} {:?}: offset {} after {previous:?}",
                event.stream,
                event.side,
                event.offset
            );
        }
        packets.push(event.packet);
        ControlFlow::Continue(())
    });
    pairing.finish(&mut on_report);
    assert_eq!(pairing.kept(), 0, "calls left after finish");
    let expected: Vec<u64> = (1..=reported.len() as u64).collect();
    assert_eq!(reported, expected, "calls reported once each, in order");
    let Ok(outcome) = result else {
        return;
    };
    assert_eq!(outcome.frames, frames, "frames counted");
    let damaged = u64::from(outcome.damage.is_some());
    assert_eq!(outcome.errors, errors + damaged, "errors counted");
    assert!(
        packets.iter().all(|&p| p <= outcome.packets),
        "an event names a packet beyond the {} read",
        outcome.packets
    );
    let capture = match format {
        Some(f) => f == InputFormat::Pcap,
        None => {
            !raw && input::sniff(data.get(..64 * 1024).unwrap_or(data)) == Some(InputFormat::Pcap)
        }
    };
    assert!(
        capture || timed == 0,
        "timestamps from input that is not a capture"
    );
    // A sink that breaks gets nothing more.
    let mut after_break = 0;
    let _ = dissect(data, &options, |_| {
        after_break += 1;
        ControlFlow::Break(())
    });
    assert!(
        after_break <= 1,
        "{after_break} events after the sink stopped"
    );
}
