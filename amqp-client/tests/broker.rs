//! Against the real local RabbitMQ (`bash scripts/broker.sh`): handshake, channels, every
//! operation the RPC layer needs, content of every awkward size, confirms, returns, exceptions.
//! Every test uses uuid-suffixed names and deletes what it declared, so they run in parallel.

mod common;

use std::time::Duration;

use amqp_client::{
    BasicConsumeOptions, BasicProperties, Confirm, Connection, ConnectionConfig, Error,
    ExchangeDeclareOptions, FieldTable, FieldValue, QueueDeclareOptions,
};
use common::{channel, connect, connect_uri, unique, uri, within};

#[tokio::test]
async fn handshake_negotiates_tune_values() {
    let conn = connect().await;
    assert_eq!(conn.frame_max(), 131_072);
    assert_eq!(conn.channel_max(), 2047);
    assert_eq!(conn.heartbeat(), Duration::from_secs(60));
    assert!(matches!(
        conn.server_properties().get("product"),
        Some(FieldValue::LongString(p)) if p.as_str() == Some("RabbitMQ")
    ));
    let small = connect_uri(&format!(
        "{}?frame_max=4096&channel_max=5&heartbeat=0",
        uri()
    ))
    .await;
    assert_eq!(small.frame_max(), 4096);
    assert_eq!(small.channel_max(), 5);
    // 0 is "no preference": the broker's 60 s stands (lower non-zero value).
    assert_eq!(small.heartbeat(), Duration::from_secs(60));
    small.close().await.unwrap();
    conn.close().await.unwrap();
    assert!(conn.is_terminated());
}

#[tokio::test]
async fn heartbeats_are_negotiated_and_exchanged() {
    let name = unique("heartbeat");
    let conn = connect_uri(&format!("{}?heartbeat=2&connection_name={name}", uri())).await;
    assert_eq!(conn.heartbeat(), Duration::from_secs(2));
    let listed = common::rabbitmqctl(&["-q", "list_connections", "client_properties", "timeout"]);
    let line = listed
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("connection {name} not listed:\n{listed}"));
    assert_eq!(line.split_whitespace().last(), Some("2"), "{line}");
    // Idle for three intervals: both sides must heartbeat, or one declares the other dead.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(conn.error().is_none(), "{:?}", conn.error());
    let ch = channel(&conn).await;
    ch.close().await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error() {
    let e = Connection::connect("amqp://guest:not-the-password@127.0.0.1:5672/")
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::AuthenticationFailed { code: 403, .. }),
        "{e}"
    );
    assert!(!format!("{e} {e:?}").contains("not-the-password"));
}

