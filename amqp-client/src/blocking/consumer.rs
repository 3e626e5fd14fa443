//! What a blocking channel hands back: a consumer's deliveries and the returned messages, each
//! read by a call that drives the connection until one is there or the caller's deadline passes.

use std::time::Instant;

use amqp_codec::{BasicCancel, BasicReject, ShortString};

use super::channel::Channel;
use super::driver::Inner;
use crate::error::{Error, Result};
use crate::message::{Delivery, Returned};

/// One thing the broker handed to a consumer's channel: see [`Consumer::next_with_returns`].
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A delivery to the consumer (boxed as it was read: it is moved by pointer).
    Delivery(Box<Delivery>),
    /// A `mandatory` message the broker could not route, sent back (boxed likewise).
    Returned(Box<Returned>),
}

/// The receiving end of a blocking `basic.consume`.
///
/// Deliveries are kept in order as the connection reads them (by whichever thread drives it)
/// and taken with [`Consumer::next_delivery`]. The consumer ends with
/// [`Error::ConsumerCancelled`] (by [`Channel::basic_cancel`] or by the broker, e.g. when its
/// queue is deleted), or with the channel's or connection's error, after the deliveries that
/// came before. Dropping it cancels it and gives back (requeues) what it had not taken.
#[derive(Debug)]
pub struct Consumer {
    channel: Channel,
    queue: u64,
    tag: ShortString,
    ended: Option<Error>,
}

impl Consumer {
    pub(crate) fn new(channel: Channel, queue: u64, tag: ShortString) -> Self {
        Consumer {
            channel,
            queue,
            tag,
            ended: None,
        }
    }

    /// The consumer tag (chosen by the broker when none was given).
    pub fn tag(&self) -> &ShortString {
        &self.tag
    }

    /// The channel it consumes on.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The next delivery, waiting until `deadline` for one (`Ok(None)` when it passes); or the
    /// reason the consumer ended (returned again on every later call).
    pub fn next_delivery(&mut self, deadline: Instant) -> Result<Option<Delivery>> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        let queue = self.queue;
        let mut inner = self.channel.shared().lock();
        let got = inner.wait(Some(deadline), |inner| take_delivery(inner, queue));
        drop(inner);
        self.note_end(got).map(|d| d.map(|d| *d))
    }

    /// A delivery already kept for this consumer, without reading the socket; `None` when there
    /// is none yet.
    pub fn try_next_delivery(&mut self) -> Option<Result<Delivery>> {
        if let Some(e) = &self.ended {
            return Some(Err(e.clone()));
        }
        let got = take_delivery(&mut self.channel.shared().lock(), self.queue)?;
        if let Err(e) = &got {
            self.ended = Some(e.clone());
        }
        Some(got.map(|d| *d))
    }

    /// The next delivery to this consumer or message returned on `returns`' channel, whichever
    /// comes first, waiting until `deadline` (`Ok(None)` when it passes).
    ///
    /// For a client that publishes `mandatory` requests and consumes their replies (an RPC
    /// client): one wait covers both ways a call can end. `returns` must belong to the same
    /// connection. Ends with the consumer's end, or the returns channel's.
    pub fn next_with_returns(
        &mut self,
        returns: &mut Returns,
        deadline: Instant,
    ) -> Result<Option<Incoming>> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        if !std::sync::Arc::ptr_eq(&self.channel.inner.handle, &returns.channel.inner.handle) {
            return Err(Error::Protocol(
                "the returns listener belongs to another connection".into(),
            ));
        }
        let (queue, listener) = (self.queue, returns.queue);
        let mut inner = self.channel.shared().lock();
        let got = inner.wait(Some(deadline), |inner| {
            if let Some(got) = take_delivery(inner, queue) {
                return Some(got.map(Incoming::Delivery));
            }
            take_return(inner, listener).map(|r| r.map(Incoming::Returned))
        });
        // An error may be the returns channel's only (another channel's close): the consumer
        // ends only with its own end or the connection's.
        let consumer_over = inner.core.is_closed()
            || inner
                .routing
                .consumers
                .get(&queue)
                .is_none_or(|q| q.ended.is_some() && q.items.is_empty());
        drop(inner);
        match got {
            Err(e) if consumer_over => self.note_end(Err(e)),
            other => other,
        }
    }

    fn note_end<T>(&mut self, got: Result<Option<T>>) -> Result<Option<T>> {
        if let Err(e) = &got {
            self.ended = Some(e.clone());
        }
        got
    }
}

