//! `amqp-dissect`: every AMQP 0-9-1 frame in a capture file, a hex dump or a raw byte stream, as a
//! stream of events — "this frame (or these malformed bytes) was seen on TCP stream 3, sent by the
//! client, ending in packet 47 at time T".
//!
//! ```
//! use std::ops::ControlFlow;
//!
//! use amqp_codec::{encode_message, BasicProperties, BasicPublish, Frame};
//! use amqp_dissect::{dissect, Options, Side, What};
//!
//! // A client's bytes as they go on the wire: the protocol header, then tutorial six's request.
//! let mut wire = bytes::BytesMut::from(&b"AMQP\x00\x00\x09\x01"[..]);
//! let publish = BasicPublish { routing_key: "rpc_queue".into(), ..Default::default() };
//! let props = BasicProperties::default()
//!     .with_correlation_id("c1e5f310-0996-45fb-a3d8-bf2081cd891c")
//!     .with_reply_to("amq.gen-p169XGGXAjsVdvgeJjMlOw");
//! encode_message(&mut wire, 1, &publish.into(), &props, b"30", 131_072).unwrap();
//!
//! // Any `Read` works: a `File` of pcap or pcapng, a hex dump pasted into stdin, raw bytes.
//! let mut seen = Vec::new();
//! let outcome = dissect(&wire[..], &Options::default(), |event| {
//!     if let What::Frame { frame, .. } = &event.what {
//!         seen.push((event.side, event.offset, frame.channel()));
//!         if let Frame::Header(_, header) = frame {
//!             assert_eq!(header.properties.flags(), 0x0600); // correlation-id + reply-to
//!         }
//!     }
//!     ControlFlow::Continue(())
//! })
//! .unwrap();
//! assert_eq!((outcome.frames, outcome.errors), (4, 0)); // header, method, content header, body
//! assert_eq!(seen[1], (Side::Client, 8, 1)); // basic.publish at offset 8, channel 1
//! ```
//!
//! The pipeline reads left to right, one module per stage: [`input`] (what the bytes are) →
//! [`capture`] or [`hexdump`] (packets) → [`packet`] (link, IP, TCP) → [`tcp`] (streams,
//! directions, reassembly) → [`frames`] (AMQP frames, resync after damage) → [`Event`]s; a TCP
//! connection's end (FIN, RST) is an event too ([`What::Closed`]). On top, [`rpc`] pairs the RPC
//! calls in those events across connections.
//!
//! Everything streams: a packet is dissected and its events handed out before the next is read,
//! so memory stays bounded by the largest frame and the out-of-order window (4 MiB per
//! direction), not by the capture. Damage never stops the run: a malformed frame becomes an
//! [`What::Error`] event and decoding goes on with the next frame, packet or stream.
//!
//! Live traffic takes a shorter way: [`live`] dissects the bytes of a connection as a program
//! carrying them sees them, and [`record`] writes them as a pcapng capture that reads back as
//! the same events.
//!
//! There is no printing here, no argument parsing and no progress bar: `amqp-rpc decode` is one
//! user of this crate and keeps those for itself.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{self, Read};
use std::ops::ControlFlow;

pub mod capture;
mod event;
pub mod frames;
pub mod hexdump;
pub mod input;
pub mod live;
pub mod packet;
pub mod record;
pub mod rpc;
pub mod tcp;

pub use event::{Endpoints, Event, Side, What};

/// The AMQP port: the side of a TCP connection on it is the broker.
pub const AMQP_PORT: u16 = 5672;

/// Largest frame the dissector buffers (header + payload + frame-end). Far above any `frame_max`
/// RabbitMQ negotiates by default (128 KiB), so real frames pass, while a garbage size field
/// cannot make us hold gigabytes while we wait for bytes that never come.
pub const DEFAULT_FRAME_LIMIT: u32 = 32 * 1024 * 1024;

/// The input formats; detected from the first bytes unless [`Options::format`] names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// pcap or pcapng capture file.
    Pcap,
    /// Text hex dump (tshark -x, xxd, hexdump -C, od, text2pcap, plain hex).
    Hex,
    /// Binary raw AMQP byte stream.
    Bin,
}

/// How to read the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The input's format, instead of detecting it.
    pub format: Option<InputFormat>,
    /// The bytes (binary, or hex-dumped) are a raw AMQP byte stream, not packets.
    pub raw: bool,
    /// TCP port of the broker: the side on it is the broker.
    pub broker_port: u16,
    /// Largest frame accepted, in bytes; bigger ones are reported as malformed.
    pub frame_max: u32,
}

impl Default for Options {
    /// Detect the format; broker on 5672; frames up to [`DEFAULT_FRAME_LIMIT`].
    fn default() -> Self {
        Options {
            format: None,
            raw: false,
            broker_port: AMQP_PORT,
            frame_max: DEFAULT_FRAME_LIMIT,
        }
    }
}

/// How a run went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Frames decoded.
    pub frames: u64,
    /// Malformed frames, holes and truncations reported (plus one for a damaged capture).
    pub errors: u64,
    /// Packets read.
    pub packets: u64,
    /// Why the input stopped before its end (a truncated capture, a bad hex line), if it did.
    pub damage: Option<String>,
}

/// The input could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The bytes are none of the formats we read.
    #[error("unrecognised input: {0}")]
    Format(String),
}

/// Dissect `input` and hand every event to `sink`, in the order frames complete, until the input
/// ends or `sink` breaks.
///
/// Errors only when the input is unreadable as a whole (I/O, or no format fits); damage inside it
/// comes as [`What::Error`] events and is counted in the [`Outcome`].
pub fn dissect(
    input: impl Read + Send,
    options: &Options,
    mut sink: impl FnMut(&Event) -> ControlFlow<()>,
) -> Result<Outcome, Unreadable> {
    input::for_each_event(input, options, &mut |event| sink(event).is_continue())
}
