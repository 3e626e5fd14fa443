//! Lost network, for real: a TCP proxy between the caller (or the worker) and RabbitMQ stalls
//! (a silent peer), cuts (resets both sides) or half-opens (the broker's side gone, the caller's
//! left open and silent) the connection. Heartbeats detect a silent peer within two intervals;
//! calls in flight fail at once with a typed "connection lost" error instead of hanging until
//! their timeout; the next call reconnects; idempotent calls are retried, boundedly.
//!
//! These tests leave the broker alone (each uses its own queue), so they run in parallel.

mod support;

use std::time::{Duration, Instant};

use amqp_client::{Connection, ConnectionConfig, Error, QueueDeclareOptions};
use rpc_client::{Backoff, ReconnectingRpcClient, RetryPolicy, RpcClient, RpcError};
use rpc_server::{fib::fib_decimal, ReplyError, Request, RpcServer};

use support::fault_proxy::FaultProxy;
use support::serve::{assert_attempts_logged_once, Serve};
use support::{unique, within, QueueGuard, BROKER_URI};

/// Heartbeat interval (seconds) asked for through the proxy: short, so detection is quick.
const HEARTBEAT: u64 = 1;

/// Slack on every timing bound: the machine is shared and loaded.
const SLACK: Duration = Duration::from_millis(1500);

/// A worker on its own queue, connected straight to the broker (not through the proxy), that
/// answers fib(n) after sleeping `delay`. Stops when the returned closure is called or dropped.
async fn slow_worker(queue: &str, delay: Duration) -> (QueueGuard, impl Drop) {
    let server = within(
        "worker start",
        Duration::from_secs(10),
        RpcServer::builder()
            .uri(BROKER_URI)
            .queue(queue)
            .prefetch(64)
            // Gone with its last consumer, even if this test is killed.
            .queue_options(QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            })
            .start(move |req: Request| async move {
                tokio::time::sleep(delay).await;
                let n = rpc_wire::fibonacci::parse_n(&req.body, 10_000)?;
                Ok::<_, ReplyError>(fib_decimal(n))
            }),
    )
    .await
    .expect("worker start");
    let token = server.shutdown_token();
    tokio::spawn(server.run_until(std::future::pending()));
    struct Stop(rpc_server::CancellationToken);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
    (QueueGuard::new(BROKER_URI, queue), Stop(token))
}

fn config(uri: &str) -> ConnectionConfig {
    ConnectionConfig::parse(uri).expect("uri")
}

async fn reconnecting(
    proxy: &FaultProxy,
    queue: &str,
    timeout: Duration,
    retries: u32,
) -> ReconnectingRpcClient {
    let policy = RetryPolicy {
        retries,
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            jitter: 0.5,
        },
    };
    within(
        "client connect",
        Duration::from_secs(10),
        ReconnectingRpcClient::connect(
            config(&proxy.uri(&format!("heartbeat={HEARTBEAT}&connection_timeout=3000"))),
            RpcClient::builder().queue(queue).timeout(timeout),
            policy,
        ),
    )
    .await
    .expect("client connect")
}

#[tokio::test]
async fn silent_peer_is_detected_by_heartbeats_within_two_intervals() {
    support::init_logging();
    let proxy = FaultProxy::to_broker().await.unwrap();
    let conn = Connection::connect(&proxy.uri(&format!("heartbeat={HEARTBEAT}")))
        .await
        .expect("connect through the proxy");
    assert_eq!(conn.heartbeat(), Duration::from_secs(HEARTBEAT));
    proxy.stall();
    let stalled = Instant::now();
    let error = within(
        "heartbeat detection",
        Duration::from_secs(10),
        conn.closed(),
    )
    .await;
    let took = stalled.elapsed();
    println!("silent peer detected after {took:?} (heartbeat {HEARTBEAT} s): {error}");
    assert!(matches!(error, Error::HeartbeatTimeout(_)), "{error:?}");
    let two_intervals = Duration::from_secs(2 * HEARTBEAT);
    assert!(
        took <= two_intervals + SLACK,
        "detected after {took:?}, bound is two intervals ({two_intervals:?}) + {SLACK:?}"
    );
    assert!(conn.is_terminated());
}

