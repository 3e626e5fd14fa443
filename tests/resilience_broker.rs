//! The broker goes away, for real: `rabbitmqctl stop_app` / `start_app`, and `kill -9` of its
//! Erlang VM followed by a restart. `amqp-rpc serve` reconnects with backoff, declares its queue
//! again and serves with no manual action, logging each attempt once; a caller's in-flight call
//! fails at once with a typed "connection lost" error and its next call reconnects.
//!
//! These tests stop the shared default broker: they hold one lock (tests of this binary run one
//! at a time) and a guard that brings the broker back even when they fail. Cargo runs test
//! binaries one after another, so no other test binary sees the broker down.

mod support;

use std::time::{Duration, Instant};

use amqp_client::ConnectionConfig;
use rpc_client::{Backoff, ReconnectingRpcClient, RetryPolicy, RpcClient};

use support::serve::{assert_attempts_logged_once, Serve};
use support::{broker, unique, within, QueueGuard, BROKER_URI};

fn start_serve(queue: &str, delay_ms: u64) -> Serve {
    Serve::start(&[
        "--uri",
        BROKER_URI,
        "--queue",
        queue,
        "--reconnect-initial",
        "100ms",
        "--reconnect-max",
        "1s",
        "--delay-ms",
        &delay_ms.to_string(),
    ])
}

async fn caller(queue: &str, retries: u32) -> ReconnectingRpcClient {
    ReconnectingRpcClient::connect(
        ConnectionConfig::parse(BROKER_URI).unwrap(),
        RpcClient::builder()
            .queue(queue)
            .timeout(Duration::from_secs(10)),
        RetryPolicy {
            retries,
            backoff: Backoff {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(2),
                jitter: 0.5,
            },
        },
    )
    .await
    .expect("caller connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_caller_survive_stop_app_and_start_app() {
    support::init_logging();
    let _exclusive = broker::exclusive().await;
    broker::ensure();
    let _restore = broker::Restore;
    let queue = unique("res-stop-app");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    // Each answer takes 6 s: long enough that the call below is still in the server's hands when
    // `rabbitmqctl stop_app` (seconds on a busy machine) has stopped the broker.
    let serve = start_serve(&queue, 6000);
    serve
        .wait_for("consuming", 1, Duration::from_secs(15))
        .await;
    let client = caller(&queue, 10).await;
    assert_eq!(client.fib(10).await.unwrap(), 55u64);

    // A call (not idempotent: no retry) in flight when the broker stops.
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.call("30").await })
    };
    serve
        .wait_for(" [.] fib(30)", 1, Duration::from_secs(10))
        .await;
    let stop = Instant::now();
    tokio::task::spawn_blocking(broker::stop_app).await.unwrap();
    let stop_took = stop.elapsed();
    let outcome = within("in-flight call", Duration::from_secs(2), in_flight)
        .await
        .unwrap();
    let failed_after = stop.elapsed();
    println!("stop_app took {stop_took:?}; the in-flight call failed within {failed_after:?}: {outcome:?}");
    assert!(
        matches!(&outcome, Err(e) if e.is_connection_lost()),
        "{outcome:?}"
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Instant::now();
    tokio::task::spawn_blocking(broker::start_app)
        .await
        .unwrap();
    println!("start_app took {:?}", start.elapsed());
    // The next call reconnects; until serve has declared its (non-durable) queue again the
    // request comes back unroutable and is retried.
    let answer = within(
        "call after start_app",
        Duration::from_secs(30),
        client.fib(30),
    )
    .await
    .expect("answered after the restart");
    assert_eq!(answer, 832_040u64);
    println!(
        "first answer {:?} after start_app began; caller: {:?}",
        start.elapsed(),
        client.stats()
    );
    serve
        .wait_for("succeeded: serving", 1, Duration::from_secs(15))
        .await;
    let output = serve.output();
    println!("amqp-rpc serve said:\n{output}");
    assert_eq!(serve.count("connection lost"), 1, "{output}");
    let attempts = assert_attempts_logged_once(&output);
    assert!(attempts >= 1);
    assert!(client.stats().reconnects >= 1);
    assert!(serve.terminate(Duration::from_secs(10)), "graceful stop");
    let _ = client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_survives_a_killed_and_restarted_broker() {
    support::init_logging();
    let _exclusive = broker::exclusive().await;
    broker::ensure();
    let _restore = broker::Restore;
    let queue = unique("res-kill-vm");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    let serve = start_serve(&queue, 0);
    serve
        .wait_for("consuming", 1, Duration::from_secs(15))
        .await;
    let client = caller(&queue, 10).await;
    assert_eq!(client.fib(12).await.unwrap(), 144u64);

    let killed = Instant::now();
    tokio::task::spawn_blocking(broker::kill_vm).await.unwrap();
    serve
        .wait_for("connection lost", 1, Duration::from_secs(5))
        .await;
    // Let serve fail a few attempts against the closed port, then bring the broker back as an
    // operator would (scripts/broker.sh: rabbitmq-server -detached).
    serve
        .wait_for("attempt 3 failed", 1, Duration::from_secs(10))
        .await;
    tokio::task::spawn_blocking(broker::ensure).await.unwrap();
    let back = killed.elapsed();
    serve
        .wait_for("succeeded: serving", 1, Duration::from_secs(30))
        .await;
    let serving = killed.elapsed();
    let answer = within(
        "call after the restart",
        Duration::from_secs(30),
        client.fib(40),
    )
    .await
    .expect("answered after the restart");
    assert_eq!(answer, 102_334_155u64);
    let output = serve.output();
    println!(
        "broker back {back:?} after kill -9, serve serving again at {serving:?}; caller {:?}\namqp-rpc serve said:\n{output}",
        client.stats()
    );
    assert_eq!(serve.count("connection lost"), 1, "{output}");
    let attempts = assert_attempts_logged_once(&output);
    assert!(attempts >= 4, "{attempts} attempts");
    assert!(serve.terminate(Duration::from_secs(10)), "graceful stop");
    let _ = client.close().await;
}
