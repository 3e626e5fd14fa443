//! Channels: the operations of the spec's classes on one multiplexed channel.
//!
//! Synchronous methods (declare, bind, consume, ...) go one at a time per channel, as the spec
//! requires of a client, and wait for their reply. Publishing, acks and rejects are
//! fire-and-forget: they append to the connection's outbox and return without awaiting.

pub(crate) mod state;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use amqp_codec::{
    encode_message, BasicAck, BasicCancel, BasicConsume, BasicGet, BasicNack, BasicProperties,
    BasicPublish, BasicQos, BasicReject, ChannelClose, ChannelOpen, ConfirmSelect, ExchangeBind,
    ExchangeDeclare, ExchangeDelete, ExchangeUnbind, FieldTable, Frame, Method, QueueBind,
    QueueDeclare, QueueDelete, QueuePurge, QueueUnbind,
};

use amqp_codec as codec;

use crate::connection::shared::{lock, ChannelEntry, Shared};
use crate::connection::Handle;
use crate::error::{Error, Result, REPLY_SUCCESS};
use crate::message::{Confirmation, Consumer, Delivery, GetMessage, Returns};
use state::{ChannelState, ConsumerSink, ConsumerSlot, Pending, Reply, Status};

/// Options of `queue.declare`.
#[derive(Debug, Clone, Default)]
pub struct QueueDeclareOptions {
    /// Only check that the queue exists (404 NOT_FOUND closes the channel if not).
    pub passive: bool,
    /// Survive a broker restart.
    pub durable: bool,
    /// Owned by this connection, deleted when it closes.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Optional arguments (`x-message-ttl`, `x-max-length`, ...).
    pub arguments: FieldTable,
}

/// What `queue.declare-ok` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDeclareOk {
    /// The queue's name (chosen by the broker when declared with an empty name).
    pub queue: String,
    /// Ready messages.
    pub message_count: u32,
    /// Active consumers.
    pub consumer_count: u32,
}

/// Options of `exchange.declare`.
#[derive(Debug, Clone, Default)]
pub struct ExchangeDeclareOptions {
    /// Only check that the exchange exists.
    pub passive: bool,
    /// Survive a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Only exchanges may publish to it.
    pub internal: bool,
    /// Optional arguments (`alternate-exchange`, ...).
    pub arguments: FieldTable,
}

/// Options of `basic.consume`.
#[derive(Debug, Clone, Default)]
pub struct BasicConsumeOptions {
    /// The consumer tag; empty lets the broker choose one.
    pub consumer_tag: String,
    /// Do not deliver messages published on this connection.
    pub no_local: bool,
    /// Deliveries need no acknowledgement.
    pub no_ack: bool,
    /// Be the queue's only consumer.
    pub exclusive: bool,
    /// Optional arguments (`x-priority`, ...).
    pub arguments: FieldTable,
}

struct ChannelInner {
    id: u16,
    handle: Arc<Handle>,
    entry: Arc<ChannelEntry>,
    /// One synchronous method in flight per channel (spec 2.3.5.2 / 4.7).
    rpc: tokio::sync::Mutex<()>,
}

impl Drop for ChannelInner {
    fn drop(&mut self) {
        let mut st = lock(&self.entry.state);
        if matches!(st.status, Status::Open | Status::Opening) {
            st.status = Status::Closing;
            let close = Frame::Method(
                self.id,
                ChannelClose {
                    reply_code: REPLY_SUCCESS,
                    reply_text: "channel dropped".into(),
                    class_id: 0,
                    method_id: 0,
                }
                .into(),
            );
            let _ = self.handle.shared.send_frame(&close);
        }
    }
}

/// Cancels a dropped [`Consumer`] (`basic.cancel` with `nowait`) if its channel is still alive,
/// and gives back the deliveries it had not taken.
#[derive(Debug)]
pub(crate) struct CancelOnDrop {
    channel: std::sync::Weak<ChannelInner>,
    no_ack: bool,
}

