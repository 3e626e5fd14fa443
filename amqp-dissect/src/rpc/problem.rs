//! What else the pairing notices on the way: redeliveries, rejections, deliveries left unacked,
//! closes, heartbeat gaps.

use bytes::Bytes;

use super::call::Leg;
use crate::Side;

/// Why a delivery ended without an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unacked {
    /// Its channel was closed (`channel.close`, either side): the broker requeues it.
    ChannelClosed,
    /// Its connection was closed (`connection.close`, either side).
    ConnectionClosed,
    /// Its TCP connection ended (FIN or RST) with no `connection.close`: a peer died.
    ConnectionLost,
    /// `basic.recover` asked for it again.
    Recovered,
    /// Still unacked when the capture ended.
    EndOfCapture,
}

impl Unacked {
    /// A few words for the text view.
    pub fn describe(self) -> &'static str {
        match self {
            Unacked::ChannelClosed => "channel closed",
            Unacked::ConnectionClosed => "connection closed",
            Unacked::ConnectionLost => "connection lost (no connection.close)",
            Unacked::Recovered => "basic.recover",
            Unacked::EndOfCapture => "end of capture",
        }
    }
}

/// Something worth a debugger's attention, reported as it is found.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// A delivery with the redelivered flag: an earlier delivery was not acked.
    Redelivered {
        /// The call whose request it is, if it is one.
        call: Option<u64>,
        /// The delivery.
        delivery: Leg,
    },
    /// `basic.reject` or `basic.nack` of a delivery, by its consumer.
    Rejected {
        /// The call whose request it is, if it is one.
        call: Option<u64>,
        /// The delivery rejected.
        delivery: Leg,
        /// The reject or nack frame (its `delivery_tag` is the delivery's).
        by: Leg,
        /// `"reject"` or `"nack"`.
        method: &'static str,
        /// Whether the broker was asked to requeue it.
        requeue: bool,
    },
    /// A delivery to a consumer with acks that ended without one.
    Unacked {
        /// The call whose request it is, if it is one.
        call: Option<u64>,
        /// The delivery.
        delivery: Leg,
        /// Why it ended.
        why: Unacked,
        /// Where it ended (the close frame, the FIN/RST packet), except at the end of the capture.
        at: Option<Leg>,
    },
    /// `channel.close` (channel ≠ 0) or `connection.close` (channel 0), with its code.
    Closed {
        /// The close frame.
        at: Leg,
        /// Who sent it.
        by: Side,
        /// Reply code: 200 is a normal close, anything else an error.
        code: u16,
        /// Reply text.
        text: Bytes,
        /// Class and method of the method that caused it (0 when none).
        cause: (u16, u16),
    },
    /// A peer was silent longer than the negotiated heartbeat interval.
    HeartbeatGap {
        /// The frame that ended the silence.
        at: Leg,
        /// The silent peer.
        side: Side,
        /// The negotiated interval, seconds.
        interval: u16,
        /// The silence, seconds.
        gap: f64,
        /// The packet of the frame before the silence.
        since_packet: u64,
    },
    /// A reply for a call already reported (so not counted on it).
    LateReply {
        /// The call.
        call: u64,
        /// The reply (`basic.publish`) or its delivery.
        at: Leg,
    },
    /// A call let go unfinished because [`Limits::max_pending`](super::Limits) calls were
    /// pending: replies to it that come later are reported as [`Problem::LateReply`].
    Evicted {
        /// The call.
        call: u64,
    },
}
