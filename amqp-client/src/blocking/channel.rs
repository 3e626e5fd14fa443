//! A blocking channel: the same operations and option structs as the tokio shell's
//! [`crate::Channel`] (the methods are built by the same functions), each call made on the
//! caller's thread.
//!
//! Synchronous methods wait for their reply, bounded by the core's reply timeout (past it the
//! core closes the connection: the broker is alive but not answering) or, tighter, by the
//! channel's own [`Channel::set_call_timeout`]. Publishing, acks and rejects are written at once
//! (one `write` each) and do not wait.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use amqp_codec::{BasicProperties, FieldTable, Method};
use amqp_connection::{ChannelId, Reply, Sent};

use super::connection::{Handle, Shared};
use super::consumer::{Consumer, Returns};
use super::routes::{ReturnsQueue, Waiter};
use crate::channel::basic::{self, BasicAckOptions, BasicConsumeOptions, BasicGetOptions};
use crate::channel::basic::{
    BasicNackOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
};
use crate::channel::exchange::{self, ExchangeDeclareOptions, ExchangeDeleteOptions};
use crate::channel::queue::{self, QueueDeclareOk, QueueDeclareOptions, QueueDeleteOptions};
use crate::channel::{close_method, unexpected_reply};
use crate::error::{Error, Result};
use crate::message::GetMessage;

pub(crate) struct ChannelInner {
    pub(crate) id: ChannelId,
    pub(crate) handle: Arc<Handle>,
    /// Set when the channel closed (from its routes).
    pub(crate) closed: Arc<OnceLock<Error>>,
}

impl Drop for ChannelInner {
    fn drop(&mut self) {
        // Best effort, without waiting: the close's reply goes to nobody, and the number is free
        // at close-ok, which whoever drives the connection next takes in.
        let mut inner = self.handle.shared.lock();
        if inner.core.channel_status(self.id).is_err() {
            return;
        }
        if let Ok(Sent::AwaitsReply) = inner
            .core
            .send_method(self.id, close_method("channel dropped"))
        {
            let ticket = inner.routing.next_id();
            if let Some(routes) = inner.routing.channels.get_mut(&self.id.number()) {
                routes.waiters.push_back(Waiter {
                    ticket,
                    wanted: false,
                    consume: None,
                });
            }
        }
        inner.settle();
        inner.flush();
    }
}

/// A channel of a blocking [`super::Connection`]: cheap to clone; closed (best effort) when the
/// last clone, consumer and returns handle of it are dropped.
#[derive(Clone)]
pub struct Channel {
    pub(crate) inner: Arc<ChannelInner>,
    /// This handle's bound on synchronous calls (`None`: the core's reply timeout).
    call_timeout: Option<Duration>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Channel")
            .field("id", &self.inner.id.number())
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

impl Channel {
    pub(crate) fn new(id: ChannelId, handle: Arc<Handle>, closed: Arc<OnceLock<Error>>) -> Self {
        Channel {
            inner: Arc::new(ChannelInner { id, handle, closed }),
            call_timeout: None,
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.handle.shared
    }

    /// The channel number.
    pub fn id(&self) -> u16 {
        self.inner.id.number()
    }

    /// Bounds this handle's synchronous calls by `timeout` instead of the connection's reply
    /// timeout (30 s). A call that runs out fails with [`Error::ReplyTimeout`] and leaves the
    /// connection and the channel open: its reply, when it comes, is dropped, and later calls
    /// get their own replies (a channel's replies come in the order of its calls).
    pub fn set_call_timeout(&mut self, timeout: Option<Duration>) {
        self.call_timeout = timeout;
    }

    /// `Ok` while the channel is usable; otherwise why it closed.
    pub fn status(&self) -> Result<()> {
        self.check_closed()?;
        self.shared().lock().core.channel_status(self.inner.id)
    }

    fn check_closed(&self) -> Result<()> {
        match self.inner.closed.get() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Sends a synchronous method and drives the connection until its reply. For a
    /// `basic.consume`, `consume` is the queue its deliveries go to.
    fn call_with(&self, method: Method, consume: Option<u64>) -> Result<Reply> {
        self.check_closed()?;
        let started = Instant::now();
        let deadline = self.call_timeout.map(|t| started + t);
        let info = method.info();
        let number = self.inner.id.number();
        let mut inner = self.shared().lock();
        match inner.core.send_method(self.inner.id, method)? {
            Sent::AwaitsReply => {}
            Sent::NoReply => {
                inner.flush();
                return Err(Error::Protocol(format!(
                    "{}.{} has no reply to wait for",
                    info.class_name, info.method_name
                )));
            }
        }
        let ticket = inner.routing.next_id();
        match inner.routing.channels.get_mut(&number) {
            Some(routes) => routes.waiters.push_back(Waiter {
                ticket,
                wanted: true,
                consume,
            }),
            None => return Err(inner.dead_error()),
        }
        match inner.wait(deadline, |inner| inner.routing.replies.remove(&ticket)) {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => {
                inner.routing.abandon(number, ticket);
                Err(Error::ReplyTimeout {
                    channel: number,
                    method: format!("{}.{}", info.class_name, info.method_name),
                    timeout: deadline.map_or(Duration::ZERO, |d| d - started),
                })
            }
            Err(e) => {
                inner.routing.abandon(number, ticket);
                Err(e)
            }
        }
    }

    fn call_method(&self, method: Method) -> Result<Method> {
        match self.call_with(method, None)? {
            Reply::Method(m) => Ok(m),
            other => Err(unexpected_reply(other)),
        }
    }

    /// Sends a method nothing answers (an ack, a reject) and writes it at once.
    fn send_now(&self, method: Method) -> Result<()> {
        self.check_closed()?;
        let mut inner = self.shared().lock();
        inner.core.send_method(self.inner.id, method)?;
        inner.flush();
        Ok(())
    }

    // ------------------------------------------------------------------ queue

    /// `queue.declare`. An empty `queue` asks the broker for a server-named queue.
    pub fn queue_declare(
        &self,
        queue: &str,
        options: QueueDeclareOptions,
    ) -> Result<QueueDeclareOk> {
        queue::declare_ok(self.call_method(queue::declare_method(queue, options))?)
    }

    /// `queue.bind`: route messages of `exchange` with `routing_key` to `queue`.
    pub fn queue_bind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = queue::bind_method(false, queue, exchange, routing_key, arguments);
        self.call_method(m).map(drop)
    }

    /// `queue.unbind`.
    pub fn queue_unbind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = queue::bind_method(true, queue, exchange, routing_key, arguments);
        self.call_method(m).map(drop)
    }

