//! Where the core's events go in the blocking shell: queues that waiting callers read.
//!
//! The tokio shell hands each event to a waiting task (a oneshot, a consumer's channel). Here the
//! thread that reads the socket is the caller that wants something, so an event is put where a
//! caller will look for it: a synchronous call's reply under its ticket, a delivery in its
//! consumer's queue, a returned message in its channel's returns queue. All of it sits behind
//! the connection's one lock, beside the core, and is only touched by the thread holding it.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use amqp_codec::{BasicCancel, BasicReject, Method};
use amqp_connection::hash::IdMap;
use amqp_connection::{ChannelId, Event, Reply, Sent};

use crate::error::{Error, Result};
use crate::message::{Delivery, Returned};

/// A map with the core's cheap hasher (channel numbers, ticket and queue ids, consumer tags: see
/// [`amqp_connection::hash`]).
pub(crate) type Map<K, V> = IdMap<K, V>;

/// A synchronous call waiting for its reply (the core answers a channel's calls in order).
#[derive(Debug)]
pub(crate) struct Waiter {
    /// Where its reply is put ([`Routing::replies`]).
    pub ticket: u64,
    /// False once the caller gave up (its deadline passed): the reply is dropped when it comes.
    pub wanted: bool,
    /// For `basic.consume`: the queue its deliveries go to, routed from consume-ok on.
    pub consume: Option<u64>,
}

/// One open channel's destinations.
#[derive(Debug)]
pub(crate) struct Routes {
    pub id: ChannelId,
    pub waiters: VecDeque<Waiter>,
    /// Consumer tag → its queue in [`Routing::consumers`].
    pub consumers: Map<Bytes, u64>,
    /// The queue in [`Routing::returns`] that keeps `basic.return`s, if someone listens.
    pub returns: Option<u64>,
    /// Set when the channel closes: every handle's later call gets it.
    pub closed: Arc<OnceLock<Error>>,
}

impl Routes {
    pub(crate) fn new(id: ChannelId, closed: Arc<OnceLock<Error>>) -> Self {
        Routes {
            id,
            waiters: VecDeque::new(),
            consumers: Map::default(),
            returns: None,
            closed,
        }
    }
}

/// One consumer's deliveries, kept until its [`super::Consumer`] takes them.
#[derive(Debug)]
pub(crate) struct ConsumerQueue {
    /// Deliveries need no ack (nothing to give back when the consumer goes).
    pub no_ack: bool,
    /// Boxed as the core gives them: a delivery (~500 bytes) is moved by pointer until the
    /// caller takes it.
    pub items: VecDeque<Box<Delivery>>,
    /// Why the consumer ended, once it has; read after the deliveries before it.
    pub ended: Option<Error>,
}

/// A channel's returned messages, kept until its [`super::Returns`] takes them.
#[derive(Debug, Default)]
pub(crate) struct ReturnsQueue {
    pub items: VecDeque<Box<Returned>>,
    /// The channel's end, once it has closed.
    pub ended: Option<Error>,
}

/// Every destination of the connection's events.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    /// Open channels by number (events name numbers).
    pub channels: Map<u16, Routes>,
    /// Replies by ticket, until their callers take them.
    pub replies: Map<u64, Result<Reply>>,
    /// Consumer queues by id: they outlive their channel until their handle goes, so that the
    /// deliveries before a close are still read, then the close's reason.
    pub consumers: Map<u64, ConsumerQueue>,
    /// Returns queues by id, likewise.
    pub returns: Map<u64, ReturnsQueue>,
    /// `Some(reason)` while the broker blocks publishers (`connection.blocked`).
    pub blocked: Option<String>,
    next_id: u64,
}

