//! Class `exchange`: declare, delete, bind, unbind.

use amqp_codec::{
    ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeUnbind, FieldTable, Method,
};

use super::Channel;
use crate::error::Result;

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

/// Options of `exchange.delete`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeDeleteOptions {
    /// Only if the exchange has no bindings.
    pub if_unused: bool,
}

/// `exchange.declare` of type `kind` as `options` ask (both shells build it here).
pub(crate) fn declare_method(
    exchange: &str,
    kind: &str,
    options: ExchangeDeclareOptions,
) -> Method {
    ExchangeDeclare {
        exchange: exchange.into(),
        kind: kind.into(),
        passive: options.passive,
        durable: options.durable,
        auto_delete: options.auto_delete,
        internal: options.internal,
        arguments: options.arguments,
        ..Default::default()
    }
    .into()
}

/// `exchange.delete` as `options` ask.
pub(crate) fn delete_method(exchange: &str, options: ExchangeDeleteOptions) -> Method {
    ExchangeDelete {
        exchange: exchange.into(),
        if_unused: options.if_unused,
        ..Default::default()
    }
    .into()
}

/// `exchange.bind` (or with `unbind`, `exchange.unbind`) of `destination` to `source`.
pub(crate) fn bind_method(
    unbind: bool,
    destination: &str,
    source: &str,
    routing_key: &str,
    arguments: FieldTable,
) -> Method {
    if unbind {
        ExchangeUnbind {
            destination: destination.into(),
            source: source.into(),
            routing_key: routing_key.into(),
            arguments,
            ..Default::default()
        }
        .into()
    } else {
        ExchangeBind {
            destination: destination.into(),
            source: source.into(),
            routing_key: routing_key.into(),
            arguments,
            ..Default::default()
        }
        .into()
    }
}

impl Channel {
    /// `exchange.declare` of type `kind` (`direct`, `fanout`, `topic`, `headers`).
    pub async fn exchange_declare(
        &self,
        exchange: &str,
        kind: &str,
        options: ExchangeDeclareOptions,
    ) -> Result<()> {
        let m = declare_method(exchange, kind, options);
        self.call_method(m).await.map(drop)
    }

    /// `exchange.delete`.
    pub async fn exchange_delete(
        &self,
        exchange: &str,
        options: ExchangeDeleteOptions,
    ) -> Result<()> {
        self.call_method(delete_method(exchange, options))
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
        let m = bind_method(false, destination, source, routing_key, arguments);
        self.call_method(m).await.map(drop)
    }

    /// `exchange.unbind`.
    pub async fn exchange_unbind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let m = bind_method(true, destination, source, routing_key, arguments);
        self.call_method(m).await.map(drop)
    }
}
