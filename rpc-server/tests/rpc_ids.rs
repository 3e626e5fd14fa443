//! Identifiers are bytes end to end (issue: the Erlang tutorial client's 16-byte binary
//! correlation ids were answered with no id at all), and a server takes the request queue it
//! finds: another tutorial may have declared `rpc_queue` durable or as a quorum queue first.

mod common;

use std::time::Duration;

use amqp_client::{
    BasicConsumeOptions, BasicProperties, Channel, Consumer, FieldTable, QueueDeclareOptions,
};
use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use rpc_client::{CorrelationIds, RpcClient};
use rpc_server::{FibService, ReplyError, Request, RpcServer};

/// A hand-made caller: an exclusive callback queue consumed with auto-ack on `ch`.
async fn callback_queue(ch: &Channel) -> (String, Consumer) {
    let queue = within(
        "declare callback queue",
        STEP,
        ch.queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
        ),
    )
    .await
    .expect("declare callback queue")
    .queue;
    let consumer = within(
        "consume callback queue",
        STEP,
        ch.basic_consume(
            &queue,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        ),
    )
    .await
    .expect("consume");
    (queue, consumer)
}

/// Publishes `body` to `queue` with `correlation_id` = `id` and returns the reply's properties
/// and body.
async fn round_trip(
    ch: &Channel,
    consumer: &mut Consumer,
    queue: &str,
    reply_to: &str,
    id: &[u8],
    body: &[u8],
) -> (BasicProperties, Bytes) {
    let props = BasicProperties::default()
        .with_reply_to(reply_to)
        .with_correlation_id(id);
    ch.basic_publish(
        "",
        queue,
        amqp_client::BasicPublishOptions::default(),
        &props,
        body,
    )
    .await
    .expect("publish");
    let reply = within("reply", STEP, consumer.recv())
        .await
        .expect("reply delivered");
    (reply.properties, reply.body)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary byte strings of 0..=255 bytes as correlation ids come back byte for byte
    /// through the real broker and our server, with the right answer.
    #[test]
    fn any_correlation_id_is_echoed_exactly(id in proptest::collection::vec(any::<u8>(), 0..=255), n in 0u64..40) {
        require_broker();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let queue = unique("rpc-ids");
            let _guard = QueueGuard(queue.clone());
            let server = serve(RpcServer::builder().queue(&queue), FibService::new()).await;
            let (conn, ch) = raw_channel().await;
            let (reply_to, mut consumer) = callback_queue(&ch).await;
            let (props, body) = round_trip(&ch, &mut consumer, &queue, &reply_to, &id, n.to_string().as_bytes()).await;
            assert_eq!(props.correlation_id.as_ref().map(|s| s.as_bytes()), Some(&id[..]), "correlation id changed in the reply");
            assert_eq!(body, rpc_server::fib::fib_decimal(n));
            assert!(props.headers.is_none(), "a success reply carries no x-error");
            server.stop().await.expect("server stops cleanly");
            let _ = conn.close().await;
        });
    }
}

/// The Erlang tutorial client's id (16 raw bytes of a uuid), the extremes, and an error reply:
/// the id is echoed on error replies too, so the caller can match them.
#[tokio::test]
async fn binary_ids_on_answers_and_error_replies() {
    require_broker();
    let queue = unique("rpc-ids");
    let _guard = QueueGuard(queue.clone());
    let server = serve(RpcServer::builder().queue(&queue), FibService::new()).await;
    let (_conn, ch) = raw_channel().await;
    let (reply_to, mut consumer) = callback_queue(&ch).await;
    let erlang_style = uuid::Uuid::new_v4();
    let cases: [(&[u8], &[u8], &str); 5] = [
        (erlang_style.as_bytes(), b"30", "832040"),
        (&[0u8; 255], b"10", "55"),
        (&[0xffu8; 255], b"1", "1"),
        (b"", b"2", "1"),
        (&[0x00, 0x1b, b'[', b'3', b'1', b'm', 0x80], b"abc", ""),
    ];
    for (id, body, answer) in cases {
        let (props, reply) = round_trip(&ch, &mut consumer, &queue, &reply_to, id, body).await;
        assert_eq!(
            props.correlation_id.as_ref().map(|s| s.as_bytes()),
            Some(id),
            "correlation id of the reply to {body:?}"
        );
        if answer.is_empty() {
            assert_eq!(
                rpc_client::error_code(&props),
                Some(rpc_client::ErrorCode::BadRequest),
                "{reply:?}"
            );
        } else {
            assert_eq!(reply, answer);
        }
    }
    assert_eq!(server.stats.errors(), 1);
    server.stop().await.expect("server stops cleanly");
}

