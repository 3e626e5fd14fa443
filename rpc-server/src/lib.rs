//! `rpc-server`: the worker of RabbitMQ's tutorial six, as a small library.
//!
//! An [`RpcServer`] consumes a request queue and answers each request with any [`Handler`] — an
//! `async fn(Request) -> Result<Bytes, E>` — publishing the answer to the request's `reply_to`
//! with its `correlation_id`, and acking the request only after the answer was published. Bad
//! input never kills or stalls it: every request gets an answer or an error reply (an `x-error`
//! header plus a readable body, see [`rpc_wire`]) and an ack. [`FibService`] is
//! the tutorial's Fibonacci service on top: exact (big integers, fast doubling) and bounded.
//!
//! The tutorial's two programs in this API — the server:
//!
//! ```no_run
//! use rpc_server::{FibService, RpcServer};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), rpc_server::ServerError> {
//!     let server = RpcServer::builder()
//!         .uri("amqp://guest:guest@127.0.0.1:5672/%2f")
//!         .queue("rpc_queue")
//!         .prefetch(1)
//!         .start(FibService::new().print_requests(true))
//!         .await?;
//!     println!(" [x] Awaiting RPC requests");
//!     server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await
//! }
//! ```
//!
//! and the client (blocking, as the tutorial's; `rpc_client::FibonacciRpcClient` is the async
//! one):
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
//! Any other service is a closure:
//!
//! ```no_run
//! # async fn demo() -> Result<(), rpc_server::ServerError> {
//! use rpc_server::{Request, ReplyError, RpcServer};
//! let server = RpcServer::builder()
//!     .queue("upper")
//!     .start(|req: Request| async move {
//!         let text = std::str::from_utf8(&req.body)?; // not UTF-8: a `handler-error` reply
//!         Ok::<_, ReplyError>(text.to_uppercase())
//!     })
//!     .await?;
//! server.run_until(std::future::pending()).await
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod direct_reply;
pub mod fib;
mod fib_service;
mod handler;
pub mod metrics;

mod server;
mod supervise;

pub use fib_service::FibService;
pub use handler::{
    json_handler, parse_json, Handler, HandlerFuture, ReplyError, Request, Response,
};
pub use server::{
    RpcServer, RpcServerBuilder, ServerError, Stats, DEFAULT_GRACE, DEFAULT_MAX_BODY,
    DEFAULT_PREFETCH,
};
/// The token [`RpcServer::shutdown_token`] and [`RpcServerBuilder::serve_reconnecting`] use.
pub use tokio_util::sync::CancellationToken;