impl CancelOnDrop {
    pub(crate) fn cancel(
        &self,
        consumer_tag: &str,
        rx: &mut mpsc::UnboundedReceiver<crate::message::ConsumerItem>,
    ) {
        let Some(inner) = self.channel.upgrade() else {
            return;
        };
        // Under the state lock the reader cannot deliver: close the queue (later deliveries
        // fail to send and are rejected by the channel state), then requeue what it holds.
        let st = lock(&inner.entry.state);
        rx.close();
        if st.check_open().is_err() || !st.has_consumer(consumer_tag) {
            return;
        }
        let shared = &inner.handle.shared;
        // nowait: no cancel-ok comes back, so no call waits for one.
        let cancel = BasicCancel {
            consumer_tag: consumer_tag.into(),
            nowait: true,
        };
        let _ = shared.send_frame(&Frame::Method(inner.id, cancel.into()));
        while let Ok(item) = rx.try_recv() {
            if let (Ok(d), false) = (item, self.no_ack) {
                let reject = BasicReject {
                    delivery_tag: d.delivery_tag,
                    requeue: true,
                };
                let _ = shared.send_frame(&Frame::Method(inner.id, reject.into()));
            }
        }
    }
}

/// A channel: cheap to clone; closed (best effort) when the last clone is dropped.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<ChannelInner>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.inner.id)
            .finish()
    }
}

type Expect = &'static [(u16, u16)];

macro_rules! expect {
    ($($t:ident),*) => { &[$((codec::$t::CLASS_ID, codec::$t::METHOD_ID)),*] };
}

fn unexpected_reply(r: Reply) -> Error {
    Error::Protocol(format!("unexpected reply {r:?}"))
}

impl Channel {
    pub(crate) async fn open(handle: Arc<Handle>) -> Result<Channel> {
        let (id, entry) = handle.shared.allocate_channel()?;
        let channel = Channel {
            inner: Arc::new(ChannelInner {
                id,
                handle,
                entry,
                rpc: tokio::sync::Mutex::new(()),
            }),
        };
        channel
            .call(
                ChannelOpen::default().into(),
                expect!(ChannelOpenOk),
                None,
                |_| {},
            )
            .await?;
        Ok(channel)
    }

    fn shared(&self) -> &Shared {
        &self.inner.handle.shared
    }

    /// The channel number.
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// `Ok` while the channel is usable; otherwise why it closed.
    pub fn status(&self) -> Result<()> {
        lock(&self.inner.entry.state).check_open()
    }

    /// Send a synchronous method and wait for its reply. `before_send` runs under the state lock
    /// just before the frame is queued.
    async fn call(
        &self,
        method: Method,
        expect: Expect,
        consumer: Option<ConsumerSlot>,
        before_send: impl FnOnce(&mut ChannelState),
    ) -> Result<Reply> {
        let _one_at_a_time = self.inner.rpc.lock().await;
        let rx = {
            let mut st = lock(&self.inner.entry.state);
            st.check_open()?;
            let (tx, rx) = oneshot::channel();
            before_send(&mut st);
            self.shared()
                .send_frame(&Frame::Method(self.inner.id, method))?;
            st.pending.push_back(Pending {
                expect,
                reply: tx,
                consumer,
            });
            rx
        };
        rx.await.unwrap_or_else(|_| Err(self.shared().dead_error()))
    }

    async fn call_method(&self, method: Method, expect: Expect) -> Result<Method> {
        match self.call(method, expect, None, |_| {}).await? {
            Reply::Method(m) => Ok(m),
            other => Err(unexpected_reply(other)),
        }
    }

    /// Queue a method that has no reply, if the channel is open.
    fn send_async(&self, method: Method) -> Result<()> {
        let st = lock(&self.inner.entry.state);
        st.check_open()?;
        self.shared()
            .send_frame(&Frame::Method(self.inner.id, method))
    }

