//! Channels: the operations of the spec's classes on one multiplexed channel, one file per class
//! ([`queue`], [`exchange`], [`basic`], [`confirm`], [`tx`]), each with its options structs.
//!
//! Synchronous methods (declare, bind, consume, ...) go one at a time per channel, as the spec
//! asks of a client, and wait for their reply. Publishing, acks and rejects are fire-and-forget:
//! they go into the connection's send buffer and return without awaiting.

pub mod basic;
pub mod confirm;
pub mod exchange;
pub mod queue;
pub mod tx;

use std::sync::{Arc, OnceLock};

use tokio::sync::oneshot;

use amqp_codec::{ChannelClose, Method};
use amqp_connection::{ChannelId, Reply, Sent};

use crate::connection::shared::{ConsumerSlot, Routes, Shared, Waiter};
use crate::connection::Handle;
use crate::error::{Error, Result, REPLY_SUCCESS};

pub(crate) struct ChannelInner {
    pub(crate) id: ChannelId,
    pub(crate) handle: Arc<Handle>,
    /// Set when the channel closed (from its routes), for `status` without the core.
    pub(crate) closed: Arc<OnceLock<Error>>,
    /// One synchronous method in flight per channel (spec 2.3.5.2 / 4.7).
    rpc: tokio::sync::Mutex<()>,
}

impl Drop for ChannelInner {
    fn drop(&mut self) {
        // Best effort: the close's reply goes to nobody; the number is free at close-ok.
        let id = self.id;
        let mut inner = self.handle.shared.lock();
        if inner.core.channel_status(id).is_ok() {
            if let Ok(Sent::AwaitsReply) =
                inner.core.send_method(id, close_method("channel dropped"))
            {
                if let Some(routes) = inner.channels.get_mut(&id.number()) {
                    routes.waiters.push_back(Waiter {
                        reply: None,
                        consumer: None,
                    });
                }
            }
        }
        self.handle.shared.settle(&mut inner);
    }
}

/// A channel: cheap to clone; closed (best effort) when the last clone is dropped.
#[derive(Clone)]
pub struct Channel {
    pub(crate) inner: Arc<ChannelInner>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.inner.id.number())
            .finish()
    }
}

/// `channel.close` with 200 and `text`: how both shells close a channel of their own accord.
pub(crate) fn close_method(text: &str) -> Method {
    ChannelClose {
        reply_code: REPLY_SUCCESS,
        reply_text: text.into(),
        class_id: 0,
        method_id: 0,
    }
    .into()
}

pub(crate) fn unexpected_reply(r: Reply) -> Error {
    Error::Protocol(format!("unexpected reply {r:?}"))
}

impl Channel {
    pub(crate) async fn open(handle: Arc<Handle>) -> Result<Channel> {
        let closed = Arc::new(OnceLock::new());
        let (id, rx) = {
            let shared = &handle.shared;
            let mut inner = shared.lock();
            let id = inner.core.open_channel()?;
            let mut routes = Routes::new(id, closed.clone());
            let (tx, rx) = oneshot::channel();
            routes.waiters.push_back(Waiter {
                reply: Some(tx),
                consumer: None,
            });
            inner.channels.insert(id.number(), routes);
            shared.settle(&mut inner);
            (id, rx)
        };
        let channel = Channel {
            inner: Arc::new(ChannelInner {
                id,
                handle,
                closed,
                rpc: tokio::sync::Mutex::new(()),
            }),
        };
        channel.wait(rx).await?;
        Ok(channel)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.handle.shared
    }

    /// The channel number.
    pub fn id(&self) -> u16 {
        self.inner.id.number()
    }

    /// `Ok` while the channel is usable; otherwise why it closed.
    pub fn status(&self) -> Result<()> {
        if let Some(e) = self.inner.closed.get() {
            return Err(e.clone());
        }
        self.shared().lock().core.channel_status(self.inner.id)
    }

    /// The reason the channel closed, if it has: later calls get it without touching the wire.
    pub(crate) fn check_closed(&self) -> Result<()> {
        match self.inner.closed.get() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    async fn wait(&self, rx: oneshot::Receiver<Result<Reply>>) -> Result<Reply> {
        rx.await.unwrap_or_else(|_| Err(self.shared().dead_error()))
    }

    /// Sends a synchronous method and waits for its reply; `consumer` is installed when a
    /// `basic.consume` is answered.
    pub(crate) async fn call(
        &self,
        method: Method,
        consumer: Option<ConsumerSlot>,
    ) -> Result<Reply> {
        let _one_at_a_time = self.inner.rpc.lock().await;
        self.check_closed()?;
        let rx = {
            let shared = self.shared();
            let mut inner = shared.lock();
            let sent = inner.core.send_method(self.inner.id, method)?;
            let rx = match sent {
                Sent::AwaitsReply => {
                    let (tx, rx) = oneshot::channel();
                    if let Some(routes) = inner.channels.get_mut(&self.inner.id.number()) {
                        routes.waiters.push_back(Waiter {
                            reply: Some(tx),
                            consumer,
                        });
                    }
                    Some(rx)
                }
                Sent::NoReply => None,
            };
            shared.settle(&mut inner);
            rx
        };
        match rx {
            Some(rx) => self.wait(rx).await,
            None => Err(Error::Protocol(
                "the method has no reply to wait for".into(),
            )),
        }
    }

    pub(crate) async fn call_method(&self, method: Method) -> Result<Method> {
        match self.call(method, None).await? {
            Reply::Method(m) => Ok(m),
            other => Err(unexpected_reply(other)),
        }
    }

    /// Queues a method that has no reply (an ack, a reject, a `nowait` method), if the channel
    /// is open.
    pub(crate) fn send_async(&self, method: Method) -> Result<()> {
        self.check_closed()?;
        self.shared()
            .with_core(|core| core.send_method(self.inner.id, method))
            .map(drop)
    }

    /// `channel.close` (200) and wait for close-ok; the number is then free for reuse. Closing
    /// a channel that is already closed is a no-op.
    pub async fn close(&self) -> Result<()> {
        match self.call(close_method("closed by client"), None).await {
            Ok(_) => Ok(()),
            Err(Error::ChannelClosed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
