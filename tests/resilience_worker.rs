//! A worker dies, for real: `kill -9` of an `amqp-rpc serve` in the middle of a slow request.
//! The broker requeues what it held unacked and another server answers; each caller gets exactly
//! one answer, and a second answer to the same request (a worker that replied, then died before
//! its ack) is dropped by correlation id. Nothing is lost.

mod support;

use std::time::{Duration, Instant};

use amqp_client::{BasicConsumeOptions, BasicProperties, Connection};
use rpc_client::RpcClient;

use support::fault_proxy::FaultProxy;
use support::serve::Serve;
use support::{unique, within, QueueGuard, BROKER_URI};

fn slow_serve(queue: &str, delay_ms: u64) -> Serve {
    Serve::start(&[
        "--uri",
        BROKER_URI,
        "--queue",
        queue,
        "--prefetch",
        "1",
        "--delay-ms",
        &delay_ms.to_string(),
    ])
}

/// Requests a server has started on (FibService prints one ` [.] fib(n)` line each).
fn started(serve: &Serve) -> usize {
    serve.count(" [.] fib(")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_mid_request_is_redelivered_and_answered_once() {
    support::init_logging();
    let queue = unique("res-kill-worker");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    let a = slow_serve(&queue, 1000);
    a.wait_for("consuming", 1, Duration::from_secs(15)).await;
    let b = slow_serve(&queue, 1000);
    b.wait_for("consuming", 1, Duration::from_secs(15)).await;
    let client = RpcClient::builder()
        .uri(BROKER_URI)
        .queue(&queue)
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    let ns: Vec<u64> = vec![10, 20, 30, 40];
    let calls: Vec<_> = ns
        .iter()
        .map(|&n| {
            let client = client.clone();
            tokio::spawn(async move { (n, client.call(n.to_string()).await) })
        })
        .collect();
    // Prefetch 1: each server holds one request. Kill A while it works on its first.
    let deadline = Instant::now() + Duration::from_secs(10);
    while started(&a) == 0 {
        assert!(Instant::now() < deadline, "A never started a request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a_started = started(&a);
    a.kill();
    let killed = Instant::now();
    for call in calls {
        let (n, outcome) = within("a call", Duration::from_secs(20), call)
            .await
            .unwrap();
        let body = outcome.unwrap_or_else(|e| panic!("fib({n}) lost: {e}"));
        assert_eq!(body, rpc_server::fib::fib_decimal(n), "fib({n})");
    }
    println!(
        "A killed holding {a_started} request(s); all {} answered {:?} later; B started {} \
         (incl. the redelivered one); replies answered {}, dropped {}",
        ns.len(),
        killed.elapsed(),
        started(&b),
        client.answered_replies(),
        client.dropped_replies()
    );
    assert_eq!(a_started, 1);
    // B did its own share and A's: every request, the redelivered one included.
    assert_eq!(started(&b), ns.len(), "{}", b.output());
    assert_eq!(client.answered_replies(), ns.len() as u64);
    assert_eq!(client.dropped_replies(), 0);
    assert!(b.terminate(Duration::from_secs(10)));
    let _ = client.close().await;
}

/// Tutorial six: "if the RPC server dies just after sending us the answer but before sending an
/// acknowledgment … the restarted server will process the request again". Here a worker (on a
/// socket through the proxy) replies and then loses its connection before it acks; the broker
/// redelivers the request to `amqp-rpc serve`, which answers it again; the caller took the first
/// answer and drops the second by correlation id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_answer_after_a_crash_before_the_ack_is_dropped() {
    support::init_logging();
    let queue = unique("res-dup");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    let proxy = FaultProxy::to_broker().await.unwrap();
    // The doomed worker, by hand: consume with manual acks, reply, never ack.
    let doomed = Connection::connect(&proxy.uri("heartbeat=10"))
        .await
        .unwrap();
    let ch = doomed.open_channel().await.unwrap();
    ch.queue_declare(&queue, Default::default()).await.unwrap();
    ch.basic_qos(1, amqp_client::BasicQosOptions::default())
        .await
        .unwrap();
    let mut requests = ch
        .basic_consume(&queue, BasicConsumeOptions::default())
        .await
        .unwrap();
    let client = RpcClient::builder()
        .uri(BROKER_URI)
        .queue(&queue)
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.call("25").await })
    };
    let request = within(
        "request at the doomed worker",
        Duration::from_secs(10),
        requests.recv(),
    )
    .await
    .unwrap();
    let reply_to = request
        .properties
        .reply_to
        .as_ref()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let id = request.properties.correlation_id.clone().unwrap();
    let props = BasicProperties::default().with_correlation_id(id.as_str().unwrap());
    ch.basic_publish(
        "",
        &reply_to,
        amqp_client::BasicPublishOptions::default(),
        &props,
        b"75025",
    )
    .await
    .unwrap();
    let answer = within("first answer", Duration::from_secs(10), call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, "75025");
    // The worker dies before its ack: its socket is reset.
    proxy.cut();
    let _ = within(
        "doomed connection ends",
        Duration::from_secs(5),
        doomed.closed(),
    )
    .await;
    // A real server takes the redelivered request and answers it a second time.
    let serve = slow_serve(&queue, 0);
    serve
        .wait_for(" [.] fib(25)", 1, Duration::from_secs(15))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.dropped_replies() == 0 {
        assert!(
            Instant::now() < deadline,
            "the duplicate answer never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "answered {}, dropped {} (the duplicate)",
        client.answered_replies(),
        client.dropped_replies()
    );
    assert_eq!(client.answered_replies(), 1);
    assert_eq!(client.dropped_replies(), 1);
    assert!(serve.terminate(Duration::from_secs(10)));
    let _ = client.close().await;
}
