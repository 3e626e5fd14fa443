//! What the broker hands back: deliveries to consumers, `basic.get` results, returned messages
//! and publisher confirms, as plain data (the shells add the receivers they arrive on).

use bytes::Bytes;

use amqp_codec::{BasicProperties, ShortString};

/// A message delivered by `basic.deliver` (to a consumer) or `basic.get-ok`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The tag to acknowledge it with (`basic.ack` on the same channel); scoped to its channel.
    pub delivery_tag: u64,
    /// True when the message was delivered before and not acknowledged.
    pub redelivered: bool,
    /// The exchange it was published to (empty for the default exchange).
    pub exchange: ShortString,
    /// The routing key it was published with.
    pub routing_key: ShortString,
    /// The consumer it was delivered to (empty for `basic.get`).
    pub consumer_tag: ShortString,
    /// Its properties.
    pub properties: BasicProperties,
    /// Its body: a zero-copy slice of the read buffer when it fit one frame.
    pub body: Bytes,
}

/// The result of a successful `basic.get`.
#[derive(Debug, Clone, PartialEq)]
pub struct GetMessage {
    /// The message.
    pub delivery: Delivery,
    /// Messages left in the queue.
    pub message_count: u32,
}

/// An unroutable `mandatory` message the broker sent back (`basic.return`).
#[derive(Debug, Clone, PartialEq)]
pub struct Returned {
    /// Why (312 NO_ROUTE).
    pub reply_code: u16,
    /// The broker's explanation.
    pub reply_text: ShortString,
    /// The exchange it was published to.
    pub exchange: ShortString,
    /// The routing key it was published with.
    pub routing_key: ShortString,
    /// Its properties.
    pub properties: BasicProperties,
    /// Its body.
    pub body: Bytes,
}

/// The broker's verdict on one published message in confirm mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// `basic.ack`: the broker took responsibility for the message (for a `mandatory` message
    /// that could not be routed, after the `basic.return`).
    Ack,
    /// `basic.nack`: the broker could not take it (an internal error, a queue limit with
    /// `reject-publish`).
    Nack,
}