/// Our client in binary mode sends 16 raw bytes and matches the echo.
#[tokio::test]
async fn our_client_can_send_16_byte_ids() {
    require_broker();
    let queue = unique("rpc-ids");
    let _guard = QueueGuard(queue.clone());
    // The handler answers with what it saw of the id.
    let server = serve(
        RpcServer::builder().queue(&queue).prefetch(8),
        |req: Request| async move {
            let id = req.correlation_id().unwrap_or_default();
            Ok::<_, ReplyError>(format!("{} {}", id.len(), std::str::from_utf8(id).is_ok()))
        },
    )
    .await;
    for (format, expect) in [
        (CorrelationIds::UuidBinary, "16"),
        (CorrelationIds::UuidText, "36 true"),
    ] {
        let client = within(
            "client connect",
            STEP,
            RpcClient::builder()
                .uri(uri())
                .queue(&queue)
                .correlation_ids(format)
                .connect(),
        )
        .await
        .expect("client");
        for _ in 0..20 {
            let reply = within("call", STEP, client.call("x"))
                .await
                .expect("answered");
            let text = String::from_utf8(reply.to_vec()).unwrap();
            // A random 16-byte id is valid UTF-8 only rarely; the length is what matters.
            assert!(text.starts_with(expect), "{format:?}: {text}");
        }
        assert_eq!(client.dropped_replies(), 0);
    }
    server.stop().await.expect("server stops cleanly");
}

/// Another program declared the request queue differently first (durable; a quorum queue; a
/// classic queue with a TTL): the server consumes it as it is and answers.
#[tokio::test]
async fn server_adopts_a_queue_declared_otherwise() {
    require_broker();
    let variants: [(&str, QueueDeclareOptions); 3] = [
        (
            "durable",
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
        ),
        (
            "quorum",
            QueueDeclareOptions {
                durable: true,
                arguments: FieldTable::new().with("x-queue-type", "quorum"),
                ..Default::default()
            },
        ),
        (
            "ttl",
            QueueDeclareOptions {
                arguments: FieldTable::new().with("x-message-ttl", 60_000i32),
                ..Default::default()
            },
        ),
    ];
    for (what, first) in variants {
        let queue = unique(&format!("rpc-adopt-{what}"));
        let _guard = QueueGuard(queue.clone());
        let (conn, ch) = raw_channel().await;
        within("first declaration", STEP, ch.queue_declare(&queue, first))
            .await
            .unwrap_or_else(|e| panic!("declare {what} queue: {e}"));
        // Our default declaration (transient, no arguments) differs from each of these.
        let server = serve(RpcServer::builder().queue(&queue), FibService::new()).await;
        let client = client(&queue).await;
        let answer = within("call", STEP, client.call("30"))
            .await
            .unwrap_or_else(|e| panic!("call through the {what} queue: {e}"));
        assert_eq!(answer, "832040", "{what}");
        server.stop().await.expect("server stops cleanly");
        let _ = conn.close().await;
    }
}

/// The other way round: our server declared the queue first as configured (`--quorum`), and a
/// second server with the default declaration takes it as it is; both answer.
#[tokio::test]
async fn second_server_with_another_declaration_shares_the_queue() {
    require_broker();
    let queue = unique("rpc-adopt-second");
    let _guard = QueueGuard(queue.clone());
    let quorum = QueueDeclareOptions {
        durable: true,
        arguments: FieldTable::new().with("x-queue-type", "quorum"),
        ..Default::default()
    };
    let first = serve(
        RpcServer::builder().queue(&queue).queue_options(quorum),
        FibService::new(),
    )
    .await;
    let second = serve(RpcServer::builder().queue(&queue), FibService::new()).await;
    let client = client(&queue).await;
    for n in 0..40u64 {
        let answer = within("call", STEP, client.call(n.to_string()))
            .await
            .expect("answered");
        assert_eq!(answer, rpc_server::fib::fib_decimal(n));
    }
    let (a, b) = (first.stats.answered(), second.stats.answered());
    assert_eq!(a + b, 40);
    assert!(a > 0 && b > 0, "both servers consume the queue: {a} + {b}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    first.stop().await.expect("first stops");
    second.stop().await.expect("second stops");
}
