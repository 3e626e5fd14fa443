//! A scripted fake broker on loopback (blocking sockets, one thread per connection), for what a
//! real RabbitMQ will not do: go silent after the handshake, send hostile texts, cut a frame.
//! The script gets the broker's end of each connection the program under test opens.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amqp_codec::{
    ConnectionOpenOk, ConnectionStart, ConnectionTune, FieldTable, Frame, FrameDecoder, Method,
};
use bytes::BytesMut;

/// The broker's end of one connection.
pub struct Peer {
    pub stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl Peer {
    pub fn send(&mut self, frame: Frame) {
        let mut b = BytesMut::new();
        frame.encode(&mut b).expect("encode");
        let _ = self.stream.write_all(&b);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next frame from the client; `None` at EOF or after 30 s of nothing.
    pub fn recv(&mut self) -> Option<Frame> {
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(30)));
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf).ok()? {
                return Some(f);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next method frame, skipping heartbeats.
    pub fn method(&mut self) -> Option<(u16, Method)> {
        loop {
            match self.recv()? {
                Frame::Method(ch, m) => return Some((ch, m)),
                _ => continue,
            }
        }
    }

    /// Up to `connection.open-ok`, with the given heartbeat proposal.
    pub fn handshake(&mut self, heartbeat: u16) -> Option<()> {
        let mut header = [0u8; 8];
        self.stream.read_exact(&mut header).ok()?;
        self.send(Frame::Method(0, start().into()));
        self.method()?; // start-ok
        self.send(Frame::Method(0, tune(heartbeat).into()));
        self.method()?; // tune-ok
        self.method()?; // open
        self.send(Frame::Method(0, ConnectionOpenOk::default().into()));
        Some(())
    }

    /// Reads and discards until the client goes away (a broker that never answers).
    pub fn silence(&mut self) {
        while self.recv().is_some() {}
    }
}

pub fn start() -> ConnectionStart {
    ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: FieldTable::new().with("product", "fake"),
        mechanisms: "PLAIN AMQPLAIN".into(),
        locales: "en_US".into(),
    }
}

pub fn tune(heartbeat: u16) -> ConnectionTune {
    ConnectionTune {
        channel_max: 16,
        frame_max: 131_072,
        heartbeat,
    }
}

/// A listening fake broker; every accepted connection runs `script` on a thread of its own.
pub struct FakeBroker {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeBroker {
    pub fn start(script: impl Fn(Peer) + Send + Sync + 'static) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let script = Arc::clone(&script);
                std::thread::spawn(move || {
                    script(Peer {
                        stream,
                        buf: BytesMut::new(),
                        decoder: FrameDecoder::new(0),
                    })
                });
            }
        });
        FakeBroker { port, stop }
    }

    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
