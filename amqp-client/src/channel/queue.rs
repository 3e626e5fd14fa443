//! Class `queue`: declare, bind, unbind, purge, delete.

use amqp_codec::{
    FieldTable, Method, QueueBind, QueueDeclare, QueueDelete, QueuePurge, QueueUnbind,
};

use super::{unexpected_reply, Channel};
use crate::error::Result;
use amqp_connection::Reply;

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
    /// Optional arguments (`x-message-ttl`, `x-max-length`, `x-queue-type`, ...).
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

/// Options of `queue.delete`.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueDeleteOptions {
    /// Only if the queue has no consumers (406 PRECONDITION_FAILED otherwise).
    pub if_unused: bool,
    /// Only if the queue holds no messages.
    pub if_empty: bool,
}

/// `queue.declare` of `queue` as `options` ask (both shells build it here).
pub(crate) fn declare_method(queue: &str, options: QueueDeclareOptions) -> Method {
    QueueDeclare {
        queue: queue.into(),
        passive: options.passive,
        durable: options.durable,
        exclusive: options.exclusive,
        auto_delete: options.auto_delete,
        arguments: options.arguments,
        ..Default::default()
    }
    .into()
}

/// What `queue.declare-ok` says, from the reply.
pub(crate) fn declare_ok(reply: Method) -> Result<QueueDeclareOk> {
    match reply {
        Method::QueueDeclareOk(ok) => Ok(QueueDeclareOk {
            queue: ok.queue.to_string_lossy().into_owned(),
            message_count: ok.message_count,
            consumer_count: ok.consumer_count,
        }),
        other => Err(unexpected_reply(Reply::Method(other))),
    }
}

/// `queue.bind` (or with `unbind`, `queue.unbind`) of `queue` to `exchange` with `routing_key`.
pub(crate) fn bind_method(
    unbind: bool,
    queue: &str,
    exchange: &str,
    routing_key: &str,
    arguments: FieldTable,
) -> Method {
    if unbind {
        QueueUnbind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            arguments,
            ..Default::default()
        }
        .into()
    } else {
        QueueBind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            arguments,
            ..Default::default()
        }
        .into()
    }
}

/// `queue.purge` of `queue`.
pub(crate) fn purge_method(queue: &str) -> Method {
    QueuePurge {
        queue: queue.into(),
        ..Default::default()
    }
    .into()
}

/// `queue.delete` of `queue` as `options` ask.
pub(crate) fn delete_method(queue: &str, options: QueueDeleteOptions) -> Method {
    QueueDelete {
        queue: queue.into(),
        if_unused: options.if_unused,
        if_empty: options.if_empty,
        ..Default::default()
    }
    .into()
}

/// The message count of `queue.purge-ok` or `queue.delete-ok`.
pub(crate) fn message_count(reply: Method) -> Result<u32> {
    match reply {
        Method::QueuePurgeOk(ok) => Ok(ok.message_count),
        Method::QueueDeleteOk(ok) => Ok(ok.message_count),
        other => Err(unexpected_reply(Reply::Method(other))),
    }
}

impl Channel {
    /// `queue.declare`. An empty `queue` asks the broker for a server-named queue.
    pub async fn queue_declare(
        &self,
        queue: &str,
        options: QueueDeclareOptions,
    ) -> Result<QueueDeclareOk> {
        declare_ok(self.call_method(declare_method(queue, options)).await?)
    }

    /// `queue.bind`: route messages of `exchange` with `routing_key` to `queue`.
    pub async fn queue_bind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = bind_method(false, queue, exchange, routing_key, arguments);
        self.call_method(m).await.map(drop)
    }

    /// `queue.unbind`.
    pub async fn queue_unbind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = bind_method(true, queue, exchange, routing_key, arguments);
        self.call_method(m).await.map(drop)
    }

    /// `queue.purge`: returns how many messages were removed.
    pub async fn queue_purge(&self, queue: &str) -> Result<u32> {
        message_count(self.call_method(purge_method(queue)).await?)
    }

    /// `queue.delete`: returns how many messages went with the queue.
    pub async fn queue_delete(&self, queue: &str, options: QueueDeleteOptions) -> Result<u32> {
        message_count(self.call_method(delete_method(queue, options)).await?)
    }
}
