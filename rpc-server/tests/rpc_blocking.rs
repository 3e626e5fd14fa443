//! The blocking RPC client (on `amqp-client`'s blocking shell, no runtime inside) against our
//! server and the real broker, and against a scripted fake broker for the deaths RabbitMQ will
//! not stage: every reply mode and id format, no route, timeouts, late and duplicate replies,
//! a dead broker, an idle client kept alive by heartbeats, threads taking turns, a clean drop.

mod common;
#[allow(dead_code)]
#[path = "../../tests/support/fake_broker.rs"]
mod fake_broker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_client::{BasicConsumeOptions, BasicProperties, QueueDeclareOptions};
use amqp_codec::{
    BasicConsumeOk, BasicDeliver, BasicProperties as Props, ChannelOpenOk, ConnectionBlocked,
    ConnectionUnblocked, Frame, Method, QueueDeclareOk,
};
use common::*;
use fake_broker::{FakeBroker, Peer};
use rpc_client::blocking::{FibonacciRpcClient, RpcClient as BlockingRpcClient};
use rpc_client::{CorrelationIds, ErrorCode, ReplyMode, RpcClient, RpcError};
use rpc_server::fib::fib_decimal;
use rpc_server::{FibService, RpcServer};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn blocking_client(queue: &str, mode: ReplyMode, ids: CorrelationIds) -> BlockingRpcClient {
    BlockingRpcClient::connect(
        RpcClient::builder()
            .uri(uri())
            .queue(queue)
            .timeout(STEP)
            .reply_mode(mode)
            .correlation_ids(ids),
    )
    .expect("blocking client connect")
}

