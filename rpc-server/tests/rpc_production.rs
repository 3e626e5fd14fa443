//! RPC for production, against the real broker: deadlines end to end, JSON payloads, trace
//! context.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use amqp_client::{BasicConsumeOptions, BasicProperties, BasicPublishOptions, FieldTable};
use common::*;
use rpc_client::{CallOptions, ErrorCode, RpcClient, RpcError};
use rpc_server::{json_handler, FibService, ReplyError, Request, RpcServer};
use rpc_wire::json::{FibReply, FibRequest};
use rpc_wire::{deadline_of, traceparent_of, TraceParent};

async fn client_for(queue: &str) -> RpcClient {
    client(queue).await
}

/// What a request looks like on the wire: a consumer stands in for the server and reads it.
#[tokio::test]
async fn requests_carry_their_deadline_and_trace() {
    require_broker();
    let queue = unique("rpc-wire");
    let _guard = QueueGuard(queue.clone());
    let (_conn, ch) = raw_channel().await;
    declare(&ch, &queue).await;
    let mut spy = ch
        .basic_consume(
            &queue,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await
        .expect("consume");
    let client = client_for(&queue).await;
    let before = rpc_wire::deadline::unix_millis(SystemTime::now());
    let call = tokio::spawn({
        let client = client.clone();
        let queue = queue.clone();
        async move {
            client
                .call_raw_with(&queue, "1", CallOptions::timeout(Duration::from_secs(5)))
                .await
        }
    });
    let request = within("request", STEP, spy.recv()).await.expect("request");
    let props = &request.properties;
    let expiration: u64 = props
        .expiration
        .as_ref()
        .and_then(|e| e.as_str())
        .and_then(|e| e.parse().ok())
        .expect("a numeric expiration");
    assert!(
        (4_000..=5_000).contains(&expiration),
        "expiration {expiration}"
    );
    let deadline = deadline_of(props).expect("x-deadline");
    assert!(
        (before + 4_000..=before + 6_000).contains(&deadline),
        "x-deadline {deadline}, sent at about {before}"
    );
    let headers = props.headers.as_ref().unwrap();
    assert!(matches!(
        headers.lookup("x-deadline"),
        Some(amqp_client::FieldValue::LongLongInt(_))
    ));
    let trace = traceparent_of(props).expect("a valid traceparent");
    assert_eq!(trace.flags, 1);
    call.abort();
}

/// A request whose deadline passed while it waited is never started: acked, counted, no reply.
#[tokio::test]
async fn an_expired_request_is_never_started() {
    require_broker();
    let queue = unique("rpc-expired");
    let _guard = QueueGuard(queue.clone());
    let started = Arc::new(AtomicU32::new(0));
    let server = serve(RpcServer::builder().queue(&queue), {
        let started = started.clone();
        move |_req: Request| {
            started.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, ReplyError>("done") }
        }
    })
    .await;
    let (_conn, ch) = raw_channel().await;
    let reply_queue = ch
        .queue_declare(
            "",
            amqp_client::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .queue;
    let past = rpc_wire::deadline::unix_millis(SystemTime::now()) - 1_000;
    let props = BasicProperties::default()
        .with_reply_to(reply_queue.as_str())
        .with_correlation_id("late-1")
        .with_headers(FieldTable::new().with("x-deadline", past));
    ch.basic_publish("", &queue, BasicPublishOptions::default(), &props, b"1")
        .await
        .unwrap();
    let t = Instant::now();
    while server.stats.expired() == 0 {
        assert!(t.elapsed() < STEP, "the expired request was not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(started.load(Ordering::SeqCst), 0, "the handler ran");
    assert_eq!(server.stats.answered() + server.stats.errors(), 0);
    // No reply, and the request is gone from the queue (acked, not requeued).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = ch
        .basic_get(&reply_queue, amqp_client::BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    assert!(got.is_none(), "an expired request was answered");
    server.stop().await.expect("clean stop");
    let (_c, ch2) = raw_channel().await;
    let left = ch2
        .queue_declare(
            &queue,
            amqp_client::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        left.message_count, 0,
        "the expired request went back to the queue"
    );
}

/// A handler still running at the request's deadline is cancelled: its future is dropped (a
/// drop guard sees it), the caller's timeout is the only answer, nothing is sent late.
#[tokio::test]
async fn a_running_handler_is_cancelled_at_the_deadline() {
    require_broker();
    let queue = unique("rpc-cancel");
    let _guard = QueueGuard(queue.clone());
    struct Dropped(Arc<AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let server = serve(RpcServer::builder().queue(&queue), {
        let dropped = dropped.clone();
        move |_req: Request| {
            let guard = Dropped(dropped.clone());
            async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                drop(guard);
                Ok::<_, ReplyError>("too late")
            }
        }
    })
    .await;
    let client = client_for(&queue).await;
    let t = Instant::now();
    let err = within(
        "call",
        STEP,
        client.call_raw_with(
            &queue,
            "1",
            CallOptions::timeout(Duration::from_millis(300)),
        ),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
    while server.stats.expired() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "not cancelled at its deadline"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler's future was not dropped"
    );
    assert_eq!(server.stats.answered(), 0);
    // The server is free again at once: a new call is answered (the prefetch of 1 was freed).
    let server_free = client
        .call_raw_with(
            &queue,
            "1",
            CallOptions::timeout(Duration::from_millis(300)),
        )
        .await;
    assert!(
        matches!(server_free, Err(RpcError::Timeout { .. })),
        "handler sleeps again"
    );
    assert_eq!(
        client.dropped_replies(),
        0,
        "a reply came after the deadline"
    );
    server.stop().await.expect("clean stop");
}

/// Dropping a call's future cancels the call: nothing is left pending.
#[tokio::test]
async fn a_dropped_call_leaves_nothing_pending() {
    require_broker();
    let queue = unique("rpc-dropped");
    let _guard = QueueGuard(queue.clone());
    let (_conn, ch) = raw_channel().await;
    declare(&ch, &queue).await;
    let client = client_for(&queue).await;
    let call = client.call_raw(&queue, "1");
    let _ = tokio::time::timeout(Duration::from_millis(100), call).await;
    assert_eq!(client.in_flight(), 0);
}

/// JSON both ways: the Fibonacci server answers JSON with JSON, errors included.
#[tokio::test]
async fn json_calls_to_the_fibonacci_server() {
    require_broker();
    let queue = unique("rpc-json");
    let _guard = QueueGuard(queue.clone());
    let server = serve(RpcServer::builder().queue(&queue), FibService::new()).await;
    let client = client_for(&queue).await;
    let reply: FibReply = client
        .call_json(&queue, &FibRequest { n: 100 })
        .await
        .expect("answer");
    assert_eq!(
        reply,
        FibReply {
            n: 100,
            fib: "354224848179261915075".into()
        }
    );
    // A reply that is not the type asked for is a typed error naming the type.
    let err = client
        .call_json::<_, Vec<u32>>(&queue, &FibRequest { n: 1 })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::UnexpectedReply { expected, .. } if expected.contains("Vec<u32>")),
        "{err:?}"
    );
    // A JSON request the server cannot take: x-error, and the message from the JSON error body.
    let err = client
        .call_json::<_, FibReply>(&queue, &serde_json::json!({"n": "thirty"}))
        .await
        .unwrap_err();
    match err {
        RpcError::Server { code, message } => {
            assert_eq!(code, ErrorCode::BadRequest);
            assert!(message.contains("not the JSON expected"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A plain-text reply to a JSON call is refused by content type.
    let plain_queue = unique("rpc-plain");
    let _g2 = QueueGuard(plain_queue.clone());
    let plain = serve(
        RpcServer::builder().queue(&plain_queue),
        |_r: Request| async { Ok::<_, ReplyError>("42") },
    )
    .await;
    let err = client
        .call_json::<_, FibReply>(&plain_queue, &FibRequest { n: 1 })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::UnexpectedReply { found, .. } if found.contains("without a content type")),
        "{err:?}"
    );
    // Plain text still works as before.
    assert_eq!(client.call_raw(&queue, "30").await.unwrap(), "832040");
    server.stop().await.expect("clean stop");
    plain.stop().await.expect("clean stop");
}

/// Any service in JSON: `json_handler` on the server, `call_json` on the client.
#[tokio::test]
async fn json_handler_and_call_json() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    require_broker();
    let queue = unique("rpc-add");
    let _guard = QueueGuard(queue.clone());
    let server = serve(
        RpcServer::builder().queue(&queue),
        json_handler(|r: Add| async move {
            r.a.checked_add(r.b)
                .ok_or_else(|| ReplyError::new(ErrorCode::BadRequest, "overflow"))
        }),
    )
    .await;
    let client = client_for(&queue).await;
    let sum: i64 = client
        .call_json(&queue, &Add { a: 2, b: 40 })
        .await
        .unwrap();
    assert_eq!(sum, 42);
    let err = client
        .call_json::<_, i64>(&queue, &Add { a: i64::MAX, b: 1 })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::Server { code: ErrorCode::BadRequest, message } if message == "overflow"),
        "{err:?}"
    );
    server.stop().await.expect("clean stop");
}

/// The server continues the caller's trace: the reply carries the same trace id and the
/// server's own span; a call the handler makes continues it too.
#[tokio::test]
async fn the_trace_goes_through_and_comes_back() {
    require_broker();
    let inner_queue = unique("rpc-trace-inner");
    let outer_queue = unique("rpc-trace-outer");
    let _g1 = QueueGuard(inner_queue.clone());
    let _g2 = QueueGuard(outer_queue.clone());
    // The inner server answers with the trace id it saw.
    let inner = serve(
        RpcServer::builder().queue(&inner_queue),
        |req: Request| async move {
            let tp = traceparent_of(&req.properties).map(|t| t.trace_id_hex());
            Ok::<_, ReplyError>(tp.unwrap_or_default())
        },
    )
    .await;
    // The outer server calls the inner one from its handler and answers with that.
    let nested = client_for(&inner_queue).await;
    let outer = serve(RpcServer::builder().queue(&outer_queue), {
        move |_req: Request| {
            let nested = nested.clone();
            async move {
                nested
                    .call_raw(nested.queue(), "x")
                    .await
                    .map_err(ReplyError::handler)
            }
        }
    })
    .await;
    let client = client_for(&outer_queue).await;
    let mine = rpc_wire::trace::new_trace();
    let options = CallOptions {
        trace: Some(mine),
        ..Default::default()
    };
    let reply = client
        .call_raw_with(&outer_queue, "go", options)
        .await
        .unwrap();
    // The nested call, made inside the outer handler, carried the caller's trace id.
    assert_eq!(reply.body, mine.trace_id_hex());
    let back = traceparent_of(&reply.properties).expect("the reply carries the trace");
    assert_eq!(back.trace_id, mine.trace_id);
    assert_ne!(back.span_id, mine.span_id, "the server names its own span");
    inner.stop().await.expect("clean stop");
    outer.stop().await.expect("clean stop");
}

/// A request from another library that sends `traceparent` keeps its trace id in the reply.
#[tokio::test]
async fn a_foreign_traceparent_is_continued() {
    require_broker();
    let queue = unique("rpc-trace-foreign");
    let _guard = QueueGuard(queue.clone());
    let server = serve(RpcServer::builder().queue(&queue), FibService::new()).await;
    let (_conn, ch) = raw_channel().await;
    let reply_queue = ch
        .queue_declare(
            "",
            amqp_client::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .queue;
    let mut replies = ch
        .basic_consume(
            &reply_queue,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let theirs = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let props = BasicProperties::default()
        .with_reply_to(reply_queue.as_str())
        .with_correlation_id("foreign-1")
        .with_headers(FieldTable::new().with("traceparent", theirs));
    ch.basic_publish("", &queue, BasicPublishOptions::default(), &props, b"10")
        .await
        .unwrap();
    let reply = within("reply", STEP, replies.recv()).await.unwrap();
    assert_eq!(&reply.body[..], b"55");
    let back = traceparent_of(&reply.properties).expect("traceparent in the reply");
    let sent = TraceParent::parse(theirs.as_bytes()).unwrap();
    assert_eq!(back.trace_id, sent.trace_id);
    assert_ne!(back.span_id, sent.span_id);
    server.stop().await.expect("clean stop");
}
