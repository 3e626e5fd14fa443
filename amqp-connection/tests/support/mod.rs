//! Test support for driving one [`Connection`] without sockets: a simulated clock, a scripted
//! broker that encodes its frames with [`amqp_codec`], and helpers that finish the handshake,
//! open channels, decode what the client sent and collect its events.
//!
//! [`Harness`] plays both the driver and the broker. It hands bytes to the core and takes them
//! out as a driver would, and [`Harness::run_until`] moves the clock forward the way a driver's
//! timer does: it fires `handle_timeout` at each deadline the core names, transmitting after
//! each step, so every rule with a deadline is tested at exactly its deadline.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};

use amqp_codec::{
    BasicConsume, BasicConsumeOk, BasicDeliver, BasicProperties, ChannelOpenOk, ConnectionOpenOk,
    ConnectionStart, ConnectionTune, ContentHeader, FieldTable, Frame, FrameDecoder, Method,
    PROTOCOL_HEADER,
};
use amqp_connection::{ChannelId, Connection, ConnectionConfig, Error, Event, Reply, Sent};

/// `connection.start` as RabbitMQ sends it (version 0-9, PLAIN and AMQPLAIN, en_US).
pub fn start() -> Frame {
    Frame::Method(
        0,
        ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: FieldTable::new().with("product", "scripted broker"),
            mechanisms: "PLAIN AMQPLAIN".into(),
            locales: "en_US".into(),
        }
        .into(),
    )
}

/// `connection.tune` with the broker's proposals.
pub fn tune(channel_max: u16, frame_max: u32, heartbeat: u16) -> Frame {
    Frame::Method(
        0,
        ConnectionTune {
            channel_max,
            frame_max,
            heartbeat,
        }
        .into(),
    )
}

/// A method frame.
pub fn method(channel: u16, m: impl Into<Method>) -> Frame {
    Frame::Method(channel, m.into())
}

/// The bytes of `frames`, encoded as the broker would send them.
pub fn encode(frames: &[Frame]) -> BytesMut {
    let mut b = BytesMut::new();
    for f in frames {
        f.encode(&mut b).expect("test frames encode");
    }
    b
}

/// The method, header and body frames of a `basic.deliver` of `body` on `channel`, the body cut
/// into frames of at most `piece` bytes.
pub fn delivery_frames(
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    properties: BasicProperties,
    body: &[u8],
    piece: usize,
) -> Vec<Frame> {
    let mut frames = vec![method(
        channel,
        BasicDeliver {
            consumer_tag: consumer_tag.into(),
            delivery_tag,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
        },
    )];
    frames.push(Frame::Header(
        channel,
        ContentHeader::new(body.len() as u64, properties),
    ));
    for chunk in body.chunks(piece.max(1)) {
        frames.push(Frame::Body(channel, bytes::Bytes::copy_from_slice(chunk)));
    }
    frames
}

/// The tune proposal and client settings of a handshake.
#[derive(Debug, Clone, Copy)]
pub struct Tune {
    /// The broker's `channel_max` proposal.
    pub channel_max: u16,
    /// The broker's `frame_max` proposal.
    pub frame_max: u32,
    /// The broker's heartbeat proposal in seconds.
    pub heartbeat: u16,
}

impl Default for Tune {
    /// RabbitMQ's defaults, with heartbeats off so that tests that are not about them see no
    /// heartbeat frames.
    fn default() -> Self {
        Tune {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 0,
        }
    }
}

/// One client core, its simulated clock and the broker's side of its socket.
pub struct Harness {
    /// The core under test.
    pub conn: Connection,
    /// When the test began.
    pub t0: Instant,
    /// The simulated time.
    pub now: Instant,
    /// Client → broker bytes not decoded yet.
    wire: BytesMut,
    decoder: FrameDecoder,
    /// Every frame the client sent, with when it was handed out, oldest first (not cleared by
    /// [`Harness::sent`]).
    pub log: Vec<(Duration, Frame)>,
    /// Events not yet taken by [`Harness::events`].
    pending_events: Vec<Event>,
}

