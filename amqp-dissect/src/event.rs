//! What the dissector hands out: one [`Event`] per AMQP frame (or per piece of damage), labelled
//! with where it was seen — TCP stream, direction, packet, capture time, stream offset.

use std::rc::Rc;

use amqp_codec::Frame;

/// Which peer sent a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client (the connection's initiator).
    Client,
    /// The broker.
    Broker,
}

impl Side {
    /// `"client"` or `"broker"`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Broker => "broker",
        }
    }

    /// The other side.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Broker,
            Side::Broker => Side::Client,
        }
    }
}

/// The two ends of a stream, as printable addresses (`127.0.0.1:5672`, `[::1]:5672`), or the
/// generic names `client` and `broker` for a raw byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The client's address.
    pub client: String,
    /// The broker's address.
    pub broker: String,
}

/// One AMQP frame, or one thing that went wrong, at a place in a stream.
#[derive(Debug, Clone)]
pub struct Event {
    /// 1-based number of the packet where the frame ends (hex dumps: the dump's packet; raw
    /// bytes: 1).
    pub packet: u64,
    /// Capture timestamp of that packet, in seconds since the epoch (captures only).
    pub time: Option<f64>,
    /// TCP stream index (0-based, by first appearance, as Wireshark's `tcp.stream`; 0 for a raw
    /// stream).
    pub stream: u32,
    /// The sender.
    pub side: Side,
    /// Byte offset of the frame in its stream direction (from the SYN; without one, from the
    /// first byte seen).
    pub offset: u64,
    /// The stream's endpoints, shared by all its events (`Rc`: events are made and consumed on
    /// one thread, and an atomic count per frame would be measurable).
    pub endpoints: Rc<Endpoints>,
    /// What was found.
    pub what: What,
}

/// A decoded frame or an error.
#[derive(Debug, Clone)]
// Frames are the common case: boxing them would cost an allocation each for the rare error.
#[allow(clippy::large_enum_variant)]
pub enum What {
    /// A frame; `length` is the frame header's payload size (0 for the protocol header).
    Frame {
        /// The frame.
        frame: Frame,
        /// The header's size field.
        length: u32,
    },
    /// A malformed frame, a hole in the stream, or bytes left over at its end.
    Error {
        /// The channel, when the frame header was readable.
        channel: Option<u16>,
        /// The header's size field, when readable.
        length: Option<u32>,
        /// Offset of the offending byte within the stream direction.
        at: u64,
        /// What was expected and what was found.
        message: String,
    },
    /// The sender closed its direction of the TCP connection: a FIN, or an RST (`reset`). Once per
    /// direction, after the frames of the segment that carried it; `offset` is where its bytes
    /// end, so a partial frame reported at the end of input comes after it with a lower offset.
    /// Not counted in the [`Outcome`](crate::Outcome); raw byte streams have none.
    Closed {
        /// RST rather than FIN.
        reset: bool,
    },
}
