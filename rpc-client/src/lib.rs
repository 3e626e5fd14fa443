//! `rpc-client`: the tokio connection layer of amqp-rpc — AMQP 0-9-1 over a plain
//! `tokio::net::TcpStream` (or rustls), on top of the hand-written [`amqp_codec`].
//!
//! One [`Connection`] multiplexes many [`Channel`]s. A reader task decodes frames from a reused
//! buffer and dispatches them straight to the waiting call, consumer or confirm; a writer task
//! batches everything queued since its last write into one `write_all`. The URI parser
//! ([`uri`]), the handshake ([`connection::handshake`]) and the per-channel rules are sans-IO.
//!
//! ```no_run
//! use rpc_client::{BasicConsumeOptions, BasicProperties, Connection, QueueDeclareOptions};
//!
//! # async fn demo() -> Result<(), rpc_client::Error> {
//! let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10").await?;
//! let channel = conn.open_channel().await?;
//! let queue = channel
//!     .queue_declare("", QueueDeclareOptions { exclusive: true, ..Default::default() })
//!     .await?;
//! let mut consumer = channel
//!     .basic_consume(&queue.queue, BasicConsumeOptions { no_ack: true, ..Default::default() })
//!     .await?;
//! let props = BasicProperties::default().with_correlation_id("42");
//! channel.basic_publish("", &queue.queue, false, &props, b"30")?;
//! let delivery = consumer.recv().await?;
//! assert_eq!(&delivery.body[..], b"30");
//! conn.close().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod channel;
pub mod connection;
pub mod error;
pub mod message;
pub mod rpc;
pub mod uri;

pub use amqp_codec::{BasicProperties, FieldTable, FieldValue, ShortString};
pub use channel::{
    BasicConsumeOptions, Channel, ExchangeDeclareOptions, QueueDeclareOk, QueueDeclareOptions,
};
pub use connection::Connection;
pub use error::{Error, Result};
pub use message::{Confirm, Confirmation, Consumer, Delivery, GetMessage, Returned, Returns};
pub use uri::{Address, AuthMechanism, ConnectionConfig, Password, TlsOptions};
