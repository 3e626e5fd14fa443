//! A caller that survives the broker: it reconnects when its connection is gone and, for calls
//! known to be idempotent (fib is), retries a bounded number of times.
//!
//! Tutorial six's client dies with its connection. This one keeps an [`RpcClient`] and replaces
//! it when the connection (or the client's channel) is lost: calls in flight at that moment fail
//! at once with [`RpcError::ConnectionLost`] (the reply consumer ended, so no reply can come),
//! never by waiting for their timeout; the next call connects again, to the first address of the
//! [`ConnectionConfig`] that answers (a cluster: all its nodes). A call marked idempotent that
//! fails that way, times out, or comes back unroutable (its queue not yet declared again after a
//! broker restart), is sent again — with a new correlation id, so a late answer to
//! the first attempt is dropped like any unknown reply — up to [`RetryPolicy::retries`] times,
//! with [`Backoff`] between attempts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Mutex;

use crate::client::setup_step;
use crate::{CallOptions, FibAnswer, Reply, RpcClient, RpcClientBuilder, RpcError};
use amqp_client::{Backoff, Connection, ConnectionConfig};

/// How often, and how patiently, idempotent calls are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Further attempts after the first (0: never retry).
    pub retries: u32,
    /// The wait between attempts.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    /// 3 retries, 50 ms doubling up to 2 s.
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            backoff: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_secs(2),
                jitter: 0.5,
            },
        }
    }
}

impl RpcError {
    /// True when the call failed because the connection (or the client's channel) went away,
    /// or could not be established: the request may or may not have reached a server.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            RpcError::ConnectionLost(_) => true,
            // Not losses: what another attempt would fail on again.
            RpcError::Connection(
                amqp_client::Error::AuthenticationFailed { .. }
                | amqp_client::Error::VhostNotAllowed { .. }
                | amqp_client::Error::InvalidUri(_)
                | amqp_client::Error::Tls(_)
                | amqp_client::Error::Encode(_),
            ) => false,
            // Connecting failed, or publishing on a dead connection or channel.
            RpcError::Connection(_) => true,
            _ => false,
        }
    }
}

/// What a [`ReconnectingRpcClient`] went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconnectStats {
    /// Connections opened after the first.
    pub reconnects: u64,
    /// Calls that needed more than one attempt.
    pub retried_calls: u64,
    /// Attempts after the first, over all calls.
    pub retries: u64,
    /// Attempts that failed because the connection was lost (or could not be made).
    pub connection_losses: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    reconnects: AtomicU64,
    retried_calls: AtomicU64,
    retries: AtomicU64,
    connection_losses: AtomicU64,
    timeouts: AtomicU64,
}

/// An RPC caller that reconnects on demand and retries idempotent calls; cheap to clone, safe
/// to share.
///
/// ```no_run
/// # async fn demo() -> Result<(), rpc_client::RpcError> {
/// use rpc_client::{ReconnectingRpcClient, RetryPolicy, RpcClient};
/// use rpc_client::ConnectionConfig;
/// let nodes = ConnectionConfig::parse_many(&[
///     "amqp://guest:guest@127.0.0.1:5681/%2f",
///     "amqp://guest:guest@127.0.0.1:5682/%2f",
/// ])?;
/// let client =
///     ReconnectingRpcClient::connect(nodes, RpcClient::builder(), RetryPolicy::default()).await?;
/// assert_eq!(client.fib(30).await?, 832040u64);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ReconnectingRpcClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ConnectionConfig,
    builder: RpcClientBuilder,
    /// The builder's default queue.
    queue: String,
    policy: RetryPolicy,
    /// The client in use and its generation (bumped on each reconnect), `None` once it is known
    /// to be broken. The lock is held while connecting: callers racing a reconnect wait for it
    /// rather than each opening a connection.
    current: Mutex<Option<(u64, RpcClient)>>,
    generation: AtomicU64,
    counters: Counters,
}

impl ReconnectingRpcClient {
    /// Connects now (so a wrong address or password fails here) to the first of `config`'s
    /// addresses that answers; `builder` gives the queue, the timeout and the reply mode (its
    /// URI is not used).
    pub async fn connect(
        config: ConnectionConfig,
        builder: RpcClientBuilder,
        policy: RetryPolicy,
    ) -> Result<Self, RpcError> {
        let first = open(&config, &builder).await?;
        Ok(ReconnectingRpcClient {
            inner: Arc::new(Inner {
                queue: first.queue().to_owned(),
                config,
                builder,
                policy,
                current: Mutex::new(Some((1, first))),
                generation: AtomicU64::new(1),
                counters: Counters::default(),
            }),
        })
    }

