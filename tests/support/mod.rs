//! What the resilience, cluster and soak tests share: a fault-injecting TCP proxy, the default
//! broker's controls (stop, kill, restore), `amqp-rpc serve` child processes, process figures.
//!
//! Each test binary uses a part of it.
#![allow(dead_code)]

pub mod broker;
pub mod fake_broker;
pub mod fault_proxy;
pub mod figures;
pub mod serve;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The default broker.
pub const BROKER_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A name no other test (or earlier run) uses: `prefix-pid-nanos-counter`.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Logs of the code under test on stderr (`RUST_LOG`, default warn), once per test binary.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Bounded await: a hang becomes a test failure naming what hung.
pub async fn within<T>(
    what: &str,
    limit: std::time::Duration,
    fut: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Deletes a queue when dropped (also when the test panics), on a thread of its own so that it
/// works from inside or outside a runtime. Gives up after 5 s (the broker may be down: then a
/// non-durable queue is gone anyway).
pub struct QueueGuard {
    uri: String,
    queue: String,
}

impl QueueGuard {
    /// Deletes `queue` on the broker at `uri` when dropped.
    pub fn new(uri: &str, queue: &str) -> QueueGuard {
        QueueGuard {
            uri: uri.to_owned(),
            queue: queue.to_owned(),
        }
    }
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        let (uri, queue) = (self.uri.clone(), self.queue.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    let conn = amqp_client::Connection::connect(&uri).await.ok()?;
                    let ch = conn.open_channel().await.ok()?;
                    let _ = ch
                        .queue_delete(&queue, amqp_client::QueueDeleteOptions::default())
                        .await;
                    let _ = conn.close().await;
                    Some(())
                })
                .await;
            });
        })
        .join();
    }
}