    /// `queue.purge`: returns how many messages were removed.
    pub fn queue_purge(&self, queue: &str) -> Result<u32> {
        queue::message_count(self.call_method(queue::purge_method(queue))?)
    }

    /// `queue.delete`: returns how many messages went with the queue.
    pub fn queue_delete(&self, queue: &str, options: QueueDeleteOptions) -> Result<u32> {
        queue::message_count(self.call_method(queue::delete_method(queue, options))?)
    }

    // --------------------------------------------------------------- exchange

    /// `exchange.declare` of type `kind` (`direct`, `fanout`, `topic`, `headers`).
    pub fn exchange_declare(
        &self,
        exchange: &str,
        kind: &str,
        options: ExchangeDeclareOptions,
    ) -> Result<()> {
        let m = exchange::declare_method(exchange, kind, options);
        self.call_method(m).map(drop)
    }

    /// `exchange.delete`.
    pub fn exchange_delete(&self, exchange: &str, options: ExchangeDeleteOptions) -> Result<()> {
        self.call_method(exchange::delete_method(exchange, options))
            .map(drop)
    }

    /// `exchange.bind`: route messages from `source` to `destination` (RabbitMQ extension).
    pub fn exchange_bind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = exchange::bind_method(false, destination, source, routing_key, arguments);
        self.call_method(m).map(drop)
    }

