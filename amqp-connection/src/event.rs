//! What the connection tells its driver: the outputs of [`crate::Connection::poll_event`].
//!
//! Events come out in the order the broker's frames caused them, so a driver that routes them in
//! order keeps every guarantee the protocol gives: a channel's replies answer its calls in the
//! order they were made, a consumer's deliveries arrive in queue order, and `basic.consume-ok`
//! (which names the consumer) comes before the first delivery for it.

use amqp_codec::{Method, ShortString};

use crate::error::Error;
use crate::message::{Confirm, Delivery, GetMessage, Returned};

/// The answer to a synchronous method.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The reply method (`queue.declare-ok`, `basic.consume-ok`, `channel.close-ok`, …).
    Method(Method),
    /// `basic.get-ok` with its message, or `basic.get-empty` (`None`).
    Get(Option<Box<GetMessage>>),
}

/// One thing that happened on the connection.
#[derive(Debug, Clone)]
pub enum Event {
    /// The handshake finished: channels may be opened.
    Connected,
    /// The oldest synchronous call waiting on `channel` is answered: its reply, or the error that
    /// ended it (the channel closed under it). Calls on a channel are answered in the order they
    /// were made, one event each.
    Reply {
        /// The channel number.
        channel: u16,
        /// The reply or the error.
        result: Result<Reply, Error>,
    },
    /// A message for a consumer of this client.
    Delivery {
        /// The channel number.
        channel: u16,
        /// The message (its `consumer_tag` names the consumer).
        delivery: Box<Delivery>,
    },
    /// A `mandatory` message the broker could not route, sent back (`basic.return`).
    Returned {
        /// The channel number.
        channel: u16,
        /// The message and why.
        returned: Box<Returned>,
    },
    /// The broker's verdict on published messages of a channel in confirm mode: `delivery_tag`
    /// alone, or with `multiple` every tag up to and including it not settled yet.
    Confirm {
        /// The channel number.
        channel: u16,
        /// The publish sequence number.
        delivery_tag: u64,
        /// Settles every earlier unsettled tag too.
        multiple: bool,
        /// Ack or nack.
        verdict: Confirm,
    },
    /// A consumer ended: cancelled by the client (`basic.cancel-ok`) or by the broker (its queue
    /// went away). No delivery for it follows.
    ConsumerEnded {
        /// The channel number.
        channel: u16,
        /// The consumer's tag.
        consumer_tag: ShortString,
        /// Why.
        reason: Error,
    },
    /// `channel.flow` from the broker: it asks the client to stop (`false`) or resume (`true`)
    /// publishing on the channel. The connection has already answered `channel.flow-ok`.
    Flow {
        /// The channel number.
        channel: u16,
        /// Whether publishing may go on.
        active: bool,
    },
    /// The channel is closed (by the broker, or by this client's `channel.close` once the broker
    /// confirmed it) and its number is free again. Every call it had pending was answered
    /// before this event; consumers and confirm waiters end with `error`.
    ChannelClosed {
        /// The channel number.
        channel: u16,
        /// Why.
        error: Error,
    },
    /// `connection.blocked`: the broker stopped reading from publishers (a memory or disk
    /// alarm). Publishes are still accepted here and wait in the send buffer.
    Blocked {
        /// The broker's reason.
        reason: String,
    },
    /// `connection.unblocked`.
    Unblocked,
    /// The connection is over: every channel, call, consumer and confirm ends with `error`.
    /// The last event; bytes still to send (a `close-ok`) may remain for the driver to flush.
    Closed {
        /// Why.
        error: Error,
    },
}
