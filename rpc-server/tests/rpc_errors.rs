//! Tutorial six's open questions against the real broker: no server, timeouts and late replies,
//! server errors, and bad input that must never kill, stall or loop the worker.

mod common;

use std::time::{Duration, Instant};

use amqp_client::{BasicConsumeOptions, BasicProperties, QueueDeclareOptions};
use bytes::Bytes;
use common::*;
use rpc_client::{error_code, CallOptions, ErrorCode, RpcError};
use rpc_server::{FibService, ReplyError, Request, RpcServer};

#[tokio::test]
async fn missing_queue_fails_at_once_with_no_route() {
    require_broker();
    let queue = unique("rpc-absent");
    let client = client(&queue).await;
    let started = Instant::now();
    let err = within("call", STEP, client.call_raw(&queue, "30"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            RpcError::NoRoute {
                reply_code: 312,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no server"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a returned request must fail the call at once, not after the timeout"
    );
    // The client is still usable.
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test]
async fn queue_without_consumer_times_out_saying_so() {
    require_broker();
    let queue = unique("rpc-idle");
    let _guard = QueueGuard(queue.clone());
    let (_conn, ch) = raw_channel().await;
    declare(&ch, &queue).await;
    let client = client(&queue).await;
    let err = within(
        "call",
        STEP,
        client.call_raw_with(
            &queue,
            "30",
            CallOptions::timeout(Duration::from_millis(300)),
        ),
    )
    .await
    .unwrap_err();
    match &err {
        RpcError::Timeout {
            consumers, timeout, ..
        } => {
            assert_eq!(*consumers, Some(0));
            assert_eq!(*timeout, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("no server answered"), "{text}");
    assert!(text.contains("0 consumers"), "{text}");
}

#[tokio::test]
async fn a_late_reply_after_the_timeout_is_dropped_and_counted() {
    require_broker();
    let queue = unique("rpc-late");
    let _guard = QueueGuard(queue.clone());
    let (_conn, ch) = raw_channel().await;
    declare(&ch, &queue).await;
    let mut requests = ch
        .basic_consume(&queue, BasicConsumeOptions::default())
        .await
        .unwrap();
    let client = client(&queue).await;
    let err = within(
        "call",
        STEP,
        client.call_raw_with(
            &queue,
            "7",
            CallOptions::timeout(Duration::from_millis(200)),
        ),
    )
    .await
    .unwrap_err();
    // A slow server holds the request (1 consumer): the message says it is busy or stuck.
    assert!(
        matches!(
            err,
            RpcError::Timeout {
                consumers: Some(1),
                ..
            }
        ),
        "{err:?}"
    );
    let request = within("request", STEP, requests.recv()).await.unwrap();
    let reply_to = request.properties.reply_to.clone().unwrap().to_string();
    let props = BasicProperties::default()
        .with_correlation_id(request.properties.correlation_id.clone().unwrap());
    ch.basic_publish(
        "",
        &reply_to,
        amqp_client::BasicPublishOptions::default(),
        &props,
        b"13",
    )
    .await
    .unwrap();
    ch.basic_ack(
        request.delivery_tag,
        amqp_client::BasicAckOptions::default(),
    )
    .unwrap();
    within("late reply counted", STEP, async {
        while client.dropped_replies() < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(client.answered_replies(), 0);
}

#[tokio::test]
async fn server_errors_and_panics_reach_the_caller_typed() {
    require_broker();
    let queue = unique("rpc-fail");
    let _guard = QueueGuard(queue.clone());
    let server = serve(
        RpcServer::builder().queue(&queue),
        |req: Request| async move {
            match &req.body[..] {
                b"fail" => Err(ReplyError::handler("database unavailable")),
                b"io" => Err(std::io::Error::other("disk on fire").into()),
                b"custom" => Err(ReplyError::new(
                    ErrorCode::Other("quota".into()),
                    "over quota",
                )),
                b"panic" => panic!("handler bug"),
                _ => Ok(Bytes::from_static(b"ok")),
            }
        },
    )
    .await;
    let client = client(&queue).await;
    let call = |body: &'static str| {
        let client = client.clone();
        async move { within(body, STEP, client.call(body)).await }
    };
    match call("fail").await.unwrap_err() {
        RpcError::Server { code, message } => {
            assert_eq!(code, ErrorCode::HandlerError);
            assert_eq!(message, "database unavailable");
        }
        other => panic!("{other:?}"),
    }
    let err = call("io").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "server error (handler-error): disk on fire"
    );
    assert!(matches!(
        call("custom").await.unwrap_err(),
        RpcError::Server { code: ErrorCode::Other(c), .. } if c == "quota"
    ));
    match call("panic").await.unwrap_err() {
        RpcError::Server { code, message } => {
            assert_eq!(code, ErrorCode::Internal);
            assert_eq!(message, "the handler panicked: handler bug");
        }
        other => panic!("{other:?}"),
    }
    // The server lives on.
    assert_eq!(&call("hello").await.unwrap()[..], b"ok");
    assert_eq!(server.stats.errors(), 4);
    server.stop().await.unwrap();
}

/// Every kind of bad input gets an error reply and an ack; nothing is requeued; the server goes
/// on serving.
#[tokio::test]
async fn bad_input_is_answered_acked_and_survived() {
    require_broker();
    let queue = unique("rpc-bad");
    let _guard = QueueGuard(queue.clone());
    let server = serve(
        RpcServer::builder().queue(&queue).prefetch(4),
        FibService::new(),
    )
    .await;
    let client = client(&queue).await;
    let huge = Bytes::from(vec![b'9'; 2 << 20]);
    let cases: Vec<(&str, Bytes, ErrorCode, &str)> = vec![
        ("empty", Bytes::new(), ErrorCode::BadRequest, "empty"),
        (
            "text",
            Bytes::from_static(b"thirty"),
            ErrorCode::BadRequest,
            "not a decimal integer",
        ),
        (
            "negative",
            Bytes::from_static(b"-5"),
            ErrorCode::BadRequest,
            "negative",
        ),
        (
            "float",
            Bytes::from_static(b"2.5"),
            ErrorCode::BadRequest,
            "not a decimal integer",
        ),
        (
            "over the bound",
            Bytes::from_static(b"100001"),
            ErrorCode::TooLarge,
            "bound of 100000",
        ),
        (
            "giant number",
            Bytes::from(vec![b'7'; 60]),
            ErrorCode::TooLarge,
            "bound",
        ),
        (
            "not UTF-8",
            Bytes::from_static(b"\xff\xfe"),
            ErrorCode::BadRequest,
            "UTF-8",
        ),
        (
            "long body",
            Bytes::from(vec![b'1'; 65]),
            ErrorCode::TooLarge,
            "too large",
        ),
        (
            "huge body",
            huge,
            ErrorCode::TooLarge,
            "over this server's limit",
        ),
    ];
    for (what, body, want_code, want_text) in cases {
        match within(what, STEP, client.call(body)).await {
            Err(RpcError::Server { code, message }) => {
                assert_eq!(code, want_code, "{what}: {message}");
                assert!(message.contains(want_text), "{what}: {message:?}");
            }
            other => panic!("{what}: expected a server error, got {other:?}"),
        }
    }

    // Requests the client library would never send, by hand.
    let (_conn, ch) = raw_channel().await;
    let reply_queue = ch
        .queue_declare(
            "",
            QueueDeclareOptions {
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
    // No correlation_id: an error reply (which nobody can match, but a person can read).
    let props = BasicProperties::default().with_reply_to(reply_queue.as_str());
    ch.basic_publish(
        "",
        &queue,
        amqp_client::BasicPublishOptions::default(),
        &props,
        b"30",
    )
    .await
    .unwrap();
    let reply = within("reply", STEP, replies.recv()).await.unwrap();
    assert_eq!(error_code(&reply.properties), Some(ErrorCode::BadRequest));
    assert!(reply.properties.correlation_id.is_none());
    assert!(String::from_utf8_lossy(&reply.body).contains("correlation_id"));
    // No reply_to: nowhere to answer; acked and dropped.
    let props = BasicProperties::default().with_correlation_id("lost");
    ch.basic_publish(
        "",
        &queue,
        amqp_client::BasicPublishOptions::default(),
        &props,
        b"30",
    )
    .await
    .unwrap();
    within("unanswerable counted", STEP, async {
        while server.stats.unanswerable() < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // Still serving, and nothing left behind: every bad request was acked, none requeued.
    let fib = rpc_client::FibonacciRpcClient::from(client.clone());
    assert_eq!(
        within("fib(30)", STEP, fib.call(30)).await.unwrap(),
        832_040u64
    );
    let depth = ch
        .queue_declare(
            &queue,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(depth.message_count, 0, "no request was requeued");
    assert_eq!(server.stats.errors(), 10);
    assert_eq!(server.stats.unanswerable(), 1);
    server.stop().await.unwrap();
}

/// `reply_to` values that are not a queue: the broker's direct reply-to pseudo-queue itself,
/// forged direct reply-to addresses (RabbitMQ 3.10 closes the connection that publishes to one
/// with 541 INTERNAL_ERROR), a queue that does not exist. Answering them must cost the server
/// neither its consumer nor a redelivery loop.
#[tokio::test]
async fn hostile_reply_to_does_not_kill_the_server() {
    require_broker();
    let queue = unique("rpc-hostile");
    let _guard = QueueGuard(queue.clone());
    let server = serve(RpcServer::builder().queue(&queue), FibService::new()).await;
    let (conn, _) = raw_channel().await;
    for reply_to in [
        "amq.rabbitmq.reply-to",
        "amq.rabbitmq.reply-to.g1hkABFyYWJiaXRAbG9jYWxob3N0AAAAAAAAAAAAAAAA.bogus",
        "amq.rabbitmq.reply-to.garbage",
        "amq.rabbitmq.reply-to.YWJj.def",
        "amq.rabbitmq.reply-to.g1h2AA1yZXBseUAxMTExMTExAABFxgAAAABrBkIA.0H/7Px8WDzjPO20GvZZsHQ==",
        "no-such-queue-anywhere",
    ] {
        let props = BasicProperties::default()
            .with_reply_to(reply_to)
            .with_correlation_id("hostile");
        // RabbitMQ itself refuses some of these at publish time (closing the publisher's
        // channel with 406), so each goes on a channel of its own, which is closed from this
        // side only if the broker did not close it.
        let ch = within("channel", STEP, conn.open_channel()).await.unwrap();
        ch.basic_publish(
            "",
            &queue,
            amqp_client::BasicPublishOptions::default(),
            &props,
            b"10",
        )
        .await
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_millis(300);
        while ch.status().is_ok() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if ch.status().is_ok() {
            within("close", STEP, ch.close()).await.unwrap();
        }
    }
    let client = fib_client(&queue).await;
    let answer = within("call after hostile requests", STEP, client.call(30)).await;
    assert_eq!(answer.unwrap(), 832_040u64);
    // A channel error caused by one of those replies would arrive asynchronously: ask again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = within("second call", STEP, client.call(31)).await;
    assert_eq!(answer.unwrap(), 1_346_269u64);
    // At least the request to a missing queue reached the server and was answered.
    assert!(server.stats.answered() >= 3, "{}", server.stats.answered());
    // Nothing was left unacked to be redelivered in a loop.
    let (_conn, ch) = raw_channel().await;
    let depth = ch
        .queue_declare(
            &queue,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(depth.message_count, 0);
    server.stop().await.unwrap();
}

/// Replies are matched on the connection's reader task; when the reply consumer ends (here: the
/// broker cancels it because its queue was deleted) every waiting call must fail at once with the
/// reason, not sit until its timeout, and later calls must fail at once too.
#[tokio::test]
async fn a_lost_reply_queue_fails_waiting_and_later_calls_at_once() {
    require_broker();
    let queue = unique("rpc-noreply");
    let _guard = QueueGuard(queue.clone());
    let (_conn, ch) = raw_channel().await;
    declare(&ch, &queue).await;
    let client = client(&queue).await;
    let waiting = tokio::spawn({
        let client = client.clone();
        let queue = queue.clone();
        async move { client.call_raw(&queue, "30").await }
    });
    within("call registered", STEP, async {
        while client.in_flight() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The reply queue is exclusive: only the client's own connection may delete it.
    let own = client.connection().open_channel().await.unwrap();
    let started = Instant::now();
    own.queue_delete(
        client.reply_to(),
        amqp_client::QueueDeleteOptions::default(),
    )
    .await
    .unwrap();
    let err = within("waiting call fails", STEP, waiting)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed after {:?}: the call waited for its timeout",
        started.elapsed()
    );
    assert!(
        matches!(&err, RpcError::ConnectionLost(e) if e.to_string().contains("cancel")),
        "{err:?}"
    );
    let later = within("later call", STEP, client.call_raw(&queue, "1"))
        .await
        .unwrap_err();
    assert!(matches!(later, RpcError::ConnectionLost(_)), "{later:?}");
    assert_eq!(client.in_flight(), 0);
}

/// Many calls timing out at once ask the broker for the queue's consumer count on one shared
/// probe channel: the client's connection keeps a handful of channels, not one per stalled call.
#[tokio::test]
async fn timed_out_calls_share_one_probe_channel() {
    require_broker();
    let queue = unique("rpc-stalled");
    let _guard = QueueGuard(queue.clone());
    let (_conn, ch) = raw_channel().await;
    declare(&ch, &queue).await;
    let name = unique("probe");
    let client = within(
        "client connect",
        STEP,
        rpc_client::RpcClient::builder()
            // A low channel_max: one channel per probe would run out and report nothing.
            .uri(format!("{}?connection_name={name}&channel_max=4", uri()))
            .queue(&queue)
            .connect(),
    )
    .await
    .expect("client");
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            let queue = queue.clone();
            tokio::spawn(async move {
                client
                    .call_raw_with(
                        &queue,
                        "1",
                        CallOptions::timeout(Duration::from_millis(200)),
                    )
                    .await
            })
        })
        .collect();
    for call in calls {
        let err = within("stalled call", STEP, call)
            .await
            .expect("task")
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
    let listed = rabbitmqctl(&["-q", "list_connections", "client_properties", "channels"]);
    let line = listed
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("connection {name} not listed:\n{listed}"));
    let channels: u32 = line
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no channel count in {line}"));
    // The call channel and the probe channel.
    assert!(
        channels <= 2,
        "{channels} channels after 50 timed-out calls: {line}"
    );
}

fn rabbitmqctl(args: &[&str]) -> String {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = if root {
        std::process::Command::new("rabbitmqctl")
    } else {
        let mut c = std::process::Command::new("sudo");
        c.arg("rabbitmqctl");
        c
    };
    let out = cmd.args(args).output().expect("run rabbitmqctl");
    assert!(out.status.success(), "rabbitmqctl {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