/// The next delivery of consumer queue `queue`, or its end once it has no more.
fn take_delivery(inner: &mut Inner, queue: u64) -> Option<Result<Box<Delivery>>> {
    let Some(q) = inner.routing.consumers.get_mut(&queue) else {
        return Some(Err(Error::ConsumerCancelled("consumer removed".into())));
    };
    if let Some(d) = q.items.pop_front() {
        return Some(Ok(d));
    }
    q.ended.clone().map(Err)
}

/// The next returned message of returns queue `queue`, or the channel's end once it has no more.
fn take_return(inner: &mut Inner, queue: u64) -> Option<Result<Box<Returned>>> {
    let Some(q) = inner.routing.returns.get_mut(&queue) else {
        return Some(Err(Error::ConnectionLost(
            "the returns listener was replaced".into(),
        )));
    };
    if let Some(r) = q.items.pop_front() {
        return Some(Ok(r));
    }
    q.ended.clone().map(Err)
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let id = self.channel.inner.id;
        let mut inner = self.channel.shared().lock();
        let Some(queue) = inner.routing.consumers.remove(&self.queue) else {
            return;
        };
        if queue.ended.is_some() || inner.core.is_closed() {
            return;
        }
        // Under the lock nothing is routed to the queue: drop the route, cancel in the core
        // (which then gives back deliveries still on their way), requeue what was kept.
        if let Some(routes) = inner.routing.channels.get_mut(&id.number()) {
            routes.consumers.remove(self.tag.as_bytes());
        }
        if inner.core.has_consumer(id, self.tag.as_bytes()) {
            let cancel = BasicCancel {
                consumer_tag: self.tag.clone(),
                nowait: true,
            };
            let _ = inner.core.send_method(id, cancel.into());
        }
        if !queue.no_ack {
            for d in queue.items {
                let reject = BasicReject {
                    delivery_tag: d.delivery_tag,
                    requeue: true,
                };
                let _ = inner.core.send_method(id, reject.into());
            }
        }
        inner.settle();
        inner.flush();
    }
}

/// The returned (`mandatory`, unroutable) messages of a blocking channel; see
/// [`Channel::returns`]. Dropping it stops keeping them.
#[derive(Debug)]
pub struct Returns {
    channel: Channel,
    queue: u64,
}

impl Returns {
    pub(crate) fn new(channel: Channel, queue: u64) -> Self {
        Returns { channel, queue }
    }

    /// The next returned message, waiting until `deadline` (`Ok(None)` when it passes); the
    /// channel's error once it is closed and nothing is left.
    pub fn next_return(&mut self, deadline: Instant) -> Result<Option<Returned>> {
        let queue = self.queue;
        let mut inner = self.channel.shared().lock();
        let got = inner.wait(Some(deadline), |inner| take_return(inner, queue));
        got.map(|r| r.map(|r| *r))
    }

    /// A returned message already kept, without reading the socket.
    pub fn try_next_return(&mut self) -> Option<Returned> {
        let mut inner = self.channel.shared().lock();
        inner
            .routing
            .returns
            .get_mut(&self.queue)
            .and_then(|q| q.items.pop_front())
            .map(|r| *r)
    }
}

impl Drop for Returns {
    fn drop(&mut self) {
        let mut inner = self.channel.shared().lock();
        inner.routing.returns.remove(&self.queue);
        if let Some(routes) = inner
            .routing
            .channels
            .get_mut(&self.channel.inner.id.number())
        {
            if routes.returns == Some(self.queue) {
                routes.returns = None;
            }
        }
    }
}
