//! What the broker hands back: deliveries to consumers, `basic.get` results, returned messages,
//! publisher confirms; and the receivers they arrive on.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use amqp_codec::{BasicProperties, ShortString};

use crate::error::{Error, Result};

/// A message delivered by `basic.deliver` (to a [`Consumer`]) or `basic.get-ok`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The tag to acknowledge it with ([`crate::Channel::basic_ack`]); scoped to its channel.
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

/// An awaitable publisher confirm: the answer to one publish on a channel in confirm mode.
#[derive(Debug)]
pub struct Confirmation {
    pub(crate) delivery_tag: u64,
    pub(crate) rx: oneshot::Receiver<Result<Confirm>>,
}

impl Confirmation {
    /// The publish sequence number (the delivery tag the broker confirms).
    pub fn delivery_tag(&self) -> u64 {
        self.delivery_tag
    }

    /// Wait for the broker's ack or nack. Fails if the channel or connection closes first.
    pub async fn wait(self) -> Result<Confirm> {
        self.rx.await.unwrap_or_else(|_| {
            Err(Error::ConnectionLost(
                "confirm tracker dropped before the broker answered".into(),
            ))
        })
    }
}

/// What a consumer's queue carries: a delivery, or the reason it ended.
pub(crate) type ConsumerItem = Result<Delivery>;

/// The receiving end of `basic.consume`.
///
/// Deliveries come straight from the connection's reader task, in order. The consumer ends with
/// [`Error::ConsumerCancelled`] (by [`crate::Channel::basic_cancel`] or by the broker, e.g. when
/// its queue is deleted), or with the channel's or connection's error.
#[derive(Debug)]
pub struct Consumer {
    pub(crate) tag: String,
    pub(crate) rx: mpsc::UnboundedReceiver<ConsumerItem>,
    pub(crate) ended: Option<Error>,
    pub(crate) cancel_on_drop: Option<crate::channel::CancelOnDrop>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.ended.is_none() {
            if let Some(c) = &self.cancel_on_drop {
                c.cancel(&self.tag, &mut self.rx);
            }
        }
    }
}

impl Consumer {
    /// The consumer tag (chosen by the broker when none was given).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The next delivery, or the reason the consumer ended (returned again on every later call).
    pub async fn recv(&mut self) -> Result<Delivery> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        let item = self
            .rx
            .recv()
            .await
            .unwrap_or_else(|| Err(Error::ConsumerCancelled(self.tag.clone())));
        if let Err(e) = &item {
            self.ended = Some(e.clone());
        }
        item
    }

    /// A delivery already received, without waiting; `None` when there is none yet.
    pub fn try_recv(&mut self) -> Option<Result<Delivery>> {
        if let Some(e) = &self.ended {
            return Some(Err(e.clone()));
        }
        match self.rx.try_recv() {
            Ok(item) => {
                if let Err(e) = &item {
                    self.ended = Some(e.clone());
                }
                Some(item)
            }
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                let e = Error::ConsumerCancelled(self.tag.clone());
                self.ended = Some(e.clone());
                Some(Err(e))
            }
        }
    }
}

/// The returned (`mandatory`, unroutable) messages of a channel; see [`crate::Channel::returns`].
#[derive(Debug)]
pub struct Returns {
    pub(crate) rx: mpsc::UnboundedReceiver<Returned>,
}

impl Returns {
    /// The next returned message; `None` once the channel is closed.
    pub async fn recv(&mut self) -> Option<Returned> {
        self.rx.recv().await
    }

    /// A returned message already received, without waiting.
    pub fn try_recv(&mut self) -> Option<Returned> {
        self.rx.try_recv().ok()
    }
}
