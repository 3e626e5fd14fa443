//! What the pairing remembers of each connection: the negotiated heartbeat and when each side was
//! last heard, consumers and whether they ack, the message being assembled on each channel and
//! direction (method → content header → body frames), and the deliveries not yet acked.

use std::collections::{BTreeMap, HashMap, VecDeque};

use amqp_codec::{ContentHeader, FieldValue, ShortString};
use bytes::Bytes;

use super::call::Leg;

/// Unacked deliveries one channel may hold; beyond, the oldest are forgotten (a consumer that
/// never acks must not grow memory without bound; the broker's prefetch keeps real ones far below).
pub(super) const MAX_UNACKED: usize = 65_536;

/// Consumers one connection may have; beyond, new ones are not remembered (their deliveries are
/// then of unknown ack mode).
const MAX_CONSUMERS: usize = 4_096;

/// Content-bearing method frames, with what the pairing needs of their arguments (kept as the
/// frame's own zero-copy strings only until the message is complete).
#[derive(Debug)]
pub(super) enum ContentMethod {
    /// `basic.publish` (client).
    Publish { routing_key: ShortString },
    /// `basic.deliver` or `basic.get-ok` (broker); `no_ack` as known from the consume or get.
    Deliver {
        routing_key: ShortString,
        delivery_tag: u64,
        redelivered: bool,
        no_ack: Option<bool>,
    },
    /// `basic.return` (broker).
    Return {
        reply_code: u16,
        reply_text: ShortString,
    },
}

/// The properties the pairing reads, from the content header.
#[derive(Debug, Default)]
pub(super) struct Props {
    pub correlation_id: Option<ShortString>,
    pub reply_to: Option<ShortString>,
    /// The `x-error` application header (a string, or any other value as text).
    pub x_error: Option<Bytes>,
}

impl Props {
    pub fn from_header(header: &ContentHeader) -> Self {
        let p = &header.properties;
        let x_error = p
            .headers
            .as_ref()
            .and_then(|h| h.get("x-error"))
            .map(|v| match v {
                FieldValue::LongString(s) => Bytes::copy_from_slice(s.as_bytes()),
                other => Bytes::from(format!("{other:?}")),
            });
        Props {
            correlation_id: p.correlation_id.clone(),
            reply_to: p.reply_to.clone(),
            x_error,
        }
    }
}

/// A message being assembled.
#[derive(Debug)]
pub(super) struct Content {
    pub method: ContentMethod,
    /// The method frame's place.
    pub leg: Leg,
    /// From the content header, once it came.
    pub props: Option<Props>,
    pub body_size: u64,
    pub received: u64,
    /// The first bytes of the body.
    pub preview: Vec<u8>,
}

/// A delivery waiting for its ack.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    /// The call whose request it is.
    pub call: Option<u64>,
    pub leg: Leg,
    /// Whether its consumer is known to ack (else the ack mode is unknown: the consume was not
    /// in the capture). Only known ones are reported when they end unacked.
    pub known: bool,
}

/// One channel.
#[derive(Debug, Default)]
pub(super) struct Channel {
    /// The message being assembled, per direction (0 client → broker, 1 broker → client).
    pub content: [Option<Content>; 2],
    /// `no-ack` of each `basic.consume` waiting for its `consume-ok`.
    pub consumes: VecDeque<bool>,
    /// `no-ack` of each `basic.get` waiting for its `get-ok` or `get-empty`.
    pub gets: VecDeque<bool>,
    /// Deliveries not yet acked, by delivery tag.
    pub unacked: BTreeMap<u64, Delivery>,
}

/// One connection (TCP stream).
#[derive(Debug, Default)]
pub(super) struct Connection {
    /// Heartbeat interval from `connection.tune-ok`, seconds; 0 is none.
    pub heartbeat: u16,
    /// When each side (0 client, 1 broker) last sent a frame: (time, packet).
    pub last_heard: [Option<(f64, u64)>; 2],
    /// A `connection.close` was sent: silence is expected from here on.
    pub closing: bool,
    pub channels: BTreeMap<u16, Channel>,
    /// Consumer tag → `no-ack`.
    pub consumers: HashMap<Bytes, bool>,
}

impl Connection {
    pub fn channel(&mut self, channel: u16) -> &mut Channel {
        self.channels.entry(channel).or_default()
    }

    pub fn add_consumer(&mut self, tag: &ShortString, no_ack: bool) {
        if self.consumers.len() < MAX_CONSUMERS || self.consumers.contains_key(tag.as_bytes()) {
            self.consumers
                .insert(Bytes::copy_from_slice(tag.as_bytes()), no_ack);
        }
    }
}