#[tokio::test]
async fn unknown_vhost_is_not_allowed() {
    let vhost = unique("vhost");
    let e = Connection::connect(&format!("amqp://guest:guest@127.0.0.1:5672/{vhost}"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::VhostNotAllowed { code: 530, vhost: v, .. } if *v == vhost),
        "{e}"
    );
}

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn refused_connection_and_cluster_fallback() {
    let port = free_port().await;
    let e = Connection::connect(&format!("amqp://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ConnectRefused { .. }), "{e}");
    // A cluster list: the dead address is skipped, the live one is used.
    let config =
        ConnectionConfig::parse_many(&[format!("amqp://127.0.0.1:{port}"), uri()]).unwrap();
    let conn = Connection::connect_with(config).await.unwrap();
    assert!(conn.peer().ends_with(":5672"));
    conn.close().await.unwrap();
}

#[tokio::test]
async fn channels_multiplex_and_numbers_are_reused() {
    let conn = connect().await;
    let a = channel(&conn).await;
    let b = channel(&conn).await;
    let c = channel(&conn).await;
    let mut ids = [a.id(), b.id(), c.id()];
    ids.sort();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    let freed = b.id();
    b.close().await.unwrap();
    assert!(b.status().is_err());
    let d = channel(&conn).await;
    assert_eq!(d.id(), freed, "closed channel number is reused");
    // Calls on many channels at once.
    let results = futures_join(vec![a.clone(), c.clone(), d.clone()]).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    conn.close().await.unwrap();
    assert!(matches!(
        a.status(),
        Err(Error::ConnectionClosed { code: 200, .. })
    ));
}

async fn futures_join(chans: Vec<amqp_client::Channel>) -> Vec<Result<(), Error>> {
    let mut handles = Vec::new();
    for ch in chans {
        handles.push(tokio::spawn(async move {
            let q = ch
                .queue_declare(
                    "",
                    QueueDeclareOptions {
                        exclusive: true,
                        ..Default::default()
                    },
                )
                .await?;
            ch.queue_delete(&q.queue, amqp_client::QueueDeleteOptions::default())
                .await
                .map(drop)
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn declare_conflict_closes_only_that_channel() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let other = channel(&conn).await;
    let q = unique("conflict");
    ch.queue_declare(
        &q,
        QueueDeclareOptions {
            auto_delete: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = other
        .queue_declare(
            &q,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match &e {
        Error::ChannelClosed {
            code: 406,
            text,
            class_id: 50,
            method_id: 10,
        } => {
            assert!(text.contains("PRECONDITION_FAILED"), "{text}")
        }
        other => panic!("expected a 406 channel close, got {other}"),
    }
    assert!(matches!(
        other.status(),
        Err(Error::ChannelClosed { code: 406, .. })
    ));
    // Later calls on the dead channel fail with the same reason, without touching the wire.
    assert!(matches!(
        other.queue_purge(&q).await,
        Err(Error::ChannelClosed { code: 406, .. })
    ));
    // The connection and the other channel are fine; a new channel works.
    assert!(conn.error().is_none());
    assert_eq!(ch.queue_purge(&q).await.unwrap(), 0);
    let fresh = channel(&conn).await;
    // Passive declare of a missing queue: 404 NOT_FOUND, channel only.
    let e = fresh
        .queue_declare(
            &unique("missing"),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ChannelClosed { code: 404, .. }), "{e}");
    // Passive declare of an existing one reports it.
    let ok = ch
        .queue_declare(
            &q,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ok.queue, q);
    ch.queue_delete(&q, amqp_client::QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn connection_exception_closes_the_connection() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let waiting = channel(&conn).await;
    // An unknown exchange type is a hard error in RabbitMQ: 503 COMMAND_INVALID closes the connection.
    let e = ch
        .exchange_declare(&unique("bad-type"), "no-such-type", Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::ConnectionClosed { code: 503, .. }),
        "{e}"
    );
    let end = within("connection end", conn.closed()).await;
    assert!(
        matches!(end, Error::ConnectionClosed { code: 503, .. }),
        "{end}"
    );
    assert!(conn.is_terminated());
    assert!(matches!(
        waiting.queue_purge("x").await,
        Err(Error::ConnectionClosed { code: 503, .. })
    ));
    assert!(conn.open_channel().await.is_err());
}

#[tokio::test]
async fn exchanges_bindings_publish_get_purge() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let src = unique("src");
    let dst = unique("dst");
    let q = unique("bound");
    ch.exchange_declare(&src, "direct", ExchangeDeclareOptions::default())
        .await
        .unwrap();
    ch.exchange_declare(
        &dst,
        "fanout",
        ExchangeDeclareOptions {
            auto_delete: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    ch.exchange_declare(
        &src,
        "direct",
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    ch.exchange_bind(&dst, &src, "k", FieldTable::new())
        .await
        .unwrap();
    ch.queue_declare(&q, QueueDeclareOptions::default())
        .await
        .unwrap();
    ch.queue_bind(&q, &dst, "", FieldTable::new())
        .await
        .unwrap();
    let props = BasicProperties::default().with_content_type("text/plain");
    for i in 0..3 {
        ch.basic_publish(
            &src,
            "k",
            amqp_client::BasicPublishOptions::default(),
            &props,
            format!("m{i}").as_bytes(),
        )
        .await
        .unwrap();
    }
    // basic.get until the messages have arrived (publishing is asynchronous).
    let got = within("basic.get", async {
        loop {
            if let Some(g) = ch
                .basic_get(&q, amqp_client::BasicGetOptions::default())
                .await
                .unwrap()
            {
                break g;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(&got.delivery.body[..], b"m0");
    assert_eq!(got.delivery.exchange.as_str(), Some(src.as_str()));
    assert_eq!(
        got.delivery
            .properties
            .content_type
            .as_ref()
            .and_then(|c| c.as_str()),
        Some("text/plain")
    );
    ch.basic_ack(
        got.delivery.delivery_tag,
        amqp_client::BasicAckOptions::default(),
    )
    .unwrap();
    // Wait for the other two, then purge them.
    within("queue fill", async {
        loop {
            let ok = ch
                .queue_declare(
                    &q,
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            if ok.message_count == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(ch.queue_purge(&q).await.unwrap(), 2);
    assert!(ch
        .basic_get(&q, amqp_client::BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_none());
    ch.queue_unbind(&q, &dst, "", FieldTable::new())
        .await
        .unwrap();
    ch.exchange_unbind(&dst, &src, "k", FieldTable::new())
        .await
        .unwrap();
    assert_eq!(
        ch.queue_delete(&q, amqp_client::QueueDeleteOptions::default())
            .await
            .unwrap(),
        0
    );
    ch.exchange_delete(&src, amqp_client::ExchangeDeleteOptions::default())
        .await
        .unwrap();
    ch.exchange_delete(&dst, amqp_client::ExchangeDeleteOptions::default())
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn consume_ack_nack_reject_and_qos() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let q = ch
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(q.queue.starts_with("amq.gen-"), "{}", q.queue);
    ch.basic_qos(10, amqp_client::BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(&q.queue, BasicConsumeOptions::default())
        .await
        .unwrap();
    assert!(
        consumer.tag().as_bytes().starts_with(b"amq.ctag-"),
        "{}",
        consumer.tag()
    );
    let props = BasicProperties::default()
        .with_correlation_id("c-1")
        .with_reply_to("callback-queue");
    for body in ["a", "b", "c"] {
        ch.basic_publish(
            "",
            &q.queue,
            amqp_client::BasicPublishOptions::default(),
            &props,
            body.as_bytes(),
        )
        .await
        .unwrap();
    }
    let a = within("delivery a", consumer.recv()).await.unwrap();
    let b = within("delivery b", consumer.recv()).await.unwrap();
    let c = within("delivery c", consumer.recv()).await.unwrap();
    assert_eq!([&a.body[..], &b.body[..], &c.body[..]], [b"a", b"b", b"c"]);
    assert_eq!(a.properties, props);
    assert!(!a.redelivered);
    ch.basic_ack(a.delivery_tag, amqp_client::BasicAckOptions::default())
        .unwrap();
    ch.basic_reject(
        b.delivery_tag,
        amqp_client::BasicRejectOptions { requeue: true },
    )
    .unwrap();
    let b2 = within("redelivery", consumer.recv()).await.unwrap();
    assert_eq!(&b2.body[..], b"b");
    assert!(b2.redelivered);
    ch.basic_nack(b2.delivery_tag, amqp_client::BasicNackOptions::default())
        .unwrap();
    ch.basic_ack(c.delivery_tag, amqp_client::BasicAckOptions::default())
        .unwrap();
    ch.basic_cancel(consumer.tag()).await.unwrap();
    let end = within("cancel", consumer.recv()).await.unwrap_err();
    assert!(matches!(end, Error::ConsumerCancelled(_)), "{end}");
    // Nothing left: a was acked, b dead-lettered (dropped) by the nack, c acked.
    let ok = ch
        .queue_declare(
            &q.queue,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ok.message_count, 0);
    // An ack for an unknown tag is a channel error (406), and only that.
    ch.basic_ack(999, amqp_client::BasicAckOptions::default())
        .unwrap();
    let e = ch.queue_purge(&q.queue).await.unwrap_err();
    assert!(matches!(e, Error::ChannelClosed { code: 406, .. }), "{e}");
    assert!(conn.error().is_none());
    conn.close().await.unwrap();
}

#[tokio::test]
async fn broker_initiated_cancel_reaches_the_consumer() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let admin = channel(&conn).await;
    let q = unique("cancelled");
    ch.queue_declare(&q, QueueDeclareOptions::default())
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            &q,
            BasicConsumeOptions {
                consumer_tag: "mine".into(),
                no_ack: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(consumer.tag(), "mine");
    admin
        .queue_delete(&q, amqp_client::QueueDeleteOptions::default())
        .await
        .unwrap();
    let end = within("broker cancel", consumer.recv()).await.unwrap_err();
    assert!(
        matches!(&end, Error::ConsumerCancelled(t) if t == "mine"),
        "{end}"
    );
    // The channel stays usable.
    ch.basic_qos(1, amqp_client::BasicQosOptions::default())
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let mut returns = ch.returns();
    let key = unique("nowhere");
    let props = BasicProperties::default().with_message_id("r1");
    ch.basic_publish(
        "",
        &key,
        amqp_client::BasicPublishOptions::mandatory(),
        &props,
        b"lost",
    )
    .await
    .unwrap();
    // Not mandatory: silently dropped, nothing comes back.
    ch.basic_publish(
        "",
        &key,
        amqp_client::BasicPublishOptions::default(),
        &props,
        b"dropped",
    )
    .await
    .unwrap();
    let r = within("basic.return", returns.recv()).await.unwrap();
    assert_eq!(r.reply_code, 312);
    assert_eq!(r.reply_text.as_str(), Some("NO_ROUTE"));
    assert_eq!(r.routing_key.as_str(), Some(key.as_str()));
    assert_eq!(&r.body[..], b"lost");
    assert_eq!(r.properties, props);
    // A round trip later, still nothing else.
    ch.basic_qos(0, amqp_client::BasicQosOptions::default())
        .await
        .unwrap();
    assert!(returns.try_recv().is_none());
    conn.close().await.unwrap();
}

#[tokio::test]
async fn publisher_confirms_ack_and_nack() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    assert!(matches!(
        ch.basic_publish_confirmed(
            "",
            "x",
            amqp_client::BasicPublishOptions::default(),
            &BasicProperties::default(),
            b""
        )
        .await,
        Err(Error::NotInConfirmMode)
    ));
    ch.confirm_select().await.unwrap();
    let q = unique("confirms");
    // reject-publish: once the queue holds one message the broker nacks further publishes.
    let args = FieldTable::new()
        .with("x-max-length", 1i32)
        .with("x-overflow", "reject-publish");
    ch.queue_declare(
        &q,
        QueueDeclareOptions {
            arguments: args,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let props = BasicProperties::default();
    let first = ch
        .basic_publish_confirmed(
            "",
            &q,
            amqp_client::BasicPublishOptions::default(),
            &props,
            b"1",
        )
        .await
        .unwrap();
    let second = ch
        .basic_publish_confirmed(
            "",
            &q,
            amqp_client::BasicPublishOptions::default(),
            &props,
            b"2",
        )
        .await
        .unwrap();
    assert_eq!((first.delivery_tag(), second.delivery_tag()), (1, 2));
    assert_eq!(
        within("confirm 1", first.wait()).await.unwrap(),
        Confirm::Ack
    );
    assert_eq!(
        within("confirm 2", second.wait()).await.unwrap(),
        Confirm::Nack
    );
    // Unconfirmed-style publishes count too; a burst is acked (often with `multiple`).
    ch.queue_purge(&q).await.unwrap();
    ch.basic_publish(
        "",
        unique("nowhere"),
        amqp_client::BasicPublishOptions::default(),
        &props,
        b"x",
    )
    .await
    .unwrap();
    let mut burst = Vec::new();
    for _ in 0..200 {
        burst.push(
            ch.basic_publish_confirmed(
                "",
                unique("nowhere"),
                amqp_client::BasicPublishOptions::mandatory(),
                &props,
                b"y",
            )
            .await
            .unwrap(),
        );
    }
    assert_eq!(burst[0].delivery_tag(), 4);
    for c in burst {
        assert_eq!(
            within("burst confirm", c.wait()).await.unwrap(),
            Confirm::Ack
        );
    }
    ch.queue_delete(&q, amqp_client::QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close().await.unwrap();
}

async fn round_trip_sizes(uri: &str, sizes: &[usize]) {
    let conn = connect_uri(uri).await;
    let ch = channel(&conn).await;
    let (q, mut consumer) = common::exclusive_consumer(&ch).await;
    for (i, &size) in sizes.iter().enumerate() {
        let body: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
        ch.basic_publish(
            "",
            &q.queue,
            amqp_client::BasicPublishOptions::default(),
            &BasicProperties::default().with_message_id(size.to_string()),
            &body,
        )
        .await
        .unwrap();
        let d = within("large delivery", consumer.recv()).await.unwrap();
        assert_eq!(d.body.len(), size, "size {size}");
        assert!(d.body[..] == body[..], "body of size {size} differs");
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn bodies_of_every_awkward_size() {
    // A body frame carries frame_max - 8 payload bytes.
    let one = 131_072 - 8;
    round_trip_sizes(
        &uri(),
        &[0, 1, one - 1, one, one + 1, 2 * one, 5 * 1024 * 1024 + 3],
    )
    .await;
    let small = 4096 - 8;
    round_trip_sizes(
        &format!("{}?frame_max=4096", uri()),
        &[0, 1, small - 1, small, small + 1, 3 * small, 1024 * 1024],
    )
    .await;
}

#[tokio::test]
async fn many_channels_in_parallel() {
    let conn = connect().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let ch = conn.open_channel().await?;
            let q = ch
                .queue_declare(
                    "",
                    QueueDeclareOptions {
                        exclusive: true,
                        ..Default::default()
                    },
                )
                .await?;
            let mut c = ch
                .basic_consume(
                    &q.queue,
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                )
                .await?;
            for i in 0..50u32 {
                ch.basic_publish(
                    "",
                    &q.queue,
                    amqp_client::BasicPublishOptions::default(),
                    &BasicProperties::default(),
                    &i.to_be_bytes(),
                )
                .await?;
            }
            for i in 0..50u32 {
                let d = c.recv().await?;
                assert_eq!(&d.body[..], &i.to_be_bytes());
            }
            ch.close().await
        }));
    }
    for t in tasks {
        within("channel task", t).await.unwrap().unwrap();
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn dropped_consumer_gives_its_messages_back() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let q = unique("dropped-consumer");
    ch.queue_declare(&q, QueueDeclareOptions::default())
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(&q, BasicConsumeOptions::default())
        .await
        .unwrap();
    for i in 0..5u8 {
        ch.basic_publish(
            "",
            &q,
            amqp_client::BasicPublishOptions::default(),
            &BasicProperties::default(),
            &[i],
        )
        .await
        .unwrap();
    }
    let first = within("first delivery", consumer.recv()).await.unwrap();
    ch.basic_ack(first.delivery_tag, amqp_client::BasicAckOptions::default())
        .unwrap();
    // Let the other four reach the consumer's queue, unacknowledged, then drop it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(consumer);
    within("requeue", async {
        loop {
            let ok = ch
                .queue_declare(
                    &q,
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            if ok.message_count == 4 && ok.consumer_count == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The channel is healthy: no protocol error from deliveries after the cancel.
    assert!(conn.error().is_none());
    assert_eq!(
        ch.queue_delete(&q, amqp_client::QueueDeleteOptions::default())
            .await
            .unwrap(),
        4
    );
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_survive_heavy_traffic() {
    // heartbeat=1: the broker drops a connection it does not hear from for ~2 s. Keep both
    // directions saturated for longer than that; the connection must stay up.
    let conn = connect_uri(&format!("{}?heartbeat=1", uri())).await;
    let ch = channel(&conn).await;
    let (q, mut consumer) = common::exclusive_consumer(&ch).await;
    let body = vec![0x5a; 64 * 1024];
    let started = std::time::Instant::now();
    let mut received = 0u64;
    while started.elapsed() < Duration::from_secs(5) {
        for _ in 0..16 {
            ch.basic_publish(
                "",
                &q.queue,
                amqp_client::BasicPublishOptions::default(),
                &BasicProperties::default(),
                &body,
            )
            .await
            .unwrap();
        }
        for _ in 0..16 {
            within("heavy delivery", consumer.recv()).await.unwrap();
            received += 1;
        }
    }
    assert!(conn.error().is_none(), "{:?}", conn.error());
    println!(
        "heavy traffic: {received} x 64 KiB round trips in {:?} with heartbeat=1",
        started.elapsed()
    );
    conn.close().await.unwrap();
}

#[tokio::test]
async fn round_trip_latency_is_reported() {
    // A measurement, not an assertion: sequential publish -> deliver on one connection.
    let conn = connect().await;
    let ch = channel(&conn).await;
    let (q, mut consumer) = common::exclusive_consumer(&ch).await;
    let props = BasicProperties::default()
        .with_correlation_id("c")
        .with_reply_to("r");
    let mut samples = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let t = std::time::Instant::now();
        ch.basic_publish(
            "",
            &q.queue,
            amqp_client::BasicPublishOptions::default(),
            &props,
            b"30",
        )
        .await
        .unwrap();
        within("latency delivery", consumer.recv()).await.unwrap();
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "publish->deliver round trip over loopback: p50 {:?}, p99 {:?}",
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100]
    );
    conn.close().await.unwrap();
}

/// The client closes a channel while the broker is closing it (a publish to the direct reply-to
/// pseudo-queue without consuming it makes RabbitMQ close the channel with 406): the crossing
/// closes end that channel only, and the connection goes on.
#[tokio::test]
async fn crossing_channel_closes_keep_the_connection() {
    let conn = connect().await;
    for _ in 0..5 {
        let ch = channel(&conn).await;
        let props = BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to");
        ch.basic_publish(
            "",
            "no-such-queue-for-crossing-close",
            amqp_client::BasicPublishOptions::default(),
            &props,
            b"x",
        )
        .await
        .unwrap();
        let _ = within("channel close", ch.close()).await;
    }
    // The connection still works.
    let ch = channel(&conn).await;
    let q = unique("crossing");
    ch.queue_declare(&q, QueueDeclareOptions::default())
        .await
        .expect("connection still usable after crossing closes");
    ch.queue_delete(&q, amqp_client::QueueDeleteOptions::default())
        .await
        .unwrap();
    assert!(!conn.is_terminated());
}