impl Harness {
    /// A core made with `config` at a fixed `t0`, before the protocol header goes out.
    pub fn new(config: ConnectionConfig) -> Self {
        let t0 = Instant::now();
        Harness {
            conn: Connection::new(config, t0),
            t0,
            now: t0,
            wire: BytesMut::new(),
            decoder: FrameDecoder::new(0),
            log: Vec::new(),
            pending_events: Vec::new(),
        }
    }

    /// A core from a URI's query (`heartbeat=10&channel_max=0`).
    pub fn with_query(query: &str) -> Self {
        Harness::new(
            ConnectionConfig::parse(&format!("amqp://guest:guest@broker?{query}"))
                .expect("test URI parses"),
        )
    }

    /// A core with the handshake done under `tune`, heartbeats off unless the broker asks.
    pub fn connected(tune: Tune) -> Self {
        let mut h = Harness::with_query("heartbeat=0");
        h.handshake(tune);
        h
    }

    /// Time since `t0`.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Moves the clock `d` forward without firing timers (a driver that is late, or a test that
    /// looks at the core between deadlines).
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// The broker sends `frames` (each call is one read by the driver).
    pub fn send(&mut self, frames: &[Frame]) {
        let bytes = encode(frames);
        self.send_raw(&bytes);
    }

    /// The broker sends raw bytes, in one read.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.conn.handle_bytes(bytes, self.now);
        self.collect_events();
    }

    /// The broker closes its side of the socket.
    pub fn eof(&mut self) {
        self.conn.handle_eof(0, self.now);
        self.collect_events();
    }

    /// The driver takes what the core has to send, now; returns the frames in it.
    pub fn sent(&mut self) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        if !self.conn.poll_transmit(self.now, &mut buf) {
            return Vec::new();
        }
        self.wire.extend_from_slice(&buf);
        let mut frames = Vec::new();
        while let Some(f) = self
            .decoder
            .decode(&mut self.wire)
            .expect("the client sends well-formed frames")
        {
            self.log.push((self.elapsed(), f.clone()));
            frames.push(f);
        }
        assert!(
            self.wire.is_empty(),
            "poll_transmit hands out whole frames, {} bytes left over",
            self.wire.len()
        );
        frames
    }

    /// The methods among [`Harness::sent`], with their channels.
    pub fn sent_methods(&mut self) -> Vec<(u16, Method)> {
        self.sent()
            .into_iter()
            .filter_map(|f| match f {
                Frame::Method(c, m) => Some((c, m)),
                _ => None,
            })
            .collect()
    }

    /// The `connection.close` the client sent just now: its reply code. Panics naming what was
    /// sent instead.
    pub fn expect_connection_close(&mut self) -> u16 {
        let sent = self.sent();
        match &sent[..] {
            [.., Frame::Method(0, Method::ConnectionClose(c))] => c.reply_code,
            other => panic!("expected connection.close, the client sent {other:?}"),
        }
    }

    fn collect_events(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            self.pending_events.push(e);
        }
    }

    /// Every event since the last call, in order.
    pub fn events(&mut self) -> Vec<Event> {
        self.collect_events();
        std::mem::take(&mut self.pending_events)
    }

    /// The one event since the last call. Panics naming them otherwise.
    pub fn one_event(&mut self) -> Event {
        let mut events = self.events();
        assert_eq!(events.len(), 1, "expected one event, got {events:?}");
        events.remove(0)
    }

    /// The `Closed` event's error, which must be the last event since the last call.
    pub fn closed_error(&mut self) -> Error {
        let events = self.events();
        match events.last() {
            Some(Event::Closed { error }) => {
                assert!(self.conn.is_closed());
                assert_eq!(
                    events
                        .iter()
                        .filter(|e| matches!(e, Event::Closed { .. }))
                        .count(),
                    1,
                    "one Closed event: {events:?}"
                );
                error.clone()
            }
            _ => panic!("expected the connection to end, events: {events:?}"),
        }
    }

    /// Advances the clock to `t0 + at` as a driver with one timer would: transmit, then sleep
    /// until the core's next deadline (or `at`), fire `handle_timeout`, and again. Returns the
    /// frames sent meanwhile.
    pub fn run_until(&mut self, at: Duration) -> Vec<Frame> {
        let end = self.t0 + at;
        let mut frames = self.sent();
        // Each turn either reaches `end` or fires a deadline that moves the core on; a core whose
        // deadline does not move after handle_timeout would be a busy loop in a real driver.
        for _ in 0..100_000 {
            match self.conn.poll_timeout() {
                Some(deadline) if deadline <= end => {
                    assert!(
                        deadline >= self.now || self.conn.has_transmit(),
                        "deadline {:?} in the past at {:?} with nothing to send",
                        deadline - self.t0,
                        self.elapsed()
                    );
                    self.now = self.now.max(deadline);
                    self.conn.handle_timeout(self.now);
                    self.collect_events();
                    frames.extend(self.sent());
                    let next = self.conn.poll_timeout();
                    assert!(
                        next.is_none_or(|n| n > self.now),
                        "handle_timeout at {:?} left a deadline that has passed ({:?})",
                        self.elapsed(),
                        next.map(|n| n - self.t0)
                    );
                }
                _ => {
                    self.now = end;
                    return frames;
                }
            }
        }
        panic!("the core's deadlines did not advance");
    }

    /// Runs the handshake as a well-behaved broker, with `tune`'s proposals.
    pub fn handshake(&mut self, tune: Tune) {
        assert_eq!(
            self.sent(),
            vec![Frame::ProtocolHeader(amqp_codec::ProtocolHeader(
                PROTOCOL_HEADER
            ))]
        );
        self.send(&[start()]);
        let sent = self.sent_methods();
        assert!(
            matches!(&sent[..], [(0, Method::ConnectionStartOk(_))]),
            "{sent:?}"
        );
        self.send(&[self::tune(tune.channel_max, tune.frame_max, tune.heartbeat)]);
        let sent = self.sent_methods();
        assert!(
            matches!(
                &sent[..],
                [
                    (0, Method::ConnectionTuneOk(_)),
                    (0, Method::ConnectionOpen(_))
                ]
            ),
            "{sent:?}"
        );
        self.send(&[method(0, ConnectionOpenOk::default())]);
        assert!(matches!(self.one_event(), Event::Connected));
        assert!(self.conn.is_connected());
    }

    /// Opens a channel and answers its open-ok.
    pub fn open_channel(&mut self) -> ChannelId {
        let id = self.conn.open_channel().expect("a channel opens");
        let sent = self.sent_methods();
        assert!(
            matches!(&sent[..], [(n, Method::ChannelOpen(_))] if *n == id.number()),
            "{sent:?}"
        );
        self.send(&[method(id.number(), ChannelOpenOk::default())]);
        self.expect_reply(id.number());
        id
    }

    /// The one event is a successful reply on `channel`: its method.
    pub fn expect_reply(&mut self, channel: u16) -> Reply {
        match self.one_event() {
            Event::Reply {
                channel: c,
                result: Ok(reply),
            } if c == channel => reply,
            other => panic!("expected a reply on channel {channel}, got {other:?}"),
        }
    }

    /// Sends a synchronous method and checks it went out.
    pub fn call(&mut self, channel: ChannelId, m: impl Into<Method>) {
        let m = m.into();
        let sent = self.conn.send_method(channel, m.clone());
        assert!(matches!(sent, Ok(Sent::AwaitsReply)), "{sent:?}");
        let sent = self.sent_methods();
        assert_eq!(sent, vec![(channel.number(), m)]);
    }

    /// Starts a consumer named `tag` on `queue` and answers its consume-ok.
    pub fn consume(&mut self, channel: ChannelId, queue: &str, tag: &str, no_ack: bool) {
        self.call(
            channel,
            BasicConsume {
                queue: queue.into(),
                consumer_tag: tag.into(),
                no_ack,
                ..Default::default()
            },
        );
        self.send(&[method(
            channel.number(),
            BasicConsumeOk {
                consumer_tag: tag.into(),
            },
        )]);
        self.expect_reply(channel.number());
        assert!(self.conn.has_consumer(channel, tag.as_bytes()));
    }
}

/// A frame header (type, channel, size) with no payload after it.
pub fn frame_header(kind: u8, channel: u16, size: u32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u8(kind);
    b.put_u16(channel);
    b.put_u32(size);
    b
}
