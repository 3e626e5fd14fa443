//! The caller and the worker against the real broker: the tutorial's round trip, its wire shape,
//! many calls in flight, duplicate and late replies, direct reply-to.

mod common;

use std::time::Duration;

use amqp_client::{BasicConsumeOptions, BasicProperties};
use common::*;
use rpc_client::{RpcClient, RpcError};
use rpc_server::{fib::fib, FibService, RpcServer};

#[tokio::test]
async fn fib_round_trip_is_exact() {
    require_broker();
    let queue = unique("rpc-fib");
    let _guard = QueueGuard(queue.clone());
    let server = serve(RpcServer::builder().queue(&queue), FibService::new()).await;
    let client = fib_client(&queue).await;

    assert_eq!(
        within("fib(30)", STEP, client.call(30)).await.unwrap(),
        832_040u64
    );
    assert_eq!(within("fib(0)", STEP, client.call(0)).await.unwrap(), 0u64);
    let f93 = within("fib(93)", STEP, client.call(93)).await.unwrap();
    assert_eq!(f93.to_u64(), Some(12_200_160_415_121_876_738));
    let f94 = within("fib(94)", STEP, client.call(94)).await.unwrap();
    assert_eq!(f94.to_u64(), None, "fib(94) does not fit a u64");
    let big = within("fib(100000)", STEP, client.call(100_000))
        .await
        .unwrap();
    assert_eq!(big.0, fib(100_000));
    assert_eq!(big.to_string().len(), 20_899);

    client.rpc().close().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn requests_have_the_tutorials_wire_shape_and_duplicates_are_dropped() {
    require_broker();
    let queue = unique("rpc-shape");
    let _guard = QueueGuard(queue.clone());
    let (_conn, ch) = raw_channel().await;
    declare(&ch, &queue).await;
    let mut requests = ch
        .basic_consume(
            &queue,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let client = client(&queue).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call("30").await }
    });

    let request = within("request", STEP, requests.recv()).await.unwrap();
    assert_eq!(request.exchange, "", "default exchange");
    assert_eq!(request.routing_key, queue.as_str());
    assert_eq!(&request.body[..], b"30");
    let reply_to = request.properties.reply_to.clone().expect("reply_to");
    assert!(
        reply_to.to_string().starts_with("amq.gen-"),
        "server-named: {reply_to}"
    );
    assert_eq!(reply_to.to_string(), client.reply_to());
    let id = request
        .properties
        .correlation_id
        .clone()
        .expect("correlation_id");
    let uuid = uuid::Uuid::parse_str(&id.to_string()).expect("correlation id is a uuid");
    assert_eq!(uuid.get_version_num(), 4);

    // An unknown reply first, then the answer, then the same answer again (a server that
    // crashed after replying and before acking): one is taken, two are dropped.
    let reply_to = reply_to.to_string();
    let unknown = BasicProperties::default().with_correlation_id("not-ours");
    ch.basic_publish(
        "",
        &reply_to,
        amqp_client::BasicPublishOptions::default(),
        &unknown,
        b"1",
    )
    .await
    .unwrap();
    let props = BasicProperties::default().with_correlation_id(id.clone());
    ch.basic_publish(
        "",
        &reply_to,
        amqp_client::BasicPublishOptions::default(),
        &props,
        b"832040",
    )
    .await
    .unwrap();
    ch.basic_publish(
        "",
        &reply_to,
        amqp_client::BasicPublishOptions::default(),
        &props,
        b"832040",
    )
    .await
    .unwrap();
    let answer = within("call", STEP, call).await.unwrap().unwrap();
    assert_eq!(&answer[..], b"832040");
    within("dropped replies", STEP, async {
        while client.dropped_replies() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(client.answered_replies(), 1);
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test]
async fn many_calls_in_flight_over_one_callback_queue() {
    require_broker();
    let queue = unique("rpc-many");
    let _guard = QueueGuard(queue.clone());
    let server = serve(
        RpcServer::builder().queue(&queue).prefetch(16),
        FibService::new(),
    )
    .await;
    let client = fib_client(&queue).await;
    let calls: Vec<_> = (0..300u64)
        .map(|i| {
            let client = client.clone();
            let n = i % 90;
            tokio::spawn(async move { (n, client.call(n).await) })
        })
        .collect();
    for call in calls {
        let (n, answer) = within("call", STEP, call).await.unwrap();
        assert_eq!(answer.unwrap().0, fib(n), "fib({n})");
    }
    assert_eq!(client.rpc().in_flight(), 0);
    assert_eq!(client.rpc().dropped_replies(), 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn direct_reply_to_carries_the_same_calls() {
    require_broker();
    let queue = unique("rpc-direct");
    let _guard = QueueGuard(queue.clone());
    let server = serve(
        RpcServer::builder().queue(&queue).prefetch(8),
        FibService::new(),
    )
    .await;
    let client = within(
        "connect",
        STEP,
        RpcClient::builder()
            .uri(uri())
            .queue(&queue)
            .direct_reply_to(true)
            .connect(),
    )
    .await
    .unwrap();
    assert_eq!(client.reply_to(), "amq.rabbitmq.reply-to");
    let fib_client = rpc_client::FibonacciRpcClient::from(client.clone());
    assert_eq!(
        within("call", STEP, fib_client.call(30)).await.unwrap(),
        832_040u64
    );
    let calls: Vec<_> = (0..50u64)
        .map(|n| {
            let c = fib_client.clone();
            tokio::spawn(async move { (n, c.call(n).await) })
        })
        .collect();
    for call in calls {
        let (n, answer) = within("call", STEP, call).await.unwrap();
        assert_eq!(answer.unwrap().0, fib(n));
    }
    // The NoRoute path works with direct reply-to too.
    let err = within(
        "no route",
        STEP,
        client.call_raw(&unique("rpc-nowhere"), "1"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RpcError::NoRoute { .. }), "{err}");
    server.stop().await.unwrap();
}

#[test]
fn blocking_client_has_the_tutorials_shape() {
    require_broker();
    let queue = unique("rpc-blocking");
    let _guard = QueueGuard(queue.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(serve(RpcServer::builder().queue(&queue), FibService::new()));

    let fibonacci_rpc = rpc_client::blocking::FibonacciRpcClient::with_builder(
        RpcClient::builder().uri(uri()).queue(&queue).timeout(STEP),
    )
    .unwrap();
    let response = fibonacci_rpc.call(30).unwrap();
    assert_eq!(format!("fib(30) is {response}"), "fib(30) is 832040");
    assert_eq!(fibonacci_rpc.call(4).unwrap(), 3u64);
    drop(fibonacci_rpc);

    rt.block_on(server.stop()).unwrap();
}

#[tokio::test]
async fn direct_replies_inline_on_the_consuming_channel() {
    require_broker();
    let queue = unique("rpc-direct-inline");
    let _guard = QueueGuard(queue.clone());
    let server = serve(
        RpcServer::builder()
            .queue(&queue)
            .isolate_direct_replies(false),
        FibService::new(),
    )
    .await;
    let client = within(
        "connect",
        STEP,
        RpcClient::builder()
            .uri(uri())
            .queue(&queue)
            .direct_reply_to(true)
            .connect(),
    )
    .await
    .unwrap();
    let fib_client = rpc_client::FibonacciRpcClient::from(client);
    assert_eq!(
        within("call", STEP, fib_client.call(40)).await.unwrap(),
        102_334_155u64
    );
    server.stop().await.unwrap();
}
