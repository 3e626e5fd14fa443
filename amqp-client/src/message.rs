//! The receivers of what the broker hands back: a consumer's deliveries, a publish's confirm,
//! a channel's returned messages. The messages themselves are the core's plain data.

use tokio::sync::{mpsc, oneshot};

use amqp_codec::{BasicCancel, BasicReject, ShortString};

pub use amqp_connection::message::{Confirm, Delivery, GetMessage, Returned};

use crate::channel::ChannelInner;
use crate::error::{Error, Result};

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
pub type ConsumerItem = Result<Delivery>;

/// A [`ConsumerItem`] as it travels through the consumer's queue: the delivery stays in the box
/// the core put it in (a 512-byte move saved at each hop: the send, the queue's slot, the receive).
pub(crate) type QueuedItem = Result<Box<Delivery>>;

/// The receiving end of `basic.consume`.
///
/// Deliveries come straight from the connection's reader task, in order. The consumer ends with
/// [`Error::ConsumerCancelled`] (by [`crate::Channel::basic_cancel`] or by the broker, e.g. when
/// its queue is deleted), or with the channel's or connection's error.
#[derive(Debug)]
pub struct Consumer {
    pub(crate) tag: ShortString,
    pub(crate) rx: mpsc::UnboundedReceiver<QueuedItem>,
    pub(crate) ended: Option<Error>,
    pub(crate) cancel_on_drop: Option<CancelOnDrop>,
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
    pub fn tag(&self) -> &ShortString {
        &self.tag
    }

    /// The next delivery, or the reason the consumer ended (returned again on every later call).
    pub async fn recv(&mut self) -> Result<Delivery> {
        self.recv_boxed().await.map(|d| *d)
    }

    /// [`Consumer::recv`] with the delivery in the box it travelled in, for a receiver that
    /// moves it on (into a task, a handler) and would otherwise copy its 512 bytes each time.
    pub async fn recv_boxed(&mut self) -> Result<Box<Delivery>> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        let item = self
            .rx
            .recv()
            .await
            .unwrap_or_else(|| Err(Error::ConsumerCancelled(self.tag.to_string())));
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
                Some(item.map(|d| *d))
            }
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                let e = Error::ConsumerCancelled(self.tag.to_string());
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

/// Cancels a dropped [`Consumer`] (`basic.cancel` with `nowait`) if its channel is still alive,
/// and gives back the deliveries it had not taken.
#[derive(Debug)]
pub(crate) struct CancelOnDrop {
    pub(crate) channel: std::sync::Weak<ChannelInner>,
    pub(crate) no_ack: bool,
}

impl CancelOnDrop {
    pub(crate) fn cancel(
        &self,
        consumer_tag: &ShortString,
        rx: &mut mpsc::UnboundedReceiver<QueuedItem>,
    ) {
        let Some(channel) = self.channel.upgrade() else {
            return;
        };
        let shared = &channel.handle.shared;
        // Under the lock nothing is routed to the queue: close it, cancel in the core (which
        // then requeues deliveries still on their way), and requeue what the queue holds.
        let mut inner = shared.lock();
        rx.close();
        if let Some(routes) = inner.channels.get_mut(&channel.id.number()) {
            routes.consumers.remove(consumer_tag.as_bytes());
        }
        if inner.core.has_consumer(channel.id, consumer_tag.as_bytes()) {
            let cancel = BasicCancel {
                consumer_tag: consumer_tag.clone(),
                nowait: true,
            };
            let _ = inner.core.send_method(channel.id, cancel.into());
        }
        while let Ok(item) = rx.try_recv() {
            if let (Ok(d), false) = (item, self.no_ack) {
                let reject = BasicReject {
                    delivery_tag: d.delivery_tag,
                    requeue: true,
                };
                let _ = inner.core.send_method(channel.id, reject.into());
            }
        }
        shared.settle(&mut inner);
    }
}
