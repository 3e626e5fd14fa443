//! Class `exchange`: declare, delete, bind, unbind.

use amqp_codec::{ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeUnbind, FieldTable};

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

impl Channel {
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
        self.call_method(m.into()).await.map(drop)
    }

    /// `exchange.delete`.
    pub async fn exchange_delete(
        &self,
        exchange: &str,
        options: ExchangeDeleteOptions,
    ) -> Result<()> {
        let m = ExchangeDelete {
            exchange: exchange.into(),
            if_unused: options.if_unused,
            ..Default::default()
        };
        self.call_method(m.into()).await.map(drop)
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
        self.call_method(m.into()).await.map(drop)
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
        self.call_method(m.into()).await.map(drop)
    }
}
