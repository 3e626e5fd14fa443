//! `amqp-client`: an AMQP 0-9-1 client over a plain TCP stream (or rustls), on the sans-IO
//! [`amqp_connection`] core and the hand-written [`amqp_codec`].
//!
//! The tokio shell ([`Connection`], [`Channel`]) is a thin driver: a reader task hands each read
//! to the core and routes the events it gives (replies to the waiting call, deliveries to the
//! consumer, confirms to their waiters) with no task hop per frame; a writer task writes the
//! core's send buffer in one syscall per batch and arms the one timer the core asks for.
//!
//! The blocking shell ([`blocking`]) runs the same core with no runtime: the calling thread
//! writes and reads, and a keeper thread keeps an idle connection's heartbeats going. Both shells
//! build methods from the same options structs ([`channel`]) and TLS from the same
//! configuration ([`tls`]).
//!
//! ```no_run
//! use amqp_client::{BasicConsumeOptions, BasicProperties, BasicPublishOptions, Connection, QueueDeclareOptions};
//!
//! # async fn demo() -> Result<(), amqp_client::Error> {
//! let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10").await?;
//! let channel = conn.open_channel().await?;
//! let queue = channel
//!     .queue_declare("", QueueDeclareOptions { exclusive: true, ..Default::default() })
//!     .await?;
//! let mut consumer = channel
//!     .basic_consume(&queue.queue, BasicConsumeOptions { no_ack: true, ..Default::default() })
//!     .await?;
//! let props = BasicProperties::default().with_correlation_id("42");
//! channel.basic_publish("", &queue.queue, BasicPublishOptions::default(), &props, b"30").await?;
//! let delivery = consumer.recv().await?;
//! assert_eq!(&delivery.body[..], b"30");
//! conn.close().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod blocking;
pub mod channel;
pub mod connection;
pub mod message;
pub mod record;
pub mod tls;

/// Errors of the connection layer (the core's).
pub mod error {
    pub use amqp_connection::error::*;
}

/// AMQP URIs and connection settings (the core's).
pub mod uri {
    pub use amqp_connection::uri::*;
}

pub use amqp_codec::{BasicProperties, FieldTable, FieldValue, ShortString};
pub use backoff::Backoff;
pub use channel::basic::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions,
};
pub use channel::exchange::{ExchangeDeclareOptions, ExchangeDeleteOptions};
pub use channel::queue::{QueueDeclareOk, QueueDeclareOptions, QueueDeleteOptions};
pub use channel::Channel;
pub use connection::shared::{SEND_HIGH_WATER, SEND_LOW_WATER};
pub use connection::Connection;
pub use error::{Error, Result};
pub use message::{
    Confirm, Confirmation, Consumer, ConsumerItem, Delivery, GetMessage, Returned, Returns,
};
pub use uri::{Address, AuthMechanism, ConnectionConfig, Password, TlsOptions, DEFAULT_URI};
