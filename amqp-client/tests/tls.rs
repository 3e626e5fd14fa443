//! `amqps://` against the local RabbitMQ's TLS listener on 5671, which `scripts/broker-tls.sh`
//! sets up with certificates it generates (CA, server for localhost/127.0.0.1, client).

mod common;

use std::path::PathBuf;

use amqp_client::{BasicProperties, Connection, Error};
use common::within;

fn tls_dir() -> PathBuf {
    let dir =
        PathBuf::from(std::env::var("AMQP_TLS_DIR").unwrap_or_else(|_| "/tmp/amqp-rpc-tls".into()));
    assert!(
        dir.join("ca.pem").is_file(),
        "no test certificates in {}: run `bash scripts/broker.sh && bash scripts/broker-tls.sh`",
        dir.display()
    );
    dir
}

fn ca() -> String {
    tls_dir().join("ca.pem").display().to_string()
}

async fn connect_tls(uri: &str) -> Connection {
    match Connection::connect(uri).await {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot reach RabbitMQ over TLS on 5671 ({e}); run `bash scripts/broker.sh && bash scripts/broker-tls.sh`"
        ),
    }
}

async fn round_trip(conn: &Connection) {
    let ch = conn.open_channel().await.unwrap();
    let (q, mut consumer) = common::exclusive_consumer(&ch).await;
    let big = vec![7u8; 300_000];
    ch.basic_publish(
        "",
        &q.queue,
        amqp_client::BasicPublishOptions::default(),
        &BasicProperties::default(),
        &big,
    )
    .await
    .unwrap();
    let d = within("TLS delivery", consumer.recv()).await.unwrap();
    assert_eq!(d.body.len(), big.len());
    assert!(d.body.iter().all(|b| *b == 7));
}

#[tokio::test]
async fn amqps_with_the_test_ca() {
    // Default port of amqps is 5671.
    let conn = connect_tls(&format!(
        "amqps://guest:guest@localhost/?cacertfile={}",
        ca()
    ))
    .await;
    assert!(conn.peer().ends_with(":5671"), "{}", conn.peer());
    round_trip(&conn).await;
    conn.close().await.unwrap();
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    let dir = tls_dir();
    let uri = format!(
        "amqps://guest:guest@127.0.0.1:5671/%2f?cacertfile={}&certfile={}&keyfile={}&heartbeat=5",
        ca(),
        dir.join("client.pem").display(),
        dir.join("client.key").display()
    );
    let name = common::unique("mtls");
    let conn = connect_tls(&format!("{uri}&connection_name={name}")).await;
    round_trip(&conn).await;
    // The broker saw (and verified) our certificate.
    let listed = common::rabbitmqctl(&[
        "-q",
        "list_connections",
        "client_properties",
        "peer_cert_subject",
    ]);
    let line = listed
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("connection {name} not listed:\n{listed}"));
    assert!(line.contains("amqp-rpc-test-client"), "{line}");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error() {
    tls_dir();
    // System roots do not know the test CA: refused, no fallback to plain TCP.
    let e = within(
        "untrusted",
        Connection::connect("amqps://guest:guest@localhost:5671/"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::Tls(t) if t.contains("certificate")),
        "{e}"
    );
}

#[tokio::test]
async fn server_name_is_checked() {
    let e = within(
        "wrong name",
        Connection::connect(&format!(
            "amqps://guest:guest@127.0.0.1:5671/?cacertfile={}&server_name_indication=not-the-broker.example",
            ca()
        )),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::Tls(t) if t.contains("certificate")),
        "{e}"
    );
}

#[tokio::test]
async fn tls_to_a_plain_port_is_an_error_not_a_fallback() {
    let e = within(
        "amqps to 5672",
        Connection::connect(&format!(
            "amqps://guest:guest@127.0.0.1:5672/?cacertfile={}&connection_timeout=3000",
            ca()
        )),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, Error::Tls(_) | Error::ConnectTimeout { .. }),
        "{e}"
    );
}

#[tokio::test]
async fn bad_tls_files_are_clear_errors() {
    let e = Connection::connect("amqps://localhost/?cacertfile=/nonexistent/ca.pem")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Tls(t) if t.contains("/nonexistent/ca.pem")),
        "{e}"
    );
    let e = Connection::connect(&format!(
        "amqps://localhost/?cacertfile={}&certfile={}",
        ca(),
        ca()
    ))
    .await
    .unwrap_err();
    assert!(matches!(&e, Error::Tls(t) if t.contains("keyfile")), "{e}");
}

// The blocking shell: rustls's own ClientConnection on the same configuration.

fn blocking_connect_tls(uri: &str) -> amqp_client::blocking::Connection {
    amqp_client::blocking::Connection::connect(uri).unwrap_or_else(|e| {
        panic!(
            "cannot reach RabbitMQ over TLS on 5671 ({e}); run `bash scripts/broker.sh && bash scripts/broker-tls.sh`"
        )
    })
}

#[test]
fn blocking_amqps_with_mutual_tls_and_heartbeats() {
    use std::time::{Duration, Instant};
    let dir = tls_dir();
    let conn = blocking_connect_tls(&format!(
        "amqps://guest:guest@localhost:5671/%2f?cacertfile={}&certfile={}&keyfile={}&heartbeat=1",
        ca(),
        dir.join("client.pem").display(),
        dir.join("client.key").display()
    ));
    assert!(conn.peer().ends_with(":5671"), "{}", conn.peer());
    let ch = conn.open_channel().unwrap();
    let q = ch
        .queue_declare(
            "",
            amqp_client::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            &q.queue,
            amqp_client::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .unwrap();
    // The keeper's non-blocking reads work under TLS too: idle past two heartbeat intervals.
    std::thread::sleep(Duration::from_millis(2500));
    let big = vec![7u8; 300_000];
    ch.basic_publish(
        "",
        &q.queue,
        amqp_client::BasicPublishOptions::default(),
        &BasicProperties::default(),
        &big,
    )
    .unwrap();
    let d = consumer
        .next_delivery(Instant::now() + common::NO_HANG)
        .unwrap()
        .expect("the TLS delivery");
    assert_eq!(d.body.len(), big.len());
    assert!(d.body.iter().all(|b| *b == 7));
    conn.close().unwrap();
}

#[test]
fn blocking_untrusted_certificate_and_wrong_name_are_tls_errors() {
    tls_dir();
    let e = amqp_client::blocking::Connection::connect("amqps://guest:guest@localhost:5671/")
        .unwrap_err();
    assert!(
        matches!(&e, Error::Tls(t) if t.contains("certificate")),
        "{e}"
    );
    let e = amqp_client::blocking::Connection::connect(&format!(
        "amqps://guest:guest@127.0.0.1:5671/?cacertfile={}&server_name_indication=not-the-broker.example",
        ca()
    ))
    .unwrap_err();
    assert!(
        matches!(&e, Error::Tls(t) if t.contains("certificate")),
        "{e}"
    );
    // TLS to the plain port: an error within the bound, never a fallback.
    let t = std::time::Instant::now();
    let e = amqp_client::blocking::Connection::connect(&format!(
        "amqps://guest:guest@127.0.0.1:5672/?cacertfile={}&connection_timeout=3000",
        ca()
    ))
    .unwrap_err();
    assert!(
        matches!(e, Error::Tls(_) | Error::ConnectTimeout { .. }),
        "{e}"
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}
