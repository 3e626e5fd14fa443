//! Backpressure: 100,000 calls queued at once against a queue whose server is stopped. The
//! requests go out as fast as the broker takes them, the connection's send buffer stays under
//! its high-water mark (publishers wait for room), every call ends with a typed timeout at its
//! deadline, and the process's peak memory stays under a stated bound. Its own test binary:
//! peak RSS is per process.

mod support;

use std::time::{Duration, Instant};

use amqp_client::Connection;
use rpc_client::{CallOptions, RpcClient, RpcError};
use support::{unique, QueueGuard, BROKER_URI};

/// Calls queued at once.
const CALLS: usize = 100_000;

/// The bound on the test process's peak RSS. Measured (debug build, this machine): ~330 MB,
/// nearly all of it the 100,000 call tasks themselves (each a spawned task holding its call's
/// future: ~2.3 KB in a debug build) and the reply map; the connection's send buffer adds at most
/// about twice its 4 MiB mark.
const RSS_BOUND_MB: u64 = 600;

fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_calls_against_a_stopped_server() {
    support::broker::ensure();
    let queue = unique("rpc-backpressure");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    // The server's queue exists; the server is stopped: nobody consumes.
    let conn = Connection::connect(BROKER_URI).await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.queue_declare(&queue, Default::default()).await.unwrap();
    let client = RpcClient::builder()
        .uri(BROKER_URI)
        .queue(&queue)
        .connect()
        .await
        .expect("client");
    let before = peak_rss_mb();
    let started = Instant::now();
    let timeout = Duration::from_secs(10);
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let client = client.clone();
            let queue = queue.clone();
            tokio::spawn(async move {
                client
                    .call_raw_with(&queue, i.to_string(), CallOptions::timeout(timeout))
                    .await
            })
        })
        .collect();
    let mut timeouts = 0;
    for call in calls {
        match tokio::time::timeout(Duration::from_secs(120), call)
            .await
            .expect("a call hung past every deadline")
            .expect("task")
        {
            Err(RpcError::Timeout { .. }) => timeouts += 1,
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    let took = started.elapsed();
    let peak = peak_rss_mb();
    println!(
        "{CALLS} calls: all timed out in {took:?}; peak RSS {before} MB before, {peak} MB after"
    );
    assert_eq!(timeouts, CALLS);
    assert!(
        peak < RSS_BOUND_MB,
        "peak RSS {peak} MB is over the stated bound of {RSS_BOUND_MB} MB"
    );
    assert_eq!(client.in_flight(), 0, "calls left in the reply map");
    let _ = ch.queue_delete(&queue, Default::default()).await;
    let _ = conn.close().await;
}
