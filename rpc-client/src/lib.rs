//! `rpc-client`: RPC over AMQP, as RabbitMQ's tutorial six does it — a caller that many requests
//! can share, on [`amqp_client`]'s connection and [`rpc_wire`]'s conventions.
//!
//! The caller ([`RpcClient`]) publishes each request to the default exchange with routing key =
//! the server's queue (`rpc_queue`), `mandatory`, with `reply_to` = its callback queue (one
//! exclusive, server-named queue per client, consumed with auto-ack; or RabbitMQ's direct
//! reply-to) and a fresh uuid v4 `correlation_id`. Replies are matched to calls by correlation id;
//! any number of calls may be in flight at once. [`FibonacciRpcClient`] is the tutorial's client
//! on top of it, async, and [`blocking::FibonacciRpcClient`] its blocking twin.
//!
//! The four questions tutorial six leaves open, answered:
//!
//! * *How should the client react if there are no servers running?* A request to a queue that
//!   does not exist comes back from the broker (`mandatory`): [`RpcError::NoRoute`], at once. A
//!   queue nobody consumes: [`RpcError::Timeout`], which says how many consumers the queue has.
//! * *Should a client have some kind of timeout for the RPC?* Yes: every call has one
//!   ([`RpcClientBuilder::timeout`], [`CallOptions::timeout`]); a reply after it is dropped like an
//!   unknown one ([`RpcClient::dropped_replies`]).
//! * *If the server malfunctions and raises an exception, should it be forwarded to the client?*
//!   Yes: as an error reply ([`rpc_wire`]), which the client returns as [`RpcError::Server`] with
//!   the server's code and message.
//! * *Protecting against invalid incoming messages before processing?* That is the server's side
//!   (`rpc-server`): bounded, validated input, an error reply and an ack for anything invalid.
//!
//! And when the broker fails: calls in flight when the connection drops fail at once with
//! [`RpcError::ConnectionLost`], never by waiting for their timeout. [`ReconnectingRpcClient`]
//! connects again on the next call (to any node of a cluster) and retries idempotent calls, such
//! as fib, a bounded number of times ([`RetryPolicy`]); the server's side is
//! `RpcServerBuilder::serve_reconnecting` in `rpc-server`.
//!
//! The tutorial's client in this API, blocking as the tutorial's is (the server is in the
//! `rpc-server` crate):
//!
//! ```no_run
//! use rpc_client::blocking::FibonacciRpcClient;
//!
//! fn main() -> Result<(), rpc_client::RpcError> {
//!     let fibonacci_rpc = FibonacciRpcClient::new()?;
//!     println!(" [x] Requesting fib(30)");
//!     let response = fibonacci_rpc.call(30)?;
//!     println!(" [.] Got {response}");
//!     Ok(())
//! }
//! ```
//!
//! The same, async, with many calls in flight over one callback queue, and any queue with any
//! body:
//!
//! ```no_run
//! # async fn demo() -> Result<(), rpc_client::RpcError> {
//! use rpc_client::{FibonacciRpcClient, RpcClient};
//! let rpc = RpcClient::builder()
//!     .uri("amqp://guest:guest@127.0.0.1:5672/%2f")
//!     .timeout(std::time::Duration::from_secs(5))
//!     .connect()
//!     .await?;
//! let fib = FibonacciRpcClient::from(rpc.clone());
//! let (a, b) = tokio::join!(fib.call(30), fib.call(90));
//! assert_eq!(a?, 832_040u64);
//! assert_eq!(b?.to_u64(), Some(2_880_067_194_370_816_120));
//! let answer = rpc.call_raw("rpc_queue", "30").await?;
//! assert_eq!(answer, "832040");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blocking;
mod client;
mod error;
mod fibonacci;
mod json;
pub mod metrics;
mod pending;
mod reconnect;

use bytes::Bytes;

use amqp_codec::BasicProperties;

/// The connection layer underneath, for settings ([`ConnectionConfig`]) and raw channels.
pub use amqp_client;
pub use amqp_client::{Backoff, ConnectionConfig};
pub use client::{
    CallOptions, ReplyMode, RpcClient, RpcClientBuilder, DEFAULT_TIMEOUT, DEFAULT_URI,
};
pub use error::RpcError;
pub use fibonacci::{FibAnswer, FibonacciRpcClient};
pub use pending::CorrelationIds;
pub use reconnect::{ReconnectStats, ReconnectingRpcClient, RetryPolicy};
pub use rpc_wire::{
    error_code, error_reply_properties, ErrorCode, DIRECT_REPLY_TO, ERROR_HEADER, RPC_QUEUE,
};

/// A reply as it arrived: body and properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The reply body.
    pub body: Bytes,
    /// The reply's properties (`correlation_id`, headers, …).
    pub properties: BasicProperties,
}