impl Routing {
    /// A number no ticket or queue of this connection had.
    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The caller of `ticket` on `channel` gave up: its reply is dropped when it comes (a later
    /// call on the channel must not take it: replies answer calls in order).
    pub(crate) fn abandon(&mut self, channel: u16, ticket: u64) {
        if self.replies.remove(&ticket).is_some() {
            return;
        }
        if let Some(w) = self
            .channels
            .get_mut(&channel)
            .and_then(|r| r.waiters.iter_mut().find(|w| w.ticket == ticket))
        {
            w.wanted = false;
        }
    }

    /// Routes every event the core has queued.
    pub(crate) fn dispatch(&mut self, core: &mut amqp_connection::Connection, peer: &str) {
        while let Some(event) = core.poll_event() {
            match event {
                Event::Connected => {}
                Event::Reply { channel, result } => self.reply(core, channel, result),
                Event::Delivery { channel, delivery } => self.delivery(core, channel, delivery),
                Event::Returned { channel, returned } => {
                    let queue = self.channels.get(&channel).and_then(|r| r.returns);
                    match queue.and_then(|q| self.returns.get_mut(&q)) {
                        Some(q) => q.items.push_back(returned),
                        None => tracing::debug!(
                            channel,
                            code = returned.reply_code,
                            "basic.return with no returns() listener"
                        ),
                    }
                }
                Event::Confirm { channel, .. } => {
                    // The blocking shell offers no confirm mode, so the core sends none.
                    tracing::debug!(channel, "publisher confirm on a blocking channel ignored");
                }
                Event::ConsumerEnded {
                    channel,
                    consumer_tag,
                    reason,
                } => {
                    let route = self
                        .channels
                        .get_mut(&channel)
                        .and_then(|r| r.consumers.remove(consumer_tag.as_bytes()));
                    if let Some(q) = route.and_then(|q| self.consumers.get_mut(&q)) {
                        q.ended.get_or_insert(reason);
                    }
                }
                Event::Flow { channel, active } => {
                    tracing::info!(channel, active, "channel.flow from the broker");
                }
                Event::ChannelClosed { channel, error } => self.channel_closed(channel, &error),
                Event::Blocked { reason } => {
                    tracing::info!(%peer, reason = %amqp_codec::Escaped(reason.as_bytes()), "broker blocked publishing");
                    self.blocked = Some(reason);
                }
                Event::Unblocked => {
                    tracing::info!(%peer, "broker unblocked publishing");
                    self.blocked = None;
                }
                Event::Closed { error } => {
                    tracing::debug!(%peer, %error, "connection ended");
                    // The core closed every channel before this event; any routes left over get
                    // the connection's error too.
                    let left: Vec<u16> = self.channels.keys().copied().collect();
                    for channel in left {
                        self.channel_closed(channel, &error);
                    }
                    self.blocked = None;
                }
            }
        }
    }

    fn reply(
        &mut self,
        core: &mut amqp_connection::Connection,
        channel: u16,
        result: Result<Reply>,
    ) {
        let Some(routes) = self.channels.get_mut(&channel) else {
            return;
        };
        let Some(waiter) = routes.waiters.pop_front() else {
            return;
        };
        if let Some(queue) = waiter.consume {
            match (&result, waiter.wanted) {
                (Ok(Reply::Method(Method::BasicConsumeOk(ok))), true) => {
                    routes
                        .consumers
                        .insert(ok.consumer_tag.clone().into_bytes(), queue);
                }
                (Ok(Reply::Method(Method::BasicConsumeOk(ok))), false) => {
                    // Nobody will read this consumer: cancel it (the core then gives back what
                    // is still on its way).
                    self.consumers.remove(&queue);
                    let cancel = BasicCancel {
                        consumer_tag: ok.consumer_tag.clone(),
                        nowait: true,
                    };
                    let _ = core.send_method(routes.id, cancel.into());
                }
                (_, false) => {
                    self.consumers.remove(&queue);
                }
                // A failed consume: its caller removes the queue.
                (_, true) => {}
            }
        }
        if waiter.wanted {
            self.replies.insert(waiter.ticket, result);
        } else if let Ok(Reply::Method(Method::ChannelOpenOk(_))) = result {
            // A channel whose opener gave up: nobody holds it, so close it (the close's reply
            // goes to nobody either).
            let close = crate::channel::close_method("channel open abandoned");
            if let Ok(Sent::AwaitsReply) = core.send_method(routes.id, close) {
                self.next_id += 1;
                routes.waiters.push_back(Waiter {
                    ticket: self.next_id,
                    wanted: false,
                    consume: None,
                });
            }
        }
    }

    fn delivery(
        &mut self,
        core: &mut amqp_connection::Connection,
        channel: u16,
        delivery: Box<Delivery>,
    ) {
        let Some(routes) = self.channels.get(&channel) else {
            return;
        };
        let queue = routes.consumers.get(delivery.consumer_tag.as_bytes());
        match queue.and_then(|q| self.consumers.get_mut(q)) {
            Some(q) => q.items.push_back(delivery),
            None => {
                // Not reachable by construction (a consumer's route goes when its handle does,
                // with a cancel that makes the core give back later deliveries); if it were, give
                // the message back rather than leave it unacknowledged.
                tracing::debug!(channel, consumer_tag = %amqp_codec::Escaped(delivery.consumer_tag.as_bytes()), "delivery for no consumer queue: rejected");
                let reject = BasicReject {
                    delivery_tag: delivery.delivery_tag,
                    requeue: true,
                };
                let _ = core.send_method(routes.id, reject.into());
            }
        }
    }

    fn channel_closed(&mut self, channel: u16, error: &Error) {
        let Some(mut routes) = self.channels.remove(&channel) else {
            return;
        };
        // The core answers every pending call before the close; anything left learns why.
        for w in routes.waiters.drain(..) {
            if w.wanted {
                self.replies.insert(w.ticket, Err(error.clone()));
            }
            if let Some(q) = w.consume {
                if !w.wanted {
                    self.consumers.remove(&q);
                }
            }
        }
        for (_, q) in routes.consumers.drain() {
            if let Some(q) = self.consumers.get_mut(&q) {
                q.ended.get_or_insert_with(|| error.clone());
            }
        }
        if let Some(q) = routes.returns.and_then(|q| self.returns.get_mut(&q)) {
            q.ended.get_or_insert_with(|| error.clone());
        }
        let _ = routes.closed.set(error.clone());
    }

    /// A new consumer queue for a `basic.consume` about to be sent.
    pub(crate) fn new_consumer_queue(&mut self, no_ack: bool) -> u64 {
        let id = self.next_id();
        self.consumers.insert(
            id,
            ConsumerQueue {
                no_ack,
                items: VecDeque::new(),
                ended: None,
            },
        );
        id
    }
}