    /// The client to call with, connecting if there is none (or it is dead).
    async fn client(&self) -> Result<(u64, RpcClient), RpcError> {
        let inner = &*self.inner;
        let mut current = inner.current.lock().await;
        if let Some((generation, client)) = current.as_ref() {
            if client.connection().error().is_none() {
                return Ok((*generation, client.clone()));
            }
        }
        *current = None;
        let client = open(&inner.config, &inner.builder).await?;
        let generation = inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        inner.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(peer = %client.connection().peer(), generation, "RPC client reconnected");
        *current = Some((generation, client.clone()));
        Ok((generation, client))
    }

    /// Forgets the client of `generation` (if still current) so the next call reconnects. The
    /// old client closes when its last clone (held by calls still finishing) goes.
    async fn discard(&self, generation: u64) {
        let mut current = self.inner.current.lock().await;
        if matches!(current.as_ref(), Some((g, _)) if *g == generation) {
            *current = None;
        }
    }

    /// Calls the default queue with `body`, once: not retried, as the request may not be
    /// idempotent. A lost connection fails the call at once and the next call reconnects.
    pub async fn call(&self, body: impl Into<Bytes>) -> Result<Bytes, RpcError> {
        let queue = &self.inner.queue;
        self.call_raw_with(queue, body.into(), CallOptions::default(), false)
            .await
            .map(|r| r.body)
    }

    /// Calls the default queue with `body`, a request that may safely be answered twice:
    /// retried on a lost connection or a timeout, up to the policy's bound.
    pub async fn call_idempotent(&self, body: impl Into<Bytes>) -> Result<Bytes, RpcError> {
        let queue = &self.inner.queue;
        self.call_raw_with(queue, body.into(), CallOptions::default(), true)
            .await
            .map(|r| r.body)
    }

    /// `fib(n)` (idempotent: retried).
    pub async fn fib(&self, n: u64) -> Result<FibAnswer, RpcError> {
        let body = self.call_idempotent(n.to_string()).await?;
        FibAnswer::parse(&body)
    }

    /// Calls `queue`; with `idempotent`, failed attempts (connection lost, timeout) are retried.
    pub async fn call_raw_with(
        &self,
        queue: &str,
        body: Bytes,
        options: CallOptions,
        idempotent: bool,
    ) -> Result<Reply, RpcError> {
        let inner = &*self.inner;
        let mut attempt = 0u32;
        loop {
            let outcome = match self.client().await {
                Ok((generation, client)) => {
                    let outcome = client
                        .call_raw_with(queue, body.clone(), options.clone())
                        .await;
                    if matches!(&outcome, Err(e) if e.is_connection_lost()) {
                        self.discard(generation).await;
                    }
                    outcome
                }
                Err(e) => Err(e),
            };
            let error = match outcome {
                Ok(reply) => return Ok(reply),
                Err(e) => e,
            };
            let retryable = match &error {
                e if e.is_connection_lost() => {
                    inner
                        .counters
                        .connection_losses
                        .fetch_add(1, Ordering::Relaxed);
                    true
                }
                RpcError::Timeout { .. } => {
                    inner.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                    true
                }
                // After a broker restart a non-durable request queue exists again only once a
                // server has reconnected and declared it: until then requests come back.
                RpcError::NoRoute { .. } => true,
                _ => false,
            };
            if !(idempotent && retryable && attempt < inner.policy.retries) {
                return Err(error);
            }
            attempt += 1;
            if attempt == 1 {
                inner.counters.retried_calls.fetch_add(1, Ordering::Relaxed);
            }
            inner.counters.retries.fetch_add(1, Ordering::Relaxed);
            let delay = inner.policy.backoff.delay(attempt);
            tracing::debug!(attempt, ?delay, error = %error, "retrying idempotent call");
            tokio::time::sleep(delay).await;
        }
    }

    /// What happened so far.
    pub fn stats(&self) -> ReconnectStats {
        let c = &self.inner.counters;
        ReconnectStats {
            reconnects: c.reconnects.load(Ordering::Relaxed),
            retried_calls: c.retried_calls.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            connection_losses: c.connection_losses.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
        }
    }

    /// The client in use now, if connected.
    pub async fn current(&self) -> Option<RpcClient> {
        let current = self.inner.current.lock().await;
        current.as_ref().map(|(_, c)| c.clone())
    }

    /// Closes the connection in use; a later call would connect again.
    pub async fn close(&self) -> Result<(), RpcError> {
        let client = self.inner.current.lock().await.take();
        match client {
            Some((_, client)) => client.close().await,
            None => Ok(()),
        }
    }
}

/// A connection to the first of `config`'s addresses that answers, and a client on it.
/// Connects and sets the client up, all within the builder's timeout.
async fn open(
    config: &ConnectionConfig,
    builder: &RpcClientBuilder,
) -> Result<RpcClient, RpcError> {
    let limit = builder.call_timeout();
    let deadline = std::time::Instant::now() + limit;
    let connect = Connection::connect_with(config.clone());
    let connection = setup_step(deadline, limit, "the connection", connect).await?;
    builder
        .clone()
        .with_connection_by(connection, deadline)
        .await
}
