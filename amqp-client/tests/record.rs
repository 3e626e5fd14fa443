//! The recorder hook on the real broker: every byte each way reaches the recorder, in order and
//! whole (it decodes as the connection's frames), in plaintext over TLS too, and `closed` comes
//! once, after the last byte.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use amqp_client::record::{ConnectionRecorder, Recorder};
use amqp_client::{Connection, ConnectionConfig};
use amqp_codec::{Frame, FrameDecoder};
use bytes::BytesMut;
use common::within;

#[derive(Debug, Default)]
struct Seen {
    addrs: Vec<(SocketAddr, SocketAddr)>,
    read: Vec<u8>,
    written: Vec<u8>,
    /// Bytes read and written when `closed` came, once per call.
    closed: Vec<(usize, usize)>,
}

#[derive(Default, Clone)]
struct Collect(Arc<Mutex<Seen>>);

impl Recorder for Collect {
    fn connection(&self, local: SocketAddr, peer: SocketAddr) -> Arc<dyn ConnectionRecorder> {
        self.0.lock().unwrap().addrs.push((local, peer));
        Arc::new(self.clone())
    }
}

impl ConnectionRecorder for Collect {
    fn read(&self, bytes: &[u8]) {
        self.0.lock().unwrap().read.extend_from_slice(bytes);
    }
    fn written(&self, bytes: &[u8]) {
        self.0.lock().unwrap().written.extend_from_slice(bytes);
    }
    fn closed(&self) {
        let mut seen = self.0.lock().unwrap();
        let at = (seen.read.len(), seen.written.len());
        seen.closed.push(at);
    }
}

/// The methods in a byte stream (after the protocol header, for the client's side); fails on
/// any byte that is not part of a whole frame.
fn methods(bytes: &[u8], client: bool) -> Vec<String> {
    let mut buf = BytesMut::from(bytes);
    if client {
        assert!(
            buf.starts_with(b"AMQP\x00\x00\x09\x01"),
            "{:?}",
            &bytes[..8]
        );
        let _ = buf.split_to(8);
    }
    let mut decoder = FrameDecoder::new(0);
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode_eof(&mut buf).expect("whole frames") {
        if let Frame::Method(_, m) = frame {
            let info = m.info();
            out.push(format!("{}.{}", info.class_name, info.method_name));
        }
    }
    out
}

async fn exchange(conn: Connection) {
    let ch = conn.open_channel().await.expect("channel");
    let (q, mut consumer) = common::exclusive_consumer(&ch).await;
    ch.basic_publish(
        "",
        &q.queue,
        amqp_client::BasicPublishOptions::default(),
        &amqp_client::BasicProperties::default(),
        &vec![5u8; 200_000],
    )
    .await
    .unwrap();
    let d = within("delivery", consumer.recv()).await.unwrap();
    assert_eq!(d.body.len(), 200_000);
    within("close", conn.close()).await.unwrap();
}

fn check(seen: &Seen, port: u16) {
    assert_eq!(seen.addrs.len(), 1);
    assert_eq!(seen.addrs[0].1.port(), port);
    let sent = methods(&seen.written, true);
    let received = methods(&seen.read, false);
    assert_eq!(
        sent.first().map(String::as_str),
        Some("connection.start-ok")
    );
    assert_eq!(sent.last().map(String::as_str), Some("connection.close"));
    assert!(sent.contains(&"basic.publish".to_string()), "{sent:?}");
    assert_eq!(
        received.first().map(String::as_str),
        Some("connection.start")
    );
    assert_eq!(
        received.last().map(String::as_str),
        Some("connection.close-ok")
    );
    assert!(
        received.contains(&"basic.deliver".to_string()),
        "{received:?}"
    );
    assert_eq!(seen.closed, [(seen.read.len(), seen.written.len())]);
}

#[tokio::test]
async fn every_byte_each_way_reaches_the_recorder() {
    let recorder = Collect::default();
    let config = ConnectionConfig::parse(&common::uri()).unwrap();
    let conn = Connection::connect_recorded(config, Arc::new(recorder.clone()))
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach the test RabbitMQ ({e}): run `bash scripts/broker.sh`")
        });
    exchange(conn).await;
    check(&recorder.0.lock().unwrap(), 5672);
}

#[tokio::test]
async fn over_tls_the_recorder_gets_plaintext() {
    let dir =
        PathBuf::from(std::env::var("AMQP_TLS_DIR").unwrap_or_else(|_| "/tmp/amqp-rpc-tls".into()));
    assert!(
        dir.join("ca.pem").is_file(),
        "no test certificates: run `bash scripts/broker.sh && bash scripts/broker-tls.sh`"
    );
    let uri = format!(
        "amqps://guest:guest@localhost/?cacertfile={}",
        dir.join("ca.pem").display()
    );
    let recorder = Collect::default();
    let config = ConnectionConfig::parse(&uri).unwrap();
    let conn = Connection::connect_recorded(config, Arc::new(recorder.clone()))
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach RabbitMQ over TLS ({e}): run `bash scripts/broker-tls.sh`")
        });
    exchange(conn).await;
    check(&recorder.0.lock().unwrap(), 5671);
}
