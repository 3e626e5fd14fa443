//! The shared broker as the interop tests see it: a loopback address of this test process's own
//! (so a capture holds only its connections), and `rpc_queue`, which the tutorial programs
//! hard-code, emptied of an earlier declaration before each scenario and after it.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use amqp_client::QueueDeclareOptions;

use super::process::STEP;

/// The request queue of tutorial six (every tutorial program names it so).
pub const QUEUE: &str = "rpc_queue";

/// A loopback address no other test process uses, e.g. `127.23.181.9`. The broker listens on all
/// addresses, 127.0.0.0/8 is loopback (so `guest` may log in), and a capture filtered on this host
/// sees this process's connections only, whatever else runs against the broker meanwhile.
pub fn address() -> String {
    let pid = std::process::id();
    format!(
        "127.{}.{}.{}",
        1 + (pid >> 16) % 254,
        (pid >> 8) & 0xff,
        1 + (pid & 0xff) % 254
    )
}

/// The broker at `address()`, as a URI for our programs.
pub fn uri() -> String {
    format!("amqp://guest:guest@{}:5672/%2f", address())
}

pub fn require() {
    let addr: SocketAddr = format!("{}:5672", address()).parse().expect("address");
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "RabbitMQ is not reachable at {addr} ({e}); the interop tests need the real broker \
             listening on all loopback addresses: run `bash scripts/broker.sh` first"
        );
    }
}

async fn delete_rpc_queue() -> Result<(), String> {
    let conn = amqp_client::Connection::connect(&uri())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        let ch = conn
            .open_channel()
            .await
            .map_err(|e| format!("channel: {e}"))?;
        // Passive: any declaration of rpc_queue answers, whatever its arguments; 404 closes the channel.
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let Ok(found) = ch.queue_declare(QUEUE, passive).await else {
            break Ok(()); // no rpc_queue
        };
        if found.consumer_count > 0 {
            if Instant::now() >= deadline {
                break Err(format!(
                    "rpc_queue has {} consumer(s) from another program; stop it (e.g. a running \
                     `amqp-rpc serve` or tutorial rpc_server) and rerun",
                    found.consumer_count
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        // Not if-unused: quorum queues refuse it (540 NOT_IMPLEMENTED); the consumer count was
        // just 0.
        break ch
            .queue_delete(QUEUE, amqp_client::QueueDeleteOptions::default())
            .await
            .map(drop)
            .map_err(|e| format!("queue.delete rpc_queue: {e}"));
    };
    let _ = conn.close().await;
    result
}

/// Deletes `rpc_queue` (after waiting for other programs' consumers to go), so that the next
/// program to declare it chooses its arguments: transient classic (pika's, ours by default) or
/// durable quorum (the current amqplib, Java and Go tutorials).
pub fn reset_rpc_queue() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        match tokio::time::timeout(STEP, delete_rpc_queue()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("deleting rpc_queue took longer than {STEP:?}"),
        }
    });
}

/// Held for a scenario: deletes `rpc_queue` on drop, also on failure, so a quorum `rpc_queue`
/// left by a tutorial server does not break the next test that declares it transient (pika's).
pub struct RpcQueueReset;

impl Drop for RpcQueueReset {
    fn drop(&mut self) {
        // Children are dropped (killed) before this guard (declared first), so it is unused by then.
        let Ok(rt) = tokio::runtime::Runtime::new() else {
            return;
        };
        let _ = rt.block_on(async { tokio::time::timeout(STEP, delete_rpc_queue()).await });
    }
}