    /// `queue.declare`. An empty `queue` asks the broker for a server-named queue.
    pub async fn queue_declare(
        &self,
        queue: &str,
        options: QueueDeclareOptions,
    ) -> Result<QueueDeclareOk> {
        let m = QueueDeclare {
            queue: queue.into(),
            passive: options.passive,
            durable: options.durable,
            exclusive: options.exclusive,
            auto_delete: options.auto_delete,
            arguments: options.arguments,
            ..Default::default()
        };
        match self.call_method(m.into(), expect!(QueueDeclareOk)).await? {
            Method::QueueDeclareOk(ok) => Ok(QueueDeclareOk {
                queue: ok.queue.to_string_lossy().into_owned(),
                message_count: ok.message_count,
                consumer_count: ok.consumer_count,
            }),
            other => Err(unexpected_reply(Reply::Method(other))),
        }
    }

    /// `queue.bind`.
    pub async fn queue_bind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = QueueBind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            arguments,
            ..Default::default()
        };
        self.call_method(m.into(), expect!(QueueBindOk))
            .await
            .map(drop)
    }

    /// `queue.unbind`.
    pub async fn queue_unbind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = QueueUnbind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            arguments,
            ..Default::default()
        };
        self.call_method(m.into(), expect!(QueueUnbindOk))
            .await
            .map(drop)
    }

    /// `queue.purge`: returns how many messages were removed.
    pub async fn queue_purge(&self, queue: &str) -> Result<u32> {
        let m = QueuePurge {
            queue: queue.into(),
            ..Default::default()
        };
        match self.call_method(m.into(), expect!(QueuePurgeOk)).await? {
            Method::QueuePurgeOk(ok) => Ok(ok.message_count),
            other => Err(unexpected_reply(Reply::Method(other))),
        }
    }

    /// `queue.delete`: returns how many messages went with the queue.
    pub async fn queue_delete(&self, queue: &str, if_unused: bool, if_empty: bool) -> Result<u32> {
        let m = QueueDelete {
            queue: queue.into(),
            if_unused,
            if_empty,
            ..Default::default()
        };
        match self.call_method(m.into(), expect!(QueueDeleteOk)).await? {
            Method::QueueDeleteOk(ok) => Ok(ok.message_count),
            other => Err(unexpected_reply(Reply::Method(other))),
        }
    }

    /// `exchange.declare` of type `kind` (`direct`, `fanout`, `topic`, `headers`).
    pub async fn exchange_declare(
        &self,
        exchange: &str,
        kind: &str,
        options: ExchangeDeclareOptions,
    ) -> Result<()> {
        let m = ExchangeDeclare {
            exchange: exchange.into(),
            kind: kind.into(),
            passive: options.passive,
            durable: options.durable,
            auto_delete: options.auto_delete,
            internal: options.internal,
            arguments: options.arguments,
            ..Default::default()
        };
        self.call_method(m.into(), expect!(ExchangeDeclareOk))
            .await
            .map(drop)
    }

    /// `exchange.delete`.
    pub async fn exchange_delete(&self, exchange: &str, if_unused: bool) -> Result<()> {
        let m = ExchangeDelete {
            exchange: exchange.into(),
            if_unused,
            ..Default::default()
        };
        self.call_method(m.into(), expect!(ExchangeDeleteOk))
            .await
            .map(drop)
    }

    /// `exchange.bind`: route messages from `source` to `destination` (RabbitMQ extension).
    pub async fn exchange_bind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = ExchangeBind {
            destination: destination.into(),
            source: source.into(),
            routing_key: routing_key.into(),
            arguments,
            ..Default::default()
        };
        self.call_method(m.into(), expect!(ExchangeBindOk))
            .await
            .map(drop)
    }

    /// `exchange.unbind`.
    pub async fn exchange_unbind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = ExchangeUnbind {
            destination: destination.into(),
            source: source.into(),
            routing_key: routing_key.into(),
            arguments,
            ..Default::default()
        };
        self.call_method(m.into(), expect!(ExchangeUnbindOk))
            .await
            .map(drop)
    }

    /// `basic.qos`: at most `prefetch_count` unacknowledged deliveries (0 = no limit), per
    /// consumer, or with `global` (RabbitMQ) per channel.
    pub async fn basic_qos(&self, prefetch_count: u16, global: bool) -> Result<()> {
        let m = BasicQos {
            prefetch_size: 0,
            prefetch_count,
            global,
        };
        self.call_method(m.into(), expect!(BasicQosOk))
            .await
            .map(drop)
    }

    /// `basic.consume`: deliveries arrive on the returned [`Consumer`].
    pub async fn basic_consume(
        &self,
        queue: &str,
        options: BasicConsumeOptions,
    ) -> Result<Consumer> {
        let (tx, rx) = mpsc::unbounded_channel();
        let no_ack = options.no_ack;
        let tag = self
            .consume(queue, options, ConsumerSink::Queue(tx))
            .await?;
        Ok(Consumer {
            tag,
            rx,
            ended: None,
            cancel_on_drop: Some(CancelOnDrop {
                channel: Arc::downgrade(&self.inner),
                no_ack,
            }),
        })
    }

    /// `basic.consume` with no [`Consumer`] in between: the connection's reader task calls
    /// `on_delivery` with each delivery as soon as it is decoded, in order, and at the end once
    /// with the reason the consumer ended (cancelled, channel or connection closed). Returns the
    /// consumer tag.
    ///
    /// For a consumer whose work per message is a few non-blocking steps (the RPC client's
    /// reply path: look up the correlation id, complete the caller's oneshot): it saves a queue
    /// push and pop and a task wake-up per message. `on_delivery` runs on the reader task with the
    /// channel's state locked, so it must be quick and must not call into this connection
    /// (publish, ack, …): a [`Consumer`] is the right tool for anything else.
    pub(crate) async fn basic_consume_inline(
        &self,
        queue: &str,
        options: BasicConsumeOptions,
        on_delivery: impl FnMut(Result<Delivery>) + Send + 'static,
    ) -> Result<String> {
        self.consume(queue, options, ConsumerSink::Inline(Box::new(on_delivery)))
            .await
    }

    /// Sends `basic.consume`; the reader installs `sink` when consume-ok names the tag, before
    /// any delivery for it can be read. Returns the tag.
    async fn consume(
        &self,
        queue: &str,
        options: BasicConsumeOptions,
        sink: ConsumerSink,
    ) -> Result<String> {
        let slot = ConsumerSlot {
            sink,
            no_ack: options.no_ack,
        };
        let m = BasicConsume {
            queue: queue.into(),
            consumer_tag: options.consumer_tag.as_str().into(),
            no_local: options.no_local,
            no_ack: options.no_ack,
            exclusive: options.exclusive,
            arguments: options.arguments,
            ..Default::default()
        };
        match self
            .call(m.into(), expect!(BasicConsumeOk), Some(slot), |_| {})
            .await?
        {
            Reply::Method(Method::BasicConsumeOk(ok)) => {
                Ok(ok.consumer_tag.to_string_lossy().into_owned())
            }
            other => Err(unexpected_reply(other)),
        }
    }

    /// `basic.cancel`: the consumer ends with [`Error::ConsumerCancelled`] after any deliveries
    /// already on their way.
    pub async fn basic_cancel(&self, consumer_tag: &str) -> Result<()> {
        let m = BasicCancel {
            consumer_tag: consumer_tag.into(),
            nowait: false,
        };
        let r = self.call_method(m.into(), expect!(BasicCancelOk)).await;
        if r.is_err() {
            lock(&self.inner.entry.state).forget_consumer(consumer_tag);
        }
        r.map(drop)
    }

    fn publish(
        &self,
        exchange: &str,
        routing_key: impl AsRef<[u8]>,
        mandatory: bool,
        properties: &BasicProperties,
        body: &[u8],
        confirm: bool,
    ) -> Result<Option<Confirmation>> {
        let method: Method = BasicPublish {
            ticket: 0,
            exchange: exchange.into(),
            routing_key: routing_key.as_ref().into(),
            mandatory,
            immediate: false,
        }
        .into();
        let frame_max = self.shared().tuned.frame_max;
        // The state lock is held across the write so that sequence numbers follow wire order.
        let mut st = lock(&self.inner.entry.state);
        st.check_open()?;
        if confirm && st.confirms.is_none() {
            return Err(Error::NotInConfirmMode);
        }
        self.shared().write(|buf| {
            encode_message(buf, self.inner.id, &method, properties, body, frame_max)
                .map_err(Error::from)
        })?;
        Ok(st.confirms.as_mut().and_then(|c| {
            let (delivery_tag, rx) = c.publish(confirm);
            rx.map(|rx| Confirmation { delivery_tag, rx })
        }))
    }

    /// `basic.publish`: queue the message (method, header and body frames of at most
    /// `frame_max`, in one buffer) and return at once. With `mandatory`, an unroutable message
    /// comes back on [`returns`](Self::returns).
    pub fn basic_publish(
        &self,
        exchange: &str,
        routing_key: impl AsRef<[u8]>,
        mandatory: bool,
        properties: &BasicProperties,
        body: &[u8],
    ) -> Result<()> {
        self.publish(exchange, routing_key, mandatory, properties, body, false)
            .map(drop)
    }

    /// `basic.publish` on a channel in confirm mode ([`confirm_select`](Self::confirm_select)),
    /// returning the broker's confirm to await.
    pub fn basic_publish_confirmed(
        &self,
        exchange: &str,
        routing_key: impl AsRef<[u8]>,
        mandatory: bool,
        properties: &BasicProperties,
        body: &[u8],
    ) -> Result<Confirmation> {
        self.publish(exchange, routing_key, mandatory, properties, body, true)?
            .ok_or(Error::NotInConfirmMode)
    }

    /// The messages the broker returns as unroutable (`mandatory`). Call it before publishing;
    /// a later call replaces the earlier receiver.
    pub fn returns(&self) -> Returns {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.entry.state).returns = Some(tx);
        Returns { rx }
    }

    /// `basic.ack` of one delivery, or with `multiple` of all up to `delivery_tag`.
    pub fn basic_ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        self.send_async(
            BasicAck {
                delivery_tag,
                multiple,
            }
            .into(),
        )
    }

    /// `basic.nack` (RabbitMQ extension): reject one or many deliveries.
    pub fn basic_nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.send_async(
            BasicNack {
                delivery_tag,
                multiple,
                requeue,
            }
            .into(),
        )
    }

    /// `basic.reject` of one delivery.
    pub fn basic_reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        self.send_async(
            BasicReject {
                delivery_tag,
                requeue,
            }
            .into(),
        )
    }

    /// `basic.get`: one message from `queue`, or `None` when it is empty.
    pub async fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<GetMessage>> {
        let m = BasicGet {
            ticket: 0,
            queue: queue.into(),
            no_ack,
        };
        match self
            .call(m.into(), expect!(BasicGetOk, BasicGetEmpty), None, |_| {})
            .await?
        {
            Reply::Get(g) => Ok(g.map(|g| *g)),
            other => Err(unexpected_reply(other)),
        }
    }

    /// `confirm.select`: from now on every publish is confirmed by the broker; use
    /// [`basic_publish_confirmed`](Self::basic_publish_confirmed) to await a confirm.
    pub async fn confirm_select(&self) -> Result<()> {
        // Sequence numbers count publishes sent after confirm.select, so the tracker starts
        // under the same lock that queues the method.
        self.call(
            ConfirmSelect { nowait: false }.into(),
            expect!(ConfirmSelectOk),
            None,
            ChannelState::enable_confirms,
        )
        .await
        .map(drop)
    }

    /// `channel.close` (200) and wait for close-ok; the number is then free for reuse. Closing
    /// a channel that is already closed is a no-op.
    pub async fn close(&self) -> Result<()> {
        let close = ChannelClose {
            reply_code: REPLY_SUCCESS,
            reply_text: "closed by client".into(),
            class_id: 0,
            method_id: 0,
        };
        let r = self
            .call(close.into(), expect!(ChannelCloseOk), None, |st| {
                st.status = Status::Closing;
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(Error::ChannelClosed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
