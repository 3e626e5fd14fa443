//! A worker that survives the broker: when its connection is lost (a broker restart, a killed
//! broker, a heartbeat timeout, a node of the cluster stopped) it connects again with capped
//! exponential backoff and jitter, declares its queue, sets its prefetch, consumes again and
//! serves — no manual action. Each attempt is logged once.
//!
//! Requests it held unacked when the connection went are not lost: the broker requeues them when
//! it sees the connection close (or, when it is the broker that died, they were never taken off a
//! queue that survives) and delivers them again, to this worker or another.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use amqp_client::Backoff;
use amqp_client::Error;

use crate::handler::{Handler, Request};
use crate::server::{RpcServerBuilder, ServerError};

/// Why a failed start is worth another attempt: transient unless retrying cannot help.
fn retryable(error: &ServerError, ever_connected: bool) -> bool {
    let ServerError::Connection(e) = error else {
        return true;
    };
    match e {
        // A wrong URI or TLS setup, or a queue declared differently (406) or forbidden (403):
        // the same on every attempt.
        Error::InvalidUri(_) | Error::Tls(_) | Error::ChannelClosed { .. } => false,
        // A wrong password fails the first start at once; during an outage a broker still
        // booting may refuse what it will later accept, so keep trying then.
        Error::AuthenticationFailed { .. } | Error::VhostNotAllowed { .. } => ever_connected,
        _ => true,
    }
}

impl RpcServerBuilder {
    /// Serves with `handler` until `shutdown` is cancelled, reconnecting whenever the connection
    /// is lost: attempt `k` waits `backoff.delay(k)` first (capped, jittered), and the count
    /// starts again after each successful reconnect. Returns `Ok` after a graceful shutdown, or
    /// the error of a start that retrying cannot fix (a bad URI, wrong credentials on the first
    /// start, a queue declared with other arguments). `on_first_serve` runs once, when the queue is
    /// first declared and consumed (where the tutorial prints ` [x] Awaiting RPC requests`).
    pub async fn serve_reconnecting(
        self,
        handler: impl Handler,
        backoff: Backoff,
        shutdown: CancellationToken,
        on_first_serve: impl FnOnce(),
    ) -> Result<(), ServerError> {
        let mut on_first_serve = Some(on_first_serve);
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let mut ever_connected = false;
        // The attempt being made: 1 for the first connect, and 1 again for the first reconnect
        // after each loss. Every attempt is logged once: its failure or its success.
        let mut attempt = 1u32;
        loop {
            let shared = Arc::clone(&handler);
            let started = tokio::select! {
                started = self.clone().start(move |request: Request| shared.call(request)) => started,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let server = match started {
                Ok(server) => server,
                Err(error) if retryable(&error, ever_connected) => {
                    let delay = backoff.delay(attempt + 1);
                    tracing::warn!(
                        "connect attempt {attempt} failed: {error}; attempt {} in {delay:?}",
                        attempt + 1
                    );
                    attempt += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                }
                Err(error) => return Err(error),
            };
            if ever_connected {
                if let Some(m) = self.server_metrics() {
                    m.reconnected();
                }
            }
            if ever_connected || attempt > 1 {
                tracing::info!(
                    "connect attempt {attempt} succeeded: serving {} again on {}",
                    server.queue(),
                    server.peer()
                );
            }
            ever_connected = true;
            if let Some(first) = on_first_serve.take() {
                first();
            }
            let error = match server.run_until(shutdown.clone().cancelled_owned()).await {
                Ok(()) => return Ok(()),
                Err(_) if shutdown.is_cancelled() => return Ok(()),
                Err(error) => error,
            };
            attempt = 1;
            let delay = backoff.delay(attempt);
            tracing::warn!("connection lost: {error}; connect attempt 1 in {delay:?}");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_worth_retrying() {
        let refused = ServerError::Connection(Error::ConnectRefused {
            addr: "127.0.0.1:5672".into(),
        });
        assert!(retryable(&refused, false));
        let auth = ServerError::Connection(Error::AuthenticationFailed {
            code: 403,
            text: "no".into(),
        });
        assert!(!retryable(&auth, false));
        assert!(retryable(&auth, true));
        let declare = ServerError::Connection(Error::ChannelClosed {
            code: 406,
            text: "PRECONDITION_FAILED - inequivalent arg 'durable'".into(),
            class_id: 50,
            method_id: 10,
        });
        assert!(!retryable(&declare, true));
        assert!(retryable(
            &ServerError::ConsumerEnded {
                queue: "q".into(),
                source: Error::HeartbeatTimeout(std::time::Duration::from_secs(2)),
            },
            true
        ));
    }
}
