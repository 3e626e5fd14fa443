//! Blocking twins of the async clients, for programs without a runtime — the tutorial's shape:
//! `FibonacciRpcClient::new()?` then `call(n)?`, which blocks until the answer arrives.
//!
//! Each client owns a small multi-thread tokio runtime (one worker thread) that drives the
//! connection in the background, so heartbeats and replies are handled while the caller's thread
//! is blocked or idle. Do not use these from inside an async context (tokio panics on a nested
//! `block_on`); use the async clients there.

use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Runtime;

use crate::{FibAnswer, RpcClientBuilder, RpcError};

fn runtime() -> Result<Runtime, RpcError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("amqp-rpc-client")
        .enable_all()
        .build()
        .map_err(|e| RpcError::Connection(amqp_client::Error::from(e)))
}

/// A blocking [`crate::RpcClient`].
#[derive(Debug)]
pub struct RpcClient {
    client: crate::RpcClient,
    runtime: Runtime,
}

impl RpcClient {
    /// Connects with `builder`'s settings.
    pub fn connect(builder: RpcClientBuilder) -> Result<Self, RpcError> {
        let runtime = runtime()?;
        let client = runtime.block_on(builder.connect())?;
        Ok(RpcClient { client, runtime })
    }

    /// Calls `queue` with `body`; blocks until the reply (or an error) arrives.
    pub fn call_raw(&self, queue: &str, body: impl Into<Bytes>) -> Result<Bytes, RpcError> {
        self.runtime.block_on(self.client.call_raw(queue, body))
    }

    /// The async client inside.
    pub fn as_async(&self) -> &crate::RpcClient {
        &self.client
    }
}

impl Drop for RpcClient {
    fn drop(&mut self) {
        // Close politely (bounded), so the broker sees connection.close rather than a reset.
        let client = self.client.clone();
        let _ = self.runtime.block_on(async move {
            tokio::time::timeout(Duration::from_secs(2), client.close()).await
        });
    }
}

/// The tutorial's client, blocking.
///
/// ```no_run
/// use rpc_client::blocking::FibonacciRpcClient;
///
/// let fibonacci_rpc = FibonacciRpcClient::new()?;
/// println!(" [x] Requesting fib(30)");
/// let response = fibonacci_rpc.call(30)?;
/// println!(" [.] Got {response}");
/// # Ok::<(), rpc_client::RpcError>(())
/// ```
#[derive(Debug)]
pub struct FibonacciRpcClient {
    inner: RpcClient,
    fib: crate::FibonacciRpcClient,
}

impl FibonacciRpcClient {
    /// Connects to the local broker (guest/guest at 127.0.0.1:5672), as the tutorial does.
    pub fn new() -> Result<Self, RpcError> {
        Self::with_builder(crate::RpcClient::builder())
    }

    /// Connects to `uri`.
    pub fn connect(uri: &str) -> Result<Self, RpcError> {
        Self::with_builder(crate::RpcClient::builder().uri(uri))
    }

    /// Connects with `builder`'s settings (queue, timeout, direct reply-to).
    pub fn with_builder(builder: RpcClientBuilder) -> Result<Self, RpcError> {
        let inner = RpcClient::connect(builder)?;
        let fib = crate::FibonacciRpcClient::from(inner.client.clone());
        Ok(FibonacciRpcClient { inner, fib })
    }

    /// `fib(n)`: sends the request and blocks until the answer is received.
    pub fn call(&self, n: u64) -> Result<FibAnswer, RpcError> {
        self.inner.runtime.block_on(self.fib.call(n))
    }

    /// `fib(n)` with a timeout for this call.
    pub fn call_timeout(&self, n: u64, timeout: Duration) -> Result<FibAnswer, RpcError> {
        self.inner
            .runtime
            .block_on(self.fib.call_timeout(n, timeout))
    }

    /// The async client inside.
    pub fn as_async(&self) -> &crate::FibonacciRpcClient {
        &self.fib
    }
}
