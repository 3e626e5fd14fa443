//! The blocking shell against the real broker (and, for what RabbitMQ will not do, a scripted
//! fake one): round trips, deadlines, returns, channel errors, the keeper's heartbeats, consumers
//! giving back what they did not take, threads sharing a connection, and every wait bounded.

mod common;
#[allow(dead_code)]
#[path = "../../tests/support/fake_broker.rs"]
mod fake_broker;

use std::time::{Duration, Instant};

use amqp_client::blocking::{Connection, Incoming};
use amqp_client::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicProperties, BasicPublishOptions,
    BasicQosOptions, Error, QueueDeclareOptions, QueueDeleteOptions,
};
use amqp_codec::{Frame, Method};
use common::{unique, uri, NO_HANG};
use fake_broker::FakeBroker;

fn connect_uri(uri: &str) -> Connection {
    Connection::connect(uri).unwrap_or_else(|e| {
        panic!(
            "cannot reach the test RabbitMQ ({e}); start it with `bash scripts/broker.sh` (it must listen on 127.0.0.1:5672 with guest/guest)"
        )
    })
}

fn connect() -> Connection {
    connect_uri(&uri())
}

fn soon() -> Instant {
    Instant::now() + NO_HANG
}

fn exclusive(ch: &amqp_client::blocking::Channel) -> String {
    ch.queue_declare(
        "",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .expect("declare an exclusive queue")
    .queue
}

#[test]
fn publish_consume_round_trip_of_every_awkward_size() {
    let conn = connect();
    let ch = conn.open_channel().unwrap();
    let queue = exclusive(&ch);
    let mut consumer = ch
        .basic_consume(
            &queue,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .unwrap();
    let frame_max = conn.frame_max() as usize;
    // Empty, one byte, exactly one frame's payload and one more, several frames.
    for size in [0, 1, frame_max - 8, frame_max - 7, 3 * frame_max + 5] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let props = BasicProperties::default().with_correlation_id(format!("n{size}"));
        ch.basic_publish("", &queue, BasicPublishOptions::default(), &props, &body)
            .unwrap();
        let d = consumer
            .next_delivery(soon())
            .unwrap()
            .expect("a delivery before the deadline");
        assert_eq!(d.body.len(), size);
        assert_eq!(&d.body[..], &body[..]);
        assert_eq!(
            d.properties.correlation_id.as_ref().map(|c| c.to_string()),
            Some(format!("n{size}"))
        );
        assert_eq!(&d.consumer_tag, consumer.tag());
    }
    conn.close().unwrap();
    // Everything of a closed connection fails with its reason; nothing hangs.
    let err = consumer.next_delivery(soon()).unwrap_err();
    assert!(
        matches!(err, Error::ConnectionClosed { code: 200, .. }),
        "{err}"
    );
    assert!(ch
        .queue_declare("", QueueDeclareOptions::default())
        .is_err());
}

#[test]
fn a_delivery_wait_ends_at_its_deadline() {
    let conn = connect();
    let ch = conn.open_channel().unwrap();
    let queue = exclusive(&ch);
    let mut consumer = ch
        .basic_consume(&queue, BasicConsumeOptions::default())
        .unwrap();
    let t = Instant::now();
    let got = consumer
        .next_delivery(t + Duration::from_millis(300))
        .unwrap();
    let waited = t.elapsed();
    assert!(got.is_none());
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // A deadline already passed looks once and returns.
    assert!(consumer.next_delivery(Instant::now()).unwrap().is_none());
    // And the connection is still fine.
    ch.basic_publish(
        "",
        &queue,
        BasicPublishOptions::default(),
        &BasicProperties::default(),
        b"late",
    )
    .unwrap();
    let d = consumer.next_delivery(soon()).unwrap().unwrap();
    assert_eq!(&d.body[..], b"late");
    ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .unwrap();
}

#[test]
fn unroutable_mandatory_messages_come_back_beside_deliveries() {
    let conn = connect();
    let ch = conn.open_channel().unwrap();
    let queue = exclusive(&ch);
    let mut returns = ch.returns();
    let mut consumer = ch
        .basic_consume(
            &queue,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .unwrap();
    let nowhere = unique("nowhere");
    let props = BasicProperties::default().with_correlation_id("r1");
    ch.basic_publish("", &nowhere, BasicPublishOptions::mandatory(), &props, b"x")
        .unwrap();
    match consumer.next_with_returns(&mut returns, soon()).unwrap() {
        Some(Incoming::Returned(r)) => {
            assert_eq!(r.reply_code, 312, "{}", r.reply_text);
            assert_eq!(r.routing_key.to_string(), nowhere);
            assert_eq!(&r.body[..], b"x");
        }
        other => panic!("expected the returned message, got {other:?}"),
    }
    ch.basic_publish("", &queue, BasicPublishOptions::mandatory(), &props, b"y")
        .unwrap();
    match consumer.next_with_returns(&mut returns, soon()).unwrap() {
        Some(Incoming::Delivery(d)) => assert_eq!(&d.body[..], b"y"),
        other => panic!("expected the delivery, got {other:?}"),
    }
    // Without a listener a return is dropped, and nothing else is disturbed.
    drop(returns);
    ch.basic_publish("", &nowhere, BasicPublishOptions::mandatory(), &props, b"z")
        .unwrap();
    ch.basic_publish("", &queue, BasicPublishOptions::default(), &props, b"w")
        .unwrap();
    let d = consumer.next_delivery(soon()).unwrap().unwrap();
    assert_eq!(&d.body[..], b"w");
}

#[test]
fn a_channel_error_closes_only_that_channel() {
    let conn = connect();
    let ch = conn.open_channel().unwrap();
    let missing = unique("missing");
    let err = ch
        .queue_declare(
            &missing,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::ChannelClosed { code: 404, .. }),
        "{err}"
    );
    // Later calls on it get the same reason without touching the wire.
    let again = ch.queue_purge(&missing).unwrap_err();
    assert!(
        matches!(again, Error::ChannelClosed { code: 404, .. }),
        "{again}"
    );
    assert!(ch.status().is_err());
    // The connection and a new channel (the number reused) are fine.
    let ch2 = conn.open_channel().unwrap();
    assert_eq!(ch2.id(), ch.id());
    let q = exclusive(&ch2);
    assert_eq!(
        ch2.queue_delete(&q, QueueDeleteOptions::default()).unwrap(),
        0
    );
    ch2.close().unwrap();
    // Closing twice is a no-op.
    ch2.close().unwrap();
    assert!(conn.error().is_none());
}

#[test]
fn get_qos_and_a_dropped_consumer_gives_back_what_it_did_not_take() {
    let conn = connect();
    let ch = conn.open_channel().unwrap();
    let queue = exclusive(&ch);
    for i in 0..3u8 {
        ch.basic_publish(
            "",
            &queue,
            BasicPublishOptions::default(),
            &BasicProperties::default(),
            &[i],
        )
        .unwrap();
    }
    ch.basic_qos(10, BasicQosOptions::default()).unwrap();
    let mut consumer = ch
        .basic_consume(&queue, BasicConsumeOptions::default())
        .unwrap();
    let first = consumer.next_delivery(soon()).unwrap().unwrap();
    assert_eq!(&first.body[..], &[0]);
    ch.basic_ack(first.delivery_tag, BasicAckOptions::default())
        .unwrap();
    // Taking the second means the third is kept for the consumer too (prefetch 10, one
    // read); dropping the consumer gives back the one it had not taken (requeued), where
    // basic.get finds it. The second, taken and not acked, stays the channel's until it closes.
    let second = consumer.next_delivery(soon()).unwrap().unwrap();
    assert_eq!(&second.body[..], &[1]);
    drop(consumer);
    let deadline = soon();
    let left = loop {
        match ch
            .basic_get(&queue, BasicGetOptions { no_ack: true })
            .unwrap()
        {
            Some(m) => break m.delivery.body[0],
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => panic!("the delivery the consumer did not take was not given back"),
        }
    };
    assert_eq!(left, 2);
    assert!(ch
        .basic_get(&queue, BasicGetOptions { no_ack: true })
        .unwrap()
        .is_none());
    // Closing the channel gives back the taken, unacked one.
    ch.close().unwrap();
    let ch = conn.open_channel().unwrap();
    let again = ch
        .basic_get(&queue, BasicGetOptions { no_ack: true })
        .unwrap()
        .expect("the unacked delivery is back after the channel closed");
    assert_eq!(&again.delivery.body[..], &[1]);
    assert!(again.delivery.redelivered);
}

#[test]
fn the_keeper_keeps_an_idle_connection_alive() {
    // heartbeat=1: the broker closes a connection that sends nothing for two intervals.
    let conn = connect_uri(&format!("{}?heartbeat=1", uri()));
    assert_eq!(conn.heartbeat(), Duration::from_secs(1));
    assert!(conn.has_keeper());
    let ch = conn.open_channel().unwrap();
    let queue = exclusive(&ch);
    // No call for 3.5 intervals: only the keeper reads the broker's heartbeats and sends ours.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(conn.error().is_none(), "{:?}", conn.error());
    let mut consumer = ch
        .basic_consume(
            &queue,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .unwrap();
    // A caller waiting 3.5 intervals drives the heartbeats itself (the keeper stands aside).
    assert!(consumer
        .next_delivery(Instant::now() + Duration::from_millis(3500))
        .unwrap()
        .is_none());
    ch.basic_publish(
        "",
        &queue,
        BasicPublishOptions::default(),
        &BasicProperties::default(),
        b"alive",
    )
    .unwrap();
    assert_eq!(
        &consumer.next_delivery(soon()).unwrap().unwrap().body[..],
        b"alive"
    );
    conn.close().unwrap();
}

#[test]
fn without_heartbeats_there_is_no_keeper() {
    // RabbitMQ never agrees to no heartbeats (0 takes its 60 s); a broker proposing 0 does.
    let broker = FakeBroker::start(|mut peer| {
        if peer.handshake(0).is_some() {
            peer.silence();
        }
    });
    let conn = connect_uri(&format!("{}?heartbeat=0", broker.uri()));
    assert_eq!(conn.heartbeat(), Duration::ZERO);
    assert!(!conn.has_keeper());
}

#[test]
fn threads_share_a_connection() {
    let conn = connect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let conn = conn.clone();
            std::thread::spawn(move || {
                let ch = conn.open_channel().unwrap();
                let queue = exclusive(&ch);
                let mut consumer = ch
                    .basic_consume(
                        &queue,
                        BasicConsumeOptions {
                            no_ack: true,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                for i in 0..50u32 {
                    let body = format!("{t}:{i}");
                    ch.basic_publish(
                        "",
                        &queue,
                        BasicPublishOptions::default(),
                        &BasicProperties::default(),
                        body.as_bytes(),
                    )
                    .unwrap();
                    let d = consumer.next_delivery(soon()).unwrap().unwrap();
                    assert_eq!(&d.body[..], body.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a thread failed");
    }
}

#[test]
fn connect_errors_are_typed_and_bounded() {
    // Nothing listens: refused at once.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = Connection::connect(&format!("amqp://guest:guest@127.0.0.1:{port}/%2f")).unwrap_err();
    assert!(matches!(err, Error::ConnectRefused { .. }), "{err}");
    // A wrong password: the broker refuses it.
    let bad = uri().replace("guest:guest", "guest:wrong");
    let err = Connection::connect(&bad).unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    // A peer that accepts and never answers: the handshake ends at connection_timeout.
    let silent = FakeBroker::start(|mut peer| peer.silence());
    let t = Instant::now();
    let err = Connection::connect(&format!("{}?connection_timeout=700", silent.uri())).unwrap_err();
    assert!(matches!(err, Error::HandshakeTimeout { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_broker_silent_after_the_handshake_is_found_dead() {
    // heartbeat=1: two silent intervals and the client gives up, whichever thread drives it.
    let broker = FakeBroker::start(|mut peer| {
        if peer.handshake(1).is_some() {
            peer.silence();
        }
    });
    let conn = connect_uri(&broker.uri());
    let t = Instant::now();
    let err = conn.open_channel().unwrap_err();
    assert!(matches!(err, Error::HeartbeatTimeout(_)), "{err}");
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());

    // The keeper finds it too, with nobody calling.
    let conn = connect_uri(&broker.uri());
    std::thread::sleep(Duration::from_millis(3000));
    assert!(
        matches!(conn.error(), Some(Error::HeartbeatTimeout(_))),
        "{:?}",
        conn.error()
    );

    // A call timeout bounds a synchronous call below the core's and keeps the connection.
    let broker = FakeBroker::start(|mut peer| {
        if peer.handshake(0).is_some() {
            peer.silence();
        }
    });
    let mut conn = connect_uri(&broker.uri());
    conn.set_call_timeout(Some(Duration::from_millis(300)));
    let t = Instant::now();
    let err = conn.open_channel().unwrap_err();
    assert!(
        matches!(&err, Error::ReplyTimeout { method, .. } if method == "channel.open"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(conn.error().is_none());
}

#[test]
fn drop_closes_cleanly() {
    let (tx, rx) = std::sync::mpsc::channel();
    let broker = FakeBroker::start(move |mut peer| {
        if peer.handshake(0).is_none() {
            return;
        }
        // What the client sends when its last handle goes: connection.close (200), then it
        // waits for close-ok and ends the stream.
        let close = peer.method();
        peer.send(Frame::Method(0, amqp_codec::ConnectionCloseOk {}.into()));
        let eof = peer.recv().is_none();
        let _ = tx.send((close, eof));
    });
    let conn = connect_uri(&broker.uri());
    let t = Instant::now();
    drop(conn);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let (close, eof) = rx
        .recv_timeout(NO_HANG)
        .expect("the fake broker saw nothing");
    match close {
        Some((0, Method::ConnectionClose(c))) => assert_eq!(c.reply_code, 200),
        other => panic!("expected connection.close, got {other:?}"),
    }
    assert!(eof, "the client did not end the stream after close-ok");
}