#[tokio::test]
async fn in_flight_calls_fail_at_once_when_the_connection_is_cut_and_the_next_call_reconnects() {
    support::init_logging();
    let queue = unique("res-cut");
    let (_guard, _worker) = slow_worker(&queue, Duration::from_secs(3)).await;
    let proxy = FaultProxy::to_broker().await.unwrap();
    // A 30 s call timeout: a call that waited for it would fail this test's bounds.
    let client = reconnecting(&proxy, &queue, Duration::from_secs(30), 0).await;
    let calls: Vec<_> = (0..20u64)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { client.fib(n).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cut = Instant::now();
    proxy.cut();
    for call in calls {
        let outcome = within("an in-flight call", Duration::from_secs(5), call)
            .await
            .unwrap();
        let error = outcome.expect_err("the connection was cut before any answer");
        assert!(error.is_connection_lost(), "{error:?}");
        assert!(matches!(error, RpcError::ConnectionLost(_)), "{error:?}");
    }
    let failed_after = cut.elapsed();
    println!("20 in-flight calls failed {failed_after:?} after the cut");
    assert!(failed_after < Duration::from_secs(1), "{failed_after:?}");
    // The next call opens a new connection through the proxy and is answered.
    let answer = within(
        "call after the cut",
        Duration::from_secs(15),
        client.fib(30),
    )
    .await
    .expect("the next call reconnects");
    assert_eq!(answer, 832_040u64);
    assert_eq!(client.stats().reconnects, 1);
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test]
async fn idempotent_calls_are_retried_through_a_cut_others_are_not() {
    support::init_logging();
    let queue = unique("res-retry");
    let (_guard, _worker) = slow_worker(&queue, Duration::from_millis(800)).await;
    let proxy = FaultProxy::to_broker().await.unwrap();
    let client = reconnecting(&proxy, &queue, Duration::from_secs(10), 3).await;
    // Not idempotent: fails with the lost connection, not retried.
    let once = {
        let client = client.clone();
        tokio::spawn(async move { client.call("20").await })
    };
    // Idempotent: the first attempt is lost with the connection; the retry is answered.
    let retried = {
        let client = client.clone();
        tokio::spawn(async move { client.fib(20).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    let once = within("plain call", Duration::from_secs(5), once)
        .await
        .unwrap();
    assert!(
        matches!(&once, Err(e) if e.is_connection_lost()),
        "{once:?}"
    );
    let retried = within("idempotent call", Duration::from_secs(15), retried)
        .await
        .unwrap()
        .expect("retried after the cut");
    assert_eq!(retried, 6_765u64);
    let stats = client.stats();
    println!("after a cut: {stats:?}");
    assert_eq!(stats.retried_calls, 1);
    assert_eq!(stats.reconnects, 1);
}

#[tokio::test]
async fn retries_are_bounded_when_the_broker_stays_unreachable() {
    support::init_logging();
    let queue = unique("res-bound");
    let (_guard, _worker) = slow_worker(&queue, Duration::ZERO).await;
    let proxy = FaultProxy::to_broker().await.unwrap();
    let client = reconnecting(&proxy, &queue, Duration::from_secs(5), 2).await;
    assert_eq!(client.fib(10).await.unwrap(), 55u64);
    // The proxy goes: its connection is reset and its port refuses.
    drop(proxy);
    let started = Instant::now();
    let error = within(
        "call with nowhere to go",
        Duration::from_secs(10),
        client.fib(10),
    )
    .await
    .expect_err("nothing listens any more");
    println!("gave up after {:?}: {error}", started.elapsed());
    assert!(error.is_connection_lost(), "{error:?}");
    let stats = client.stats();
    assert_eq!(stats.retries, 2, "{stats:?}");
    assert_eq!(stats.retried_calls, 1, "{stats:?}");
}

#[tokio::test]
async fn a_half_open_connection_hangs_nothing() {
    support::init_logging();
    let queue = unique("res-half");
    let (_guard, _worker) = slow_worker(&queue, Duration::from_secs(2)).await;
    let proxy = FaultProxy::to_broker().await.unwrap();
    let client = reconnecting(&proxy, &queue, Duration::from_secs(30), 0).await;
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.fib(25).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The broker's side is reset; ours stays open and hears nothing: only heartbeats can tell.
    proxy.half_open();
    let cut = Instant::now();
    let error = within(
        "call on a half-open connection",
        Duration::from_secs(10),
        call,
    )
    .await
    .unwrap()
    .expect_err("no answer can come");
    let took = cut.elapsed();
    println!("in-flight call failed {took:?} after the half-open: {error}");
    assert!(
        matches!(&error, RpcError::ConnectionLost(Error::HeartbeatTimeout(_))),
        "{error:?}"
    );
    assert!(
        took <= Duration::from_secs(2 * HEARTBEAT) + SLACK,
        "{took:?}"
    );
    // Publishing on it fails too, at once; then the client reconnects.
    let answer = within(
        "call after the half-open",
        Duration::from_secs(15),
        client.fib(25),
    )
    .await
    .expect("reconnected");
    assert_eq!(answer, 75_025u64);
    assert_eq!(client.stats().reconnects, 1);
}

/// `amqp-rpc serve` through the proxy: a stall ends its connection by heartbeat timeout; it
/// reconnects (attempts logged once each, failing while the proxy still stalls) and serves again.
#[tokio::test]
async fn serve_survives_a_heartbeat_timeout() {
    support::init_logging();
    let queue = unique("res-serve-hb");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    let proxy = FaultProxy::to_broker().await.unwrap();
    let serve_uri = proxy.uri(&format!("heartbeat={HEARTBEAT}&connection_timeout=1000"));
    let serve = Serve::start(&[
        "--uri",
        &serve_uri,
        "--queue",
        &queue,
        "--reconnect-initial",
        "100ms",
        "--reconnect-max",
        "1s",
    ]);
    serve
        .wait_for("consuming", 1, Duration::from_secs(15))
        .await;
    // Callers connect straight to the broker.
    let client = RpcClient::builder()
        .uri(BROKER_URI)
        .queue(&queue)
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    assert_eq!(client.call("10").await.unwrap(), "55");
    proxy.stall();
    serve
        .wait_for(
            "connection lost",
            1,
            Duration::from_secs(2 * HEARTBEAT) + SLACK * 2,
        )
        .await;
    // While stalled, reconnect attempts time out in the handshake; let a few fail.
    serve
        .wait_for("attempt 2 failed", 1, Duration::from_secs(10))
        .await;
    proxy.resume();
    serve
        .wait_for("succeeded: serving", 1, Duration::from_secs(15))
        .await;
    assert_eq!(
        within(
            "call after the reconnect",
            Duration::from_secs(20),
            client.call("20")
        )
        .await
        .unwrap(),
        "6765"
    );
    let output = serve.output();
    println!("amqp-rpc serve said:\n{output}");
    assert_eq!(serve.count("connection lost"), 1, "{output}");
    assert_attempts_logged_once(&output);
    assert!(serve.terminate(Duration::from_secs(10)), "graceful stop");
    let _ = client.close().await;
}

/// `amqp-rpc call --retries`: the first address refuses, the second (through the proxy) is cut
/// while the request is at the worker; the call reconnects and asks again, and prints the answer.
#[tokio::test]
async fn amqp_rpc_call_retries_through_a_cut() {
    support::init_logging();
    let queue = unique("res-cli");
    let (_guard, _worker) = slow_worker(&queue, Duration::from_millis(1000)).await;
    let proxy = FaultProxy::to_broker().await.unwrap();
    // Port 1 on loopback: nothing listens, the connect is refused at once.
    let refused = "amqp://guest:guest@127.0.0.1:1/%2f";
    let through_proxy = proxy.uri("heartbeat=5");
    let call = tokio::process::Command::new(env!("CARGO_BIN_EXE_amqp-rpc"))
        .args(["call", "25", "--queue", &queue, "--retries", "3"])
        .args([
            "--timeout",
            "10s",
            "--uri",
            refused,
            "--uri",
            &through_proxy,
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let call = tokio::spawn(call);
    let deadline = Instant::now() + Duration::from_secs(15);
    while proxy.accepted() == 0 {
        assert!(Instant::now() < deadline, "amqp-rpc call never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Past its setup (callback queue, consumer) and waiting for the slow worker.
    tokio::time::sleep(Duration::from_millis(600)).await;
    proxy.cut();
    let out = within("amqp-rpc call", Duration::from_secs(30), call)
        .await
        .unwrap()
        .expect("run amqp-rpc call");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(" [.] Got 75025"), "{stdout}{stderr}");
    assert_eq!(proxy.accepted(), 2, "one connection, cut, then one more");
}