    /// `exchange.unbind`.
    pub fn exchange_unbind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = exchange::bind_method(true, destination, source, routing_key, arguments);
        self.call_method(m).map(drop)
    }

    // ------------------------------------------------------------------ basic

    /// `basic.qos`: at most `prefetch_count` unacknowledged deliveries (0 = no limit), per
    /// consumer, or with `global` (RabbitMQ) per channel.
    pub fn basic_qos(&self, prefetch_count: u16, options: BasicQosOptions) -> Result<()> {
        self.call_method(basic::qos_method(prefetch_count, options))
            .map(drop)
    }

    /// `basic.consume`: deliveries are kept for the returned [`Consumer`], in order, and read
    /// with [`Consumer::next_delivery`].
    pub fn basic_consume(&self, queue: &str, options: BasicConsumeOptions) -> Result<Consumer> {
        let no_ack = options.no_ack;
        let slot = self.shared().lock().routing.new_consumer_queue(no_ack);
        let reply = self.call_with(basic::consume_method(queue, options), Some(slot));
        match reply.and_then(basic::consume_ok) {
            Ok(tag) => Ok(Consumer::new(self.clone(), slot, tag)),
            Err(e) => {
                // Abandoned calls leave the queue to the router (it cancels a late consume-ok).
                if !matches!(e, Error::ReplyTimeout { .. }) {
                    self.shared().lock().routing.consumers.remove(&slot);
                }
                Err(e)
            }
        }
    }

    /// `basic.cancel`: the consumer ends with [`Error::ConsumerCancelled`] after the deliveries
    /// already kept for it.
    pub fn basic_cancel(&self, consumer_tag: impl AsRef<[u8]>) -> Result<()> {
        self.call_method(basic::cancel_method(consumer_tag.as_ref()))
            .map(drop)
    }

    /// `basic.publish`: the message (method, header and body frames of at most `frame_max`, in
    /// one piece) is written at once, with whatever else waited to be sent, in one `write`. With
    /// `mandatory`, an unroutable message comes back on [`returns`](Self::returns).
    pub fn basic_publish(
        &self,
        exchange: &str,
        routing_key: impl AsRef<[u8]>,
        options: BasicPublishOptions,
        properties: &BasicProperties,
        body: &[u8],
    ) -> Result<()> {
        self.check_closed()?;
        let mut inner = self.shared().lock();
        inner.core.publish(
            self.inner.id,
            exchange,
            routing_key,
            options.mandatory,
            options.immediate,
            properties,
            body,
        )?;
        inner.flush();
        Ok(())
    }

    /// [`Channel::basic_publish`] with the properties already encoded (the flags word and the
    /// present properties in wire order, as [`BasicProperties::encoded`] gives them): for a
    /// sender that keeps one properties buffer and writes only what changes per message. The
    /// bytes are the caller's word (see [`amqp_codec::encode_publish_raw`]).
    pub fn basic_publish_raw(
        &self,
        exchange: &str,
        routing_key: impl AsRef<[u8]>,
        options: BasicPublishOptions,
        properties: &[u8],
        body: &[u8],
    ) -> Result<()> {
        self.check_closed()?;
        let mut inner = self.shared().lock();
        inner.core.publish_raw(
            self.inner.id,
            exchange,
            routing_key,
            options.mandatory,
            options.immediate,
            properties,
            body,
        )?;
        inner.flush();
        Ok(())
    }

    /// Keeps the messages the broker returns as unroutable (`mandatory`) for the returned
    /// [`Returns`]; without one they are dropped. Call it before publishing; a later call
    /// replaces the earlier listener.
    pub fn returns(&self) -> Returns {
        let mut inner = self.shared().lock();
        let id = inner.routing.next_id();
        let mut queue = ReturnsQueue::default();
        match inner.routing.channels.get_mut(&self.inner.id.number()) {
            Some(routes) => {
                if let Some(old) = routes.returns.replace(id) {
                    inner.routing.returns.remove(&old);
                }
            }
            None => {
                queue.ended = Some(
                    self.inner
                        .closed
                        .get()
                        .cloned()
                        .unwrap_or_else(|| inner.dead_error()),
                )
            }
        }
        inner.routing.returns.insert(id, queue);
        Returns::new(self.clone(), id)
    }

    /// `basic.ack` of one delivery, or with `multiple` of all up to `delivery_tag`.
    pub fn basic_ack(&self, delivery_tag: u64, options: BasicAckOptions) -> Result<()> {
        self.send_now(basic::ack_method(delivery_tag, options))
    }

    /// `basic.nack` (RabbitMQ extension): reject one or many deliveries.
    pub fn basic_nack(&self, delivery_tag: u64, options: BasicNackOptions) -> Result<()> {
        self.send_now(basic::nack_method(delivery_tag, options))
    }

    /// `basic.reject` of one delivery.
    pub fn basic_reject(&self, delivery_tag: u64, options: BasicRejectOptions) -> Result<()> {
        self.send_now(basic::reject_method(delivery_tag, options))
    }

    /// `basic.get`: one message from `queue`, or `None` when it is empty.
    pub fn basic_get(&self, queue: &str, options: BasicGetOptions) -> Result<Option<GetMessage>> {
        basic::get_reply(self.call_with(basic::get_method(queue, options), None)?)
    }

    /// `channel.close` (200) and wait for close-ok; the number is then free for reuse. Closing
    /// a channel that is already closed is a no-op.
    pub fn close(&self) -> Result<()> {
        match self.call_with(close_method("closed by client"), None) {
            Ok(_) => Ok(()),
            Err(Error::ChannelClosed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
