//! Shared by the broker tests: the broker's address, unique queue names, servers on tasks, and
//! queue cleanup that runs even when a test fails.
#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use amqp_client::{Channel, Connection, QueueDeclareOptions};
use rpc_client::{FibonacciRpcClient, RpcClient};
use rpc_server::{Handler, RpcServer, RpcServerBuilder, ServerError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Every broker operation in these tests is bounded by this.
pub const STEP: Duration = Duration::from_secs(10);

pub fn uri() -> String {
    std::env::var("AMQP_URI").unwrap_or_else(|_| rpc_client::DEFAULT_URI.to_owned())
}

/// Fails (never skips) when the broker is not reachable, saying how to start it.
pub fn require_broker() {
    let addr: SocketAddr = "127.0.0.1:5672".parse().expect("address");
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "RabbitMQ is not reachable at {addr} ({e}); these tests need the real broker: \
             run `bash scripts/broker.sh` first"
        );
    }
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// Bounded await: a hang becomes a test failure naming what hung.
pub async fn within<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Deletes the queue when dropped (also when the test panics), on a thread of its own so that it
/// works from inside or outside a runtime.
pub struct QueueGuard(pub String);

impl Drop for QueueGuard {
    fn drop(&mut self) {
        let queue = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    let conn = Connection::connect(&uri()).await.ok()?;
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

/// A raw connection and channel, for playing the other side by hand.
pub async fn raw_channel() -> (Connection, Channel) {
    let conn = within("connect", STEP, Connection::connect(&uri()))
        .await
        .expect("connect");
    let ch = within("open channel", STEP, conn.open_channel())
        .await
        .expect("channel");
    (conn, ch)
}

/// Declares `queue` as the tutorial does.
pub async fn declare(ch: &Channel, queue: &str) {
    within(
        "queue.declare",
        STEP,
        ch.queue_declare(queue, QueueDeclareOptions::default()),
    )
    .await
    .expect("declare");
}

/// A server running on a task; `stop` shuts it down gracefully and returns its outcome.
pub struct Running {
    pub token: CancellationToken,
    pub task: JoinHandle<Result<(), ServerError>>,
    pub stats: std::sync::Arc<rpc_server::Stats>,
}

impl Running {
    pub async fn stop(mut self) -> Result<(), ServerError> {
        self.token.cancel();
        within("server shutdown", Duration::from_secs(40), &mut self.task)
            .await
            .expect("server task")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

pub async fn serve(builder: RpcServerBuilder, handler: impl Handler) -> Running {
    let server: RpcServer = within("server start", STEP, builder.uri(uri()).start(handler))
        .await
        .expect("server start");
    let token = server.shutdown_token();
    let stats = server.stats();
    let task = tokio::spawn(server.run_until(std::future::pending()));
    Running { token, task, stats }
}

pub async fn client(queue: &str) -> RpcClient {
    within(
        "client connect",
        STEP,
        RpcClient::builder().uri(uri()).queue(queue).connect(),
    )
    .await
    .expect("client connect")
}

pub async fn fib_client(queue: &str) -> FibonacciRpcClient {
    FibonacciRpcClient::from(client(queue).await)
}
