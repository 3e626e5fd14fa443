//! Workers sharing a queue, concurrency under prefetch, graceful shutdown, redelivery after a
//! server dies, publisher confirms — against the real broker.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use rpc_client::{CallOptions, RpcError};
use rpc_server::{FibService, Request, RpcServer};

/// A handler that answers `name` after `delay`, counting how many run at once.
fn slow(
    name: &'static str,
    delay: Duration,
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
) -> impl Fn(
    Request,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Bytes, std::io::Error>> + Send>,
> + Send
       + Sync
       + 'static {
    move |_req: Request| {
        let (now, peak) = (now.clone(), peak.clone());
        Box::pin(async move {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(Bytes::from_static(name.as_bytes()))
        })
    }
}

fn counters() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)))
}

#[tokio::test]
async fn two_servers_share_one_queue_fairly() {
    require_broker();
    let queue = unique("rpc-pair");
    let _guard = QueueGuard(queue.clone());
    let (n1, p1) = counters();
    let (n2, p2) = counters();
    let delay = Duration::from_millis(30);
    let a = serve(
        RpcServer::builder().queue(&queue),
        slow("a", delay, n1, p1.clone()),
    )
    .await;
    let b = serve(
        RpcServer::builder().queue(&queue),
        slow("b", delay, n2, p2.clone()),
    )
    .await;
    let client = client(&queue).await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("x").await })
        })
        .collect();
    let (mut by_a, mut by_b) = (0, 0);
    for call in calls {
        match &within("call", STEP, call).await.unwrap().unwrap()[..] {
            b"a" => by_a += 1,
            b"b" => by_b += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(
        by_a >= 5 && by_b >= 5,
        "both servers get work: a={by_a} b={by_b}"
    );
    // Prefetch 1: each server holds one request at a time.
    assert_eq!(p1.load(Ordering::SeqCst), 1);
    assert_eq!(p2.load(Ordering::SeqCst), 1);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn prefetch_above_one_computes_concurrently() {
    require_broker();
    let queue = unique("rpc-prefetch");
    let _guard = QueueGuard(queue.clone());
    let (now, peak) = counters();
    let server = serve(
        RpcServer::builder().queue(&queue).prefetch(4),
        slow("s", Duration::from_millis(200), now, peak.clone()),
    )
    .await;
    let client = client(&queue).await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("x").await })
        })
        .collect();
    for call in calls {
        within("call", STEP, call).await.unwrap().unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&peak),
        "up to prefetch requests at once, saw {peak}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops_consuming() {
    require_broker();
    let queue = unique("rpc-shutdown");
    let _guard = QueueGuard(queue.clone());
    let (now, peak) = counters();
    let server = serve(
        RpcServer::builder().queue(&queue).prefetch(2),
        slow("done", Duration::from_millis(500), now.clone(), peak),
    )
    .await;
    let client = client(&queue).await;
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("x").await })
        })
        .collect();
    within("both in flight", STEP, async {
        while now.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Shut down while both are being computed: both still get their answer.
    server.stop().await.unwrap();
    for call in calls {
        assert_eq!(
            &within("call", STEP, call).await.unwrap().unwrap()[..],
            b"done"
        );
    }
    // Nobody consumes any more.
    let err = client
        .call_raw_with(
            &queue,
            "x",
            CallOptions::timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::Timeout {
                consumers: Some(0),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_that_dies_mid_request_loses_nothing() {
    require_broker();
    let queue = unique("rpc-crash");
    let _guard = QueueGuard(queue.clone());
    let started = Arc::new(AtomicUsize::new(0));
    // This server takes the request and never answers.
    let doomed = serve(RpcServer::builder().queue(&queue), {
        let started = started.clone();
        move |_req: Request| {
            started.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<Bytes, std::io::Error>>()
        }
    })
    .await;
    let client = client(&queue).await;
    let call = tokio::spawn({
        let c = client.clone();
        async move { c.call("30").await }
    });
    within("request taken", STEP, async {
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Kill it: the task and its connection go away without acking.
    doomed.task.abort();
    drop(doomed);
    // A healthy server gets the redelivered request and answers it.
    let redelivered = Arc::new(AtomicUsize::new(0));
    let healthy = serve(RpcServer::builder().queue(&queue), {
        let redelivered = redelivered.clone();
        move |req: Request| {
            if req.redelivered {
                redelivered.fetch_add(1, Ordering::SeqCst);
            }
            let fib = FibService::new();
            async move { fib.answer(&req.body).await }
        }
    })
    .await;
    let answer = within("call", STEP, call).await.unwrap().unwrap();
    assert_eq!(&answer[..], b"832040");
    assert_eq!(
        redelivered.load(Ordering::SeqCst),
        1,
        "the broker redelivered it"
    );
    healthy.stop().await.unwrap();
}

#[tokio::test]
async fn publisher_confirms_mode_answers_too() {
    require_broker();
    let queue = unique("rpc-confirm");
    let _guard = QueueGuard(queue.clone());
    let server = serve(
        RpcServer::builder()
            .queue(&queue)
            .prefetch(4)
            .publisher_confirms(true),
        FibService::new(),
    )
    .await;
    let client = fib_client(&queue).await;
    for n in [0u64, 10, 30] {
        let want = rpc_server::fib::fib(n);
        assert_eq!(within("call", STEP, client.call(n)).await.unwrap().0, want);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_cancelled_consumer_ends_the_server_with_a_clear_error() {
    require_broker();
    let queue = unique("rpc-cancelled");
    let _guard = QueueGuard(queue.clone());
    let mut server = serve(RpcServer::builder().queue(&queue), FibService::new()).await;
    let (_conn, ch) = raw_channel().await;
    within(
        "delete",
        STEP,
        ch.queue_delete(&queue, amqp_client::QueueDeleteOptions::default()),
    )
    .await
    .unwrap();
    let outcome = within("server ends", STEP, &mut server.task).await.unwrap();
    let err = outcome.unwrap_err();
    assert!(
        matches!(err, rpc_server::ServerError::ConsumerEnded { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&queue), "{err}");
}

#[tokio::test]
async fn a_client_whose_connection_dies_fails_its_calls_at_once() {
    require_broker();
    let queue = unique("rpc-lost");
    let _guard = QueueGuard(queue.clone());
    let (_conn, ch) = raw_channel().await;
    declare(&ch, &queue).await;
    let client = client(&queue).await;
    let pending = tokio::spawn({
        let c = client.clone();
        async move { c.call("1").await }
    });
    within("call in flight", STEP, async {
        while client.in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    within("close", STEP, client.connection().close())
        .await
        .unwrap();
    let err = within("pending call", STEP, pending)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, RpcError::ConnectionLost(_) | RpcError::Closed),
        "{err:?}"
    );
    // Later calls fail at once rather than waiting for their timeout.
    let err = within("later call", Duration::from_secs(2), client.call("1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::ConnectionLost(_) | RpcError::Connection(_) | RpcError::Closed
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn requests_still_running_when_the_grace_period_ends_go_to_another_server() {
    require_broker();
    let queue = unique("rpc-grace");
    let _guard = QueueGuard(queue.clone());
    let (now, peak) = counters();
    let slowpoke = serve(
        RpcServer::builder()
            .queue(&queue)
            .grace(Duration::from_millis(100)),
        slow("slow", Duration::from_secs(3600), now.clone(), peak),
    )
    .await;
    let client = client(&queue).await;
    let call = tokio::spawn({
        let c = client.clone();
        async move { c.call("x").await }
    });
    within("request taken", STEP, async {
        while now.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Shut down: the grace period ends long before the handler would; the request was never
    // acked, so closing the connection hands it back to the broker.
    slowpoke.stop().await.unwrap();
    let (n2, p2) = counters();
    let other = serve(
        RpcServer::builder().queue(&queue),
        slow("other", Duration::ZERO, n2, p2),
    )
    .await;
    assert_eq!(
        &within("call", STEP, call).await.unwrap().unwrap()[..],
        b"other"
    );
    other.stop().await.unwrap();
}

/// Requests whose handler answers at once are answered in place by the serve loop; one that has to
/// wait gets a task of its own. Neither kind may hold up the other: with prefetch 8, six quick
/// requests sent after two slow ones are all answered while the slow ones still wait, and every
/// reply reaches its own caller.
#[tokio::test]
async fn quick_requests_are_not_held_up_by_waiting_ones() {
    require_broker();
    let queue = unique("rpc-mixed");
    let _guard = QueueGuard(queue.clone());
    let handler = |req: Request| async move {
        if req.body.starts_with(b"slow") {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        Ok::<_, std::io::Error>(req.body)
    };
    let server = serve(RpcServer::builder().queue(&queue).prefetch(8), handler).await;
    let client = client(&queue).await;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut calls = Vec::new();
    for body in ["slow-1", "slow-2", "q-1", "q-2", "q-3", "q-4", "q-5", "q-6"] {
        let (c, done) = (client.clone(), done_tx.clone());
        calls.push(tokio::spawn(async move {
            let reply = c.call(body).await;
            let _ = done.send(body);
            (body, reply)
        }));
        if body == "slow-2" {
            // The slow ones are taken first.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for call in calls {
        let (body, reply) = within("call", STEP, call).await.unwrap();
        assert_eq!(reply.unwrap(), body, "a reply reached the wrong caller");
    }
    drop(done_tx);
    let mut order = Vec::new();
    while let Some(body) = done_rx.recv().await {
        order.push(body);
    }
    assert_eq!(order.len(), 8);
    assert!(
        order[..6].iter().all(|b| b.starts_with("q-")),
        "quick requests waited for slow ones: {order:?}"
    );
    server.stop().await.unwrap();
}
