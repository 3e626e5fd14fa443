//! A scripted fake broker on loopback, for what a real RabbitMQ will not do: garbage, oversize
//! frames, a bad frame-end, EOF mid-frame, silence, methods out of place. Each case must end in a
//! typed error and a closed connection: no panic, no hang, and no task left behind (checked with
//! the runtime's count of live tasks).

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use amqp_client::{Connection, ConnectionConfig, Error, QueueDeclareOptions};
use amqp_codec::{
    ChannelOpenOk, ConnectionClose, ConnectionCloseOk, ConnectionOpenOk, ConnectionStart,
    ConnectionTune, FieldTable, Frame, FrameDecoder, Method, QueueDeclareOk,
};

const NO_HANG: Duration = Duration::from_secs(20);

/// The broker side of one connection.
struct Peer {
    stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl Peer {
    async fn send(&mut self, frame: Frame) {
        let mut b = BytesMut::new();
        frame.encode(&mut b).unwrap();
        self.stream.write_all(&b).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame from the client; `None` at EOF.
    async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(f);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next method frame, skipping heartbeats.
    async fn method(&mut self) -> Option<(u16, Method)> {
        loop {
            match self.recv().await? {
                Frame::Method(ch, m) => return Some((ch, m)),
                Frame::Heartbeat => continue,
                other => panic!("fake peer: unexpected {other:?}"),
            }
        }
    }

    /// Read until the client closes the socket.
    async fn drain(&mut self) {
        while self.recv().await.is_some() {}
    }
}

struct Fake {
    listener: TcpListener,
    uri: String,
}

impl Fake {
    async fn new(query: &str) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let uri = format!("amqp://guest:guest@127.0.0.1:{port}/?{query}");
        Fake { listener, uri }
    }

    async fn accept(&self) -> Peer {
        let (stream, _) = self.listener.accept().await.unwrap();
        Peer {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(0),
        }
    }

    /// Accept and run the handshake with the given tune proposal.
    async fn handshake(&self, frame_max: u32, heartbeat: u16) -> Peer {
        let mut p = self.accept().await;
        let mut header = [0u8; 8];
        p.stream.read_exact(&mut header).await.unwrap();
        assert_eq!(&header, b"AMQP\x00\x00\x09\x01");
        p.send(Frame::Method(
            0,
            ConnectionStart {
                version_major: 0,
                version_minor: 9,
                server_properties: FieldTable::new().with("product", "fake"),
                mechanisms: "PLAIN AMQPLAIN".into(),
                locales: "en_US".into(),
            }
            .into(),
        ))
        .await;
        let (_, start_ok) = p.method().await.unwrap();
        assert!(matches!(start_ok, Method::ConnectionStartOk(_)));
        p.send(Frame::Method(
            0,
            ConnectionTune {
                channel_max: 16,
                frame_max,
                heartbeat,
            }
            .into(),
        ))
        .await;
        let (_, tune_ok) = p.method().await.unwrap();
        assert!(matches!(tune_ok, Method::ConnectionTuneOk(_)));
        let (_, open) = p.method().await.unwrap();
        assert!(matches!(open, Method::ConnectionOpen(_)));
        p.send(Frame::Method(0, ConnectionOpenOk::default().into()))
            .await;
        p
    }
}

/// Every task of the test's runtime but the test itself has exited.
async fn assert_no_leaked_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let done = tokio::time::timeout(Duration::from_secs(5), async {
        while metrics.num_alive_tasks() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "{} task(s) still alive after the connection ended",
        metrics.num_alive_tasks()
    );
}

/// Connect, let `script` misbehave on the broker side, and return how the connection ended
/// and what the peer saw of the client's close (if anything).
async fn run_case<F, Fut>(
    query: &str,
    frame_max: u32,
    heartbeat: u16,
    script: F,
) -> (Error, Option<u16>)
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<u16>> + Send,
{
    let fake = Fake::new(query).await;
    let uri = fake.uri.clone();
    let peer = tokio::spawn(async move {
        let p = fake.handshake(frame_max, heartbeat).await;
        script(p).await
    });
    let conn = Connection::connect(&uri).await.unwrap();
    let end = tokio::time::timeout(NO_HANG, conn.closed())
        .await
        .expect("connection did not end");
    assert!(conn.is_terminated());
    assert!(conn.open_channel().await.is_err());
    let seen = tokio::time::timeout(NO_HANG, peer)
        .await
        .expect("fake peer hung")
        .expect("fake peer panicked");
    drop(conn);
    assert_no_leaked_task().await;
    (end, seen)
}

/// After misbehaving: expect the client's connection.close, answer close-ok, return its code.
async fn expect_close(p: &mut Peer) -> Option<u16> {
    loop {
        match p.recv().await? {
            Frame::Method(0, Method::ConnectionClose(c)) => {
                let _ = p
                    .stream
                    .write_all(&{
                        let mut b = BytesMut::new();
                        Frame::Method(0, ConnectionCloseOk {}.into())
                            .encode(&mut b)
                            .unwrap();
                        b
                    })
                    .await;
                return Some(c.reply_code);
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn garbage_bytes_are_a_frame_error() {
    let (end, seen) = run_case("", 131_072, 0, |mut p| async move {
        p.send_raw(b"GET / HTTP/1.1\r\n\r\n").await;
        let code = expect_close(&mut p).await;
        p.drain().await;
        code
    })
    .await;
    assert!(matches!(end, Error::Decode(_)), "{end}");
    assert_eq!(seen, Some(501), "client closes with 501 FRAME_ERROR");
}

#[tokio::test]
async fn frame_larger_than_frame_max_is_refused() {
    let (end, seen) = run_case("frame_max=4096", 4096, 0, |mut p| async move {
        // A body frame header declaring 10 000 bytes: refused from the header alone.
        let mut b = BytesMut::new();
        b.put_u8(3);
        b.put_u16(1);
        b.put_u32(10_000);
        p.send_raw(&b).await;
        let code = expect_close(&mut p).await;
        p.drain().await;
        code
    })
    .await;
    assert!(
        matches!(
            end,
            Error::Decode(amqp_codec::DecodeError::FrameTooLarge {
                frame_max: 4096,
                ..
            })
        ),
        "{end}"
    );
    assert_eq!(seen, Some(501));
}

#[tokio::test]
async fn wrong_frame_end_octet() {
    let (end, seen) = run_case("", 131_072, 0, |mut p| async move {
        p.send_raw(&[8, 0, 0, 0, 0, 0, 0, 0xAB]).await;
        let code = expect_close(&mut p).await;
        p.drain().await;
        code
    })
    .await;
    assert!(
        matches!(
            end,
            Error::Decode(amqp_codec::DecodeError::BadFrameEnd { found: 0xAB, .. })
        ),
        "{end}"
    );
    assert_eq!(seen, Some(501));
}

#[tokio::test]
async fn eof_in_the_middle_of_a_frame() {
    let (end, _) = run_case("", 131_072, 0, |mut p| async move {
        // Half of a method frame, then the socket closes.
        p.send_raw(&[1, 0, 1, 0, 0, 0, 40, 0, 50, 0]).await;
        None
    })
    .await;
    match end {
        Error::ConnectionLost(text) => assert!(text.contains("middle of a frame"), "{text}"),
        other => panic!("expected ConnectionLost, got {other}"),
    }
}

#[tokio::test]
async fn silent_peer_is_a_heartbeat_timeout_and_fails_waiters() {
    let fake = Fake::new("heartbeat=1").await;
    let uri = fake.uri.clone();
    let peer = tokio::spawn(async move {
        let mut p = fake.handshake(131_072, 1).await;
        // Answer channel.open, then go silent: read (and count the client's heartbeats) but
        // never write again.
        let (ch, m) = p.method().await.unwrap();
        assert!(matches!(m, Method::ChannelOpen(_)));
        p.send(Frame::Method(ch, ChannelOpenOk::default().into()))
            .await;
        let mut heartbeats = 0;
        while let Some(f) = p.recv().await {
            if f == Frame::Heartbeat {
                heartbeats += 1;
            }
        }
        heartbeats
    });
    let conn = Connection::connect(&uri).await.unwrap();
    assert_eq!(conn.heartbeat(), Duration::from_secs(1));
    let ch = conn.open_channel().await.unwrap();
    // A call waiting for a reply that never comes gets the typed error.
    let pending = tokio::time::timeout(
        NO_HANG,
        ch.queue_declare("q", QueueDeclareOptions::default()),
    )
    .await
    .expect("pending call hung");
    assert!(
        matches!(pending, Err(Error::HeartbeatTimeout(_))),
        "{pending:?}"
    );
    let end = tokio::time::timeout(NO_HANG, conn.closed()).await.unwrap();
    assert!(
        matches!(end, Error::HeartbeatTimeout(d) if d == Duration::from_secs(2)),
        "{end}"
    );
    let heartbeats = tokio::time::timeout(NO_HANG, peer).await.unwrap().unwrap();
    assert!(
        heartbeats >= 1,
        "client sent {heartbeats} heartbeats while idle"
    );
    drop((ch, conn));
    assert_no_leaked_task().await;
}

#[tokio::test]
async fn unexpected_method_on_a_channel_closes_the_connection() {
    let fake = Fake::new("").await;
    let uri = fake.uri.clone();
    let peer = tokio::spawn(async move {
        let mut p = fake.handshake(131_072, 0).await;
        let (ch, _) = p.method().await.unwrap();
        p.send(Frame::Method(ch, ChannelOpenOk::default().into()))
            .await;
        // A declare-ok nobody asked for.
        p.send(Frame::Method(ch, QueueDeclareOk::default().into()))
            .await;
        let code = expect_close(&mut p).await;
        p.drain().await;
        code
    });
    let conn = Connection::connect(&uri).await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    let end = tokio::time::timeout(NO_HANG, conn.closed()).await.unwrap();
    assert!(
        matches!(&end, Error::Protocol(t) if t.contains("queue.declare-ok")),
        "{end}"
    );
    assert!(ch.status().is_err());
    let seen = tokio::time::timeout(NO_HANG, peer).await.unwrap().unwrap();
    assert_eq!(seen, Some(505), "client closes with 505 UNEXPECTED_FRAME");
    drop((ch, conn));
    assert_no_leaked_task().await;
}

#[tokio::test]
async fn frame_on_a_channel_that_is_not_open() {
    let (end, seen) = run_case("", 131_072, 0, |mut p| async move {
        p.send(Frame::Method(7, ChannelOpenOk::default().into()))
            .await;
        let code = expect_close(&mut p).await;
        p.drain().await;
        code
    })
    .await;
    assert!(matches!(end, Error::Protocol(_)), "{end}");
    assert_eq!(seen, Some(504), "client closes with 504 CHANNEL_ERROR");
}

#[tokio::test]
async fn broker_connection_close_is_answered() {
    let (end, seen) = run_case("", 131_072, 0, |mut p| async move {
        p.send(Frame::Method(
            0,
            ConnectionClose {
                reply_code: 320,
                reply_text: "CONNECTION_FORCED - broker forced connection closure".into(),
                class_id: 0,
                method_id: 0,
            }
            .into(),
        ))
        .await;
        // The client must answer close-ok.
        let answered = loop {
            match p.recv().await {
                Some(Frame::Method(0, Method::ConnectionCloseOk(_))) => break Some(0),
                Some(_) => continue,
                None => break None,
            }
        };
        p.drain().await;
        answered
    })
    .await;
    assert!(
        matches!(end, Error::ConnectionClosed { code: 320, .. }),
        "{end}"
    );
    assert_eq!(seen, Some(0), "client answered close-ok");
}

#[tokio::test]
async fn client_close_is_clean() {
    let fake = Fake::new("").await;
    let uri = fake.uri.clone();
    let peer = tokio::spawn(async move {
        let mut p = fake.handshake(131_072, 0).await;
        let code = expect_close(&mut p).await;
        p.drain().await;
        code
    });
    let conn = Connection::connect(&uri).await.unwrap();
    tokio::time::timeout(NO_HANG, conn.close())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tokio::time::timeout(NO_HANG, peer).await.unwrap().unwrap(),
        Some(200)
    );
    drop(conn);
    assert_no_leaked_task().await;
}

// ---- handshake faults: each bounded by connection_timeout ----

async fn connect_error(
    query: &str,
    script: impl FnOnce(Peer) -> tokio::task::JoinHandle<()> + Send + 'static,
) -> Error {
    let fake = Fake::new(query).await;
    let uri = fake.uri.clone();
    let peer = tokio::spawn(async move {
        let p = fake.accept().await;
        let _ = script(p).await;
    });
    let e = tokio::time::timeout(NO_HANG, Connection::connect(&uri))
        .await
        .expect("connect hung")
        .unwrap_err();
    peer.abort();
    let _ = peer.await;
    assert_no_leaked_task().await;
    e
}

#[tokio::test]
async fn accepting_then_silent_peer_is_a_handshake_timeout() {
    let e = connect_error("connection_timeout=300", |mut p| {
        tokio::spawn(async move { p.drain().await })
    })
    .await;
    assert!(
        matches!(e, Error::HandshakeTimeout { stage, .. } if stage.contains("connection.start")),
        "{e}"
    );
}

#[tokio::test]
async fn nonsense_during_the_handshake() {
    let e = connect_error("connection_timeout=5000", |mut p| {
        tokio::spawn(async move {
            p.send_raw(b"SSH-2.0-OpenSSH_9.6\r\n").await;
            p.drain().await
        })
    })
    .await;
    assert!(matches!(e, Error::Decode(_)), "{e}");
}

#[tokio::test]
async fn other_protocol_version_is_a_mismatch() {
    let e = connect_error("connection_timeout=5000", |mut p| {
        tokio::spawn(async move {
            p.send_raw(b"AMQP\x00\x01\x00\x00").await;
            p.drain().await
        })
    })
    .await;
    assert!(
        matches!(&e, Error::ProtocolMismatch(t) if t.contains("AMQP 1.0")),
        "{e}"
    );
}

#[tokio::test]
async fn socket_closed_after_start_ok_is_an_authentication_error() {
    let fake = Fake::new("").await;
    let uri = fake.uri.clone();
    let peer = tokio::spawn(async move {
        let mut p = fake.accept().await;
        let mut header = [0u8; 8];
        p.stream.read_exact(&mut header).await.unwrap();
        p.send(Frame::Method(
            0,
            ConnectionStart {
                version_major: 0,
                version_minor: 9,
                server_properties: FieldTable::new(),
                mechanisms: "PLAIN".into(),
                locales: "en_US".into(),
            }
            .into(),
        ))
        .await;
        let _ = p.method().await;
        // Old-style refusal: just close the socket.
    });
    let e = tokio::time::timeout(NO_HANG, Connection::connect(&uri))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(e, Error::AuthenticationFailed { code: 403, .. }),
        "{e}"
    );
    peer.await.unwrap();
    assert_no_leaked_task().await;
}

#[tokio::test]
async fn connection_timeout_bounds_a_slow_handshake_not_just_connect() {
    // The peer answers, but each step takes longer than the whole budget allows in total.
    let fake = Fake::new("connection_timeout=400").await;
    let config = ConnectionConfig::parse(&fake.uri).unwrap();
    let peer = tokio::spawn(async move {
        let mut p = fake.accept().await;
        let mut header = [0u8; 8];
        p.stream.read_exact(&mut header).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        p.send(Frame::Method(
            0,
            ConnectionStart {
                version_major: 0,
                version_minor: 9,
                server_properties: FieldTable::new(),
                mechanisms: "PLAIN".into(),
                locales: "en_US".into(),
            }
            .into(),
        ))
        .await;
        let _ = p.method().await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        p.drain().await;
    });
    let e = tokio::time::timeout(NO_HANG, Connection::connect_with(config))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(e, Error::HandshakeTimeout { stage, .. } if stage.contains("tune")),
        "{e}"
    );
    peer.abort();
    let _ = peer.await;
    assert_no_leaked_task().await;
}

/// A real TCP connect timeout on loopback: a listener that never accepts, its accept queue filled,
/// drops further SYNs (Linux does not answer them), so `connect()` hangs. The client gives up with
/// `ConnectTimeout` after `connection_timeout`, not the kernel's minutes of SYN retries.
#[tokio::test]
async fn a_connect_that_never_completes_is_a_connect_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..1024 {
        match tokio::time::timeout(
            Duration::from_millis(300),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => panic!("connect to the backlogged listener failed: {e}"),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(
        full,
        "the accept queue never filled ({} connections)",
        held.len()
    );

    let config =
        ConnectionConfig::parse(&format!("amqp://127.0.0.1:{port}?connection_timeout=500"))
            .unwrap();
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), Connection::connect_with(config))
        .await
        .expect("the connection timeout bounds the connect")
        .unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err}");
    assert!(err.to_string().contains("timed out after 500ms"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(held);
    drop(listener);
}

/// A broker that stops reading (as RabbitMQ does under a memory alarm) does not make the client
/// buffer without limit: once the send buffer is over its high-water mark, publishes wait for
/// room instead of returning.
#[tokio::test]
async fn a_broker_that_stops_reading_makes_publishers_wait() {
    let fake = Fake::new("heartbeat=0").await;
    let uri = fake.uri.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let peer = tokio::spawn(async move {
        let mut p = fake.handshake(131_072, 0).await;
        // Answer channel.open, then read nothing more until told.
        let (ch, m) = p.method().await.unwrap();
        assert!(matches!(m, Method::ChannelOpen(_)));
        p.send(Frame::Method(ch, ChannelOpenOk::default().into()))
            .await;
        let _ = stop_rx.await;
        drop(p);
    });
    let conn = Connection::connect(&uri).await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    let body = vec![7u8; 64 * 1024];
    let props = amqp_client::BasicProperties::default();
    let mut published = 0usize;
    let waited = loop {
        let publish = ch.basic_publish(
            "",
            "q",
            amqp_client::BasicPublishOptions::default(),
            &props,
            &body,
        );
        match tokio::time::timeout(Duration::from_millis(500), publish).await {
            Ok(r) => {
                r.unwrap();
                published += 1;
            }
            Err(_) => break true,
        }
        // The kernel's socket buffers take some megabytes; without backpressure this loop
        // would fill memory. 1 GiB is far past anything the buffers and the mark allow.
        if published * body.len() > 1 << 30 {
            break false;
        }
    };
    let sent_mb = published * body.len() / (1 << 20);
    println!("{sent_mb} MiB published before the first publish had to wait");
    assert!(
        waited,
        "published {sent_mb} MiB to a broker that reads nothing"
    );
    // What is held: the socket buffers, the writer's batch and the send buffer (at most the mark
    // plus one message) — tens of MiB at most, not the gigabyte the loop would go on to.
    assert!(
        sent_mb < 64,
        "{sent_mb} MiB accepted before publishers had to wait (mark: {} MiB)",
        amqp_client::SEND_HIGH_WATER >> 20
    );
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(NO_HANG, peer).await;
    drop(ch);
    drop(conn);
}