#[test]
fn every_reply_mode_and_id_format_against_our_server() {
    require_broker();
    let rt = runtime();
    let queue = unique("rpc-blocking-modes");
    let _guard = QueueGuard(queue.clone());
    let server = rt.block_on(serve(RpcServer::builder().queue(&queue), FibService::new()));
    for mode in [ReplyMode::CallbackQueue, ReplyMode::DirectReplyTo] {
        for ids in [CorrelationIds::UuidText, CorrelationIds::UuidBinary] {
            let client = blocking_client(&queue, mode, ids);
            match mode {
                ReplyMode::CallbackQueue => assert!(client.reply_to().starts_with("amq.gen-")),
                ReplyMode::DirectReplyTo => {
                    assert_eq!(client.reply_to(), rpc_client::DIRECT_REPLY_TO)
                }
            }
            for n in (0..=30).chain([93, 200]) {
                let answer = client.call(n.to_string()).unwrap();
                assert_eq!(
                    answer,
                    fib_decimal(n).as_bytes(),
                    "fib({n}), {mode:?} {ids:?}"
                );
            }
            // A bad request comes back as the server's typed error.
            let err = client.call_raw(&queue, "-1").unwrap_err();
            assert!(
                matches!(
                    &err,
                    RpcError::Server {
                        code: ErrorCode::BadRequest,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert_eq!(client.answered_replies(), 34);
            assert_eq!(client.dropped_replies(), 0);
        }
    }
    rt.block_on(server.stop()).unwrap();
}

#[test]
fn no_route_at_once_and_a_queue_without_server_times_out_saying_so() {
    require_broker();
    let rt = runtime();
    let queue = unique("rpc-blocking-noserver");
    let _guard = QueueGuard(queue.clone());
    let (_conn, ch) = rt.block_on(raw_channel());
    let fib = FibonacciRpcClient::with_builder(
        RpcClient::builder().uri(uri()).queue(&queue).timeout(STEP),
    )
    .unwrap();
    // No queue at all: the broker returns the mandatory request.
    let t = Instant::now();
    let err = fib.call(30).unwrap_err();
    assert!(
        matches!(&err, RpcError::NoRoute { reply_code: 312, queue: q, .. } if *q == queue),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // A queue nobody consumes: the call's own timeout, which says there is no consumer.
    rt.block_on(declare(&ch, &queue));
    let t = Instant::now();
    let err = fib
        .call_timeout(30, Duration::from_millis(300))
        .unwrap_err();
    let waited = t.elapsed();
    assert!(
        matches!(&err, RpcError::Timeout { consumers: Some(0), timeout, .. } if *timeout == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

#[test]
fn late_and_duplicate_replies_are_dropped_and_counted() {
    require_broker();
    let rt = runtime();
    let queue = unique("rpc-blocking-late");
    let _guard = QueueGuard(queue.clone());
    let (_conn, ch) = rt.block_on(raw_channel());
    rt.block_on(declare(&ch, &queue));
    let mut requests = rt
        .block_on(ch.basic_consume(&queue, BasicConsumeOptions::default()))
        .unwrap();
    let client = blocking_client(&queue, ReplyMode::CallbackQueue, CorrelationIds::UuidText);
    // The hand-played server holds the first request past its call's timeout.
    let err = client
        .call_raw_with(
            &queue,
            "7",
            rpc_client::CallOptions::timeout(Duration::from_millis(200)),
        )
        .unwrap_err();
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
    // Then answers it twice (late, and a duplicate), and answers the next call once.
    let server = rt.spawn(async move {
        let mut seen = 0;
        loop {
            let request = within("request", STEP, requests.recv()).await.unwrap();
            // The request carries what the async client's does: its deadline and its trace.
            let p = &request.properties;
            assert!(p.expiration.is_some(), "{p:?}");
            assert!(rpc_wire::deadline::deadline_of(p).is_some(), "{p:?}");
            assert!(rpc_wire::trace::traceparent_of(p).is_some(), "{p:?}");
            let reply_to = request.properties.reply_to.clone().unwrap().to_string();
            let props = BasicProperties::default()
                .with_correlation_id(request.properties.correlation_id.clone().unwrap());
            let copies = if seen == 0 { 2 } else { 1 };
            for _ in 0..copies {
                ch.basic_publish(
                    "",
                    &reply_to,
                    amqp_client::BasicPublishOptions::default(),
                    &props,
                    &request.body,
                )
                .await
                .unwrap();
            }
            ch.basic_ack(
                request.delivery_tag,
                amqp_client::BasicAckOptions::default(),
            )
            .unwrap();
            seen += 1;
            if seen == 2 {
                return ch;
            }
        }
    });
    // Give the late replies time to reach the client's socket before the next call reads it.
    std::thread::sleep(Duration::from_millis(300));
    let answer = client.call_raw(&queue, "8").unwrap();
    assert_eq!(&answer[..], b"8", "the next call got its own reply");
    assert_eq!(client.dropped_replies(), 2);
    // The first reply to the timed-out call is late; the second is a duplicate, unknown.
    assert_eq!(client.late_replies(), 1);
    assert_eq!(client.answered_replies(), 1);
    drop(rt.block_on(server).unwrap());
}

#[test]
fn an_idle_client_survives_three_heartbeat_intervals() {
    require_broker();
    let rt = runtime();
    let queue = unique("rpc-blocking-idle");
    let _guard = QueueGuard(queue.clone());
    let server = rt.block_on(serve(RpcServer::builder().queue(&queue), FibService::new()));
    let fib = FibonacciRpcClient::with_builder(
        RpcClient::builder()
            .uri(format!("{}?heartbeat=1", uri()))
            .queue(&queue)
            .timeout(STEP),
    )
    .unwrap();
    assert_eq!(fib.call(10).unwrap(), 55u64);
    // No call for 3.5 intervals: the broker would close a connection that sent nothing for two.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(fib.rpc().connection().error().is_none());
    assert_eq!(fib.call(20).unwrap(), 6765u64);
    rt.block_on(server.stop()).unwrap();
}

#[test]
fn threads_sharing_a_client_take_turns() {
    require_broker();
    let rt = runtime();
    let queue = unique("rpc-blocking-threads");
    let _guard = QueueGuard(queue.clone());
    let server = rt.block_on(serve(
        RpcServer::builder().queue(&queue).prefetch(8),
        FibService::new(),
    ));
    let client = Arc::new(blocking_client(
        &queue,
        ReplyMode::CallbackQueue,
        CorrelationIds::UuidBinary,
    ));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || {
                for i in 0..25u64 {
                    let n = (t * 25 + i) % 90;
                    assert_eq!(
                        client.call(n.to_string()).unwrap(),
                        fib_decimal(n).as_bytes()
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a calling thread failed");
    }
    assert_eq!(client.answered_replies(), 100);
    assert_eq!(client.dropped_replies(), 0);
    rt.block_on(server.stop()).unwrap();
}

/// The broker's side of the client's set-up: handshake, channel, callback queue, consumer.
fn accept_client(peer: &mut Peer, heartbeat: u16) -> Option<()> {
    peer.handshake(heartbeat)?;
    let (ch, m) = peer.method()?;
    assert!(matches!(m, Method::ChannelOpen(_)), "{m:?}");
    peer.send(Frame::Method(ch, ChannelOpenOk::default().into()));
    let (ch, m) = peer.method()?;
    assert!(matches!(m, Method::QueueDeclare(_)), "{m:?}");
    let ok = QueueDeclareOk {
        queue: "amq.gen-fake".into(),
        message_count: 0,
        consumer_count: 0,
    };
    peer.send(Frame::Method(ch, ok.into()));
    let (ch, m) = peer.method()?;
    assert!(matches!(m, Method::BasicConsume(_)), "{m:?}");
    let ok = BasicConsumeOk {
        consumer_tag: "ctag-fake".into(),
    };
    peer.send(Frame::Method(ch, ok.into()));
    Some(())
}

#[test]
fn a_dead_broker_is_a_typed_error_within_the_timeout() {
    // Nothing listens.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = FibonacciRpcClient::connect(&format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            RpcError::Connection(amqp_client::Error::ConnectRefused { .. })
        ),
        "{err:?}"
    );

    // Accepts and never answers: the set-up ends at the client's timeout.
    let silent = FakeBroker::start(|mut peer| peer.silence());
    let t = Instant::now();
    let err = FibonacciRpcClient::with_builder(
        RpcClient::builder()
            .uri(silent.uri())
            .timeout(Duration::from_millis(800)),
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            RpcError::SetupTimeout {
                waiting_for: "the connection",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // Silent after the handshake: the set-up step it waits for is named.
    let mute = FakeBroker::start(|mut peer| {
        if peer.handshake(60).is_some() {
            peer.silence();
        }
    });
    let err = FibonacciRpcClient::with_builder(
        RpcClient::builder()
            .uri(mute.uri())
            .timeout(Duration::from_millis(800)),
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            RpcError::SetupTimeout {
                waiting_for: "channel.open-ok",
                ..
            }
        ),
        "{err:?}"
    );

    // Goes silent once the request is sent (heartbeat 1 s): the call fails when the client
    // finds the broker dead, long before its own 30 s timeout.
    let dies = FakeBroker::start(|mut peer| {
        if accept_client(&mut peer, 1).is_some() {
            let _publish = peer.method();
            peer.silence();
        }
    });
    let fib = FibonacciRpcClient::connect(&dies.uri()).unwrap();
    let t = Instant::now();
    let err = fib.call(30).unwrap_err();
    assert!(
        matches!(
            &err,
            RpcError::ConnectionLost(amqp_client::Error::HeartbeatTimeout(_))
        ),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    // And every later call fails at once with the same reason.
    let t = Instant::now();
    assert!(matches!(fib.call(1), Err(RpcError::ConnectionLost(_))));
    assert!(t.elapsed() < Duration::from_secs(1));

    // Closes the socket on the request: a typed error at once.
    let cuts = FakeBroker::start(|mut peer| {
        if accept_client(&mut peer, 60).is_some() {
            let _publish = peer.method();
            let _ = peer.stream.shutdown(std::net::Shutdown::Both);
        }
    });
    let fib = FibonacciRpcClient::connect(&cuts.uri()).unwrap();
    let t = Instant::now();
    let err = fib.call(30).unwrap_err();
    assert!(matches!(&err, RpcError::ConnectionLost(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn drop_closes_the_connection_cleanly() {
    // What the broker sees: connection.close (200), then the end of the stream after close-ok.
    let (tx, rx) = std::sync::mpsc::channel();
    let broker = FakeBroker::start(move |mut peer| {
        if accept_client(&mut peer, 60).is_none() {
            return;
        }
        let close = peer.method();
        peer.send(Frame::Method(0, amqp_codec::ConnectionCloseOk {}.into()));
        let eof = peer.recv().is_none();
        let _ = tx.send((close, eof));
    });
    let fib = FibonacciRpcClient::connect(&broker.uri()).unwrap();
    drop(fib);
    let (close, eof) = rx.recv_timeout(STEP).expect("the fake broker saw nothing");
    assert!(
        matches!(&close, Some((0, Method::ConnectionClose(c))) if c.reply_code == 200),
        "{close:?}"
    );
    assert!(eof, "the stream was not ended after close-ok");

    // With the real broker: the exclusive callback queue goes with the connection.
    require_broker();
    let rt = runtime();
    let client = blocking_client(
        "rpc_queue",
        ReplyMode::CallbackQueue,
        CorrelationIds::UuidText,
    );
    let reply_queue = client.reply_to().to_owned();
    drop(client);
    let (_conn, ch) = rt.block_on(raw_channel());
    let gone = rt.block_on(ch.queue_declare(
        &reply_queue,
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
    ));
    assert!(
        matches!(
            &gone,
            Err(amqp_client::Error::ChannelClosed { code: 404, .. })
        ),
        "{gone:?}"
    );
}

/// Heartbeats from the fake broker's side every 250 ms until the socket fails.
fn heartbeats(mut stream: std::net::TcpStream) {
    use std::io::Write;
    while stream.write_all(&[8, 0, 0, 0, 0, 0, 0, 0xce]).is_ok() {
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn calls_wait_out_a_blocked_connection_within_their_deadline() {
    // The broker blocks publishers right after the set-up, unblocks 2 s later, then answers the
    // one request it gets.
    let broker = FakeBroker::start(|mut peer| {
        if accept_client(&mut peer, 1).is_none() {
            return;
        }
        std::thread::spawn({
            let beat = peer
                .stream
                .try_clone()
                .expect("clone the fake broker's socket");
            move || heartbeats(beat)
        });
        let blocked = ConnectionBlocked {
            reason: "low on memory".into(),
        };
        peer.send(Frame::Method(0, blocked.into()));
        std::thread::sleep(Duration::from_millis(2000));
        peer.send(Frame::Method(0, ConnectionUnblocked {}.into()));
        let request = loop {
            match peer.recv() {
                Some(Frame::Header(_, h)) => break h.properties,
                Some(_) => continue,
                None => return,
            }
        };
        let deliver = BasicDeliver {
            consumer_tag: "ctag-fake".into(),
            delivery_tag: 1,
            redelivered: false,
            exchange: "".into(),
            routing_key: "amq.gen-fake".into(),
        };
        let reply = Props::default().with_correlation_id(request.correlation_id.unwrap());
        let mut wire = bytes::BytesMut::new();
        amqp_codec::encode_message(&mut wire, 1, &deliver.into(), &reply, b"55", 131_072)
            .expect("encode the reply");
        peer.send_raw(&wire);
        peer.silence();
    });
    let fib = FibonacciRpcClient::connect(&format!("{}?heartbeat=1", broker.uri())).unwrap();
    // Nobody calls: the keeper reads the broker's connection.blocked.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        fib.rpc().connection().blocked().as_deref(),
        Some("low on memory")
    );
    let t = Instant::now();
    let err = fib
        .call_timeout(10, Duration::from_millis(400))
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::Blocked { reason, .. } if reason == "low on memory"),
        "{err:?}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    // A longer deadline outlasts the alarm: the request goes out once it is lifted.
    let answer = fib.call_timeout(10, Duration::from_secs(10)).unwrap();
    assert_eq!(answer, 55u64);
    assert!(fib.rpc().connection().blocked().is_none());
}

#[test]
fn a_lent_connection_outlives_the_client() {
    require_broker();
    let rt = runtime();
    let queue = unique("rpc-blocking-lent");
    let _guard = QueueGuard(queue.clone());
    let server = rt.block_on(serve(RpcServer::builder().queue(&queue), FibService::new()));
    let connection = amqp_client::blocking::Connection::connect(&uri()).expect("connect");
    let client = BlockingRpcClient::with_connection(
        RpcClient::builder().queue(&queue).timeout(STEP),
        connection.clone(),
    )
    .unwrap();
    assert_eq!(client.call("12").unwrap(), "144");
    drop(client);
    // The client's channel and consumer went with it; the connection is still the caller's.
    assert!(connection.error().is_none());
    let ch = connection.open_channel().unwrap();
    ch.close().unwrap();
    connection.close().unwrap();
    rt.block_on(server.stop()).unwrap();
}
