//! Helpers shared by the integration tests: the broker's address, unique names, rabbitmqctl.
#![allow(dead_code)]

use std::time::Duration;

use amqp_client::{
    BasicConsumeOptions, Channel, Connection, Consumer, QueueDeclareOk, QueueDeclareOptions,
};

/// The broker the tests use: `AMQP_URI`, or the local RabbitMQ with guest/guest.
pub fn uri() -> String {
    std::env::var("AMQP_URI").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Connect to the test broker, failing (not skipping) with how to start it.
pub async fn connect() -> Connection {
    connect_uri(&uri()).await
}

pub async fn connect_uri(uri: &str) -> Connection {
    match Connection::connect(uri).await {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot reach the test RabbitMQ ({e}); start it with `bash scripts/broker.sh` (it must listen on 127.0.0.1:5672 with guest/guest)"
        ),
    }
}

pub async fn channel(conn: &Connection) -> Channel {
    conn.open_channel().await.expect("open channel")
}

/// An exclusive, server-named queue on `ch` and a no-ack consumer of it: the round-trip set-up
/// most tests share.
pub async fn exclusive_consumer(ch: &Channel) -> (QueueDeclareOk, Consumer) {
    let q = ch
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .await
        .expect("declare an exclusive queue");
    let consumer = ch
        .basic_consume(
            &q.queue,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await
        .expect("consume it");
    (q, consumer)
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    format!("rpc-client-test.{prefix}.{}", uuid::Uuid::new_v4())
}

/// Bound for "does not hang" assertions: generous, never a performance claim.
pub const NO_HANG: Duration = Duration::from_secs(20);

pub async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(NO_HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {NO_HANG:?}"))
}

/// Run rabbitmqctl (as root or through sudo), returning stdout.
pub fn rabbitmqctl(args: &[&str]) -> String {
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
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
