//! Target `connection`: the sans-IO connection core (`amqp_connection::Connection`) against
//! arbitrary broker bytes, arriving in arbitrary pieces, with a simulated clock, timers that fire
//! at their deadlines (or late), and an application that keeps making calls.
//!
//! # Input
//!
//! Every byte string is a valid program:
//!
//! ```text
//! flags   bits 0-1  heartbeat: off, 1 s, 4 s, 60 s (the client's proposal and the scripted broker's)
//!         bit  2    frame_max 4096 (else 131072)
//!         bit  3    the handshake comes from the input (else a correct one is scripted)
//!         bits 4-5  reply timeout: 30 s, 1 s, 5 s, 10 s
//!         bit  6    channel_max 3 (else 2047)
//!         bit  7    the program ends with EOF (else a silent broker, timers run dry)
//! piece   the default piece size for broker bytes (0: a whole record in one read)
//! record* tag & 3 == 0  broker bytes: a u16 length follows, then the bytes (clamped to what is
//!                       left); fed in pieces of tag >> 2 bytes, or `piece` when that is 0
//!         tag & 3 == 1  an application call: op = tag >> 2, then one argument byte
//!         tag & 3 == 2  the clock moves (tag >> 2 & 31) * 250 ms; timers fire at each deadline
//!                       on the way, or (tag & 0x80) once, late, at the end
//!         tag & 3 == 3  handle_timeout right now, early or not
//! ```
//!
//! After a scripted handshake (`flags` bit 3 clear) the broker bytes are post-handshake traffic;
//! the seeds (`fuzz/seed_connection.py`) replay the captured broker streams of
//! `fixtures/captures/` with the client's calls of the same capture as application calls.
//!
//! # Checks
//!
//! - nothing panics, and every loop is bounded: the timer loop must see the deadline move past
//!   `now` after each `handle_timeout` (a deadline left in the past is a driver's busy loop);
//! - what the client sends always decodes, frame by frame, within the negotiated `frame_max`;
//!   after its own `connection.close` it sends nothing but a close-ok or a heartbeat, after a
//!   close-ok nothing, and a connection.close at most once, with a known reply code;
//! - a call that fails sends nothing;
//! - output and events stay proportional to the input: bytes the broker's input caused are at
//!   most the bytes fed plus a constant (a close-ok, a reject, a flow-ok each answer a longer
//!   frame), and every event but a reply or a channel's end needs at least 12 bytes of input;
//! - every call gets exactly one reply, before its channel's `ChannelClosed`; every channel
//!   opened gets exactly one `ChannelClosed`; deliveries name a consumer the client was told of;
//!   confirms come only on channels in confirm mode, and publish sequence numbers count from 1;
//!   `Closed` is the last event, once, with every call answered and every channel told;
//! - an error never leaves the connection half alive: at the end of the input the connection is
//!   open, closed (with `Closed`), or closing with its connection.close sent; and with the broker
//!   silent from then on, every deadline runs out within its bound and no call is left waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use amqp_codec::{
    BasicAck, BasicCancel, BasicConsume, BasicGet, BasicNack, BasicProperties, BasicQos,
    BasicRecover, BasicReject, ChannelClose, ChannelFlow, ConfirmSelect, ConnectionOpenOk,
    ConnectionStart, ConnectionTune, ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeUnbind,
    FieldTable, Frame, FrameDecoder, Method, QueueBind, QueueDeclare, QueueDelete, QueuePurge,
    QueueUnbind, TxCommit, TxSelect,
};
use amqp_connection::{
    ChannelId, Connection, ConnectionConfig, Error, Event, Reply, Sent, CLOSE_TIMEOUT,
};
use bytes::{Bytes, BytesMut};

/// Reply codes a client may close a connection with: 200 for its own close or a reply timeout,
/// the frame and syntax errors 501/502, 503-505 for commands, frames and channels out of
/// place, 540 for a method it does not know.
const CLOSE_CODES: [u16; 7] = [200, 501, 502, 503, 504, 505, 540];

/// A run's work limit, far above what any input can reach honestly: past it the timer loop is
/// spinning.
const MAX_TIMER_TURNS: usize = 100_000;

/// Where bytes handed out by `poll_transmit` came from, for the bounds on each.
#[derive(Clone, Copy, PartialEq)]
enum Cause {
    Input,
    Application,
    Timer,
}

/// Run every check on one input.
pub fn check(data: &[u8]) {
    simulate(data, false);
}

/// Run every check on one input; returns what happened (event kinds, frames the client sent in
/// answer, its close codes, why the connection ended), so that a replay can show which states
/// the corpus reaches. (The fuzz target skips this bookkeeping.)
pub fn run(data: &[u8]) -> BTreeSet<String> {
    simulate(data, true).unwrap_or_default()
}

fn simulate(data: &[u8], record: bool) -> Option<BTreeSet<String>> {
    let (&flags, rest) = data.split_first().unwrap_or((&0, &[]));
    let (&piece, program) = rest.split_first().unwrap_or((&0, &[]));
    let mut sim = Sim::new(flags, piece, record);
    sim.run(program);
    sim.seen
}

/// An event's kind, for [`run`].
fn describe(event: &Event) -> String {
    let name = |debug: String| {
        debug
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    match event {
        Event::Reply {
            result: Ok(Reply::Get(g)),
            ..
        } => format!("get {}", g.is_some()),
        Event::Reply { result: Ok(_), .. } => "reply".into(),
        Event::Reply { result: Err(_), .. } => "reply error".into(),
        Event::Closed { error } => name(format!("{error:?}")) + " closed",
        other => name(format!("{other:?}")),
    }
}

/// The client core and everything the checks keep track of.
struct Sim {
    conn: Connection,
    t0: Instant,
    now: Instant,
    flags: u8,
    piece: u8,
    heartbeat: Duration,
    reply_timeout: Duration,
    /// Client → broker bytes, decoded as they come.
    wire: BytesMut,
    decoder: FrameDecoder,
    /// Bytes the client sent because of broker input, because of the application's calls and
    /// because of timers.
    out_input: usize,
    out_timer: usize,
    timer_turns: usize,
    /// Broker bytes fed since the set-up.
    fed: usize,
    /// Events other than `Reply` and `ChannelClosed` since the set-up.
    small_events: usize,
    connected: bool,
    closed: bool,
    blocked: bool,
    /// The reply code of the client's connection.close, once sent.
    close_sent: Option<u16>,
    close_ok_sent: bool,
    we_closed: bool,
    /// Every channel handle ever opened (closed ones too: their calls must be refused).
    ids: Vec<ChannelId>,
    /// Per channel number in use: calls waiting for their reply.
    outstanding: BTreeMap<u16, u32>,
    /// Consumers the client was told of (by consume-ok), per channel number.
    consumers: BTreeMap<u16, BTreeSet<Bytes>>,
    /// Consumers cancelled with nowait: the broker may still end them.
    cancelled: BTreeMap<u16, BTreeSet<Bytes>>,
    /// Channels in confirm mode: the next publish sequence number.
    confirm_seq: BTreeMap<u16, u64>,
    last_delivery: BTreeMap<u16, u64>,
    /// What happened, for [`run`]'s caller (`None`: not recorded).
    seen: Option<BTreeSet<String>>,
}

fn flag(flags: u8, bit: u8) -> bool {
    flags & (1 << bit) != 0
}

impl Sim {
    fn new(flags: u8, piece: u8, record: bool) -> Sim {
        let heartbeat: u16 = [0, 1, 4, 60][usize::from(flags & 3)];
        let frame_max: u32 = if flag(flags, 2) { 4096 } else { 131_072 };
        let channel_max: u16 = if flag(flags, 6) { 3 } else { 2047 };
        let reply_timeout = Duration::from_secs([30, 1, 5, 10][usize::from(flags >> 4 & 3)]);
        let config = ConnectionConfig {
            heartbeat,
            frame_max,
            channel_max,
            connection_timeout: Duration::from_secs(10),
            ..ConnectionConfig::default()
        };
        let t0 = Instant::now();
        let mut conn = Connection::new(config, t0);
        conn.set_reply_timeout(reply_timeout);
        let mut sim = Sim {
            conn,
            t0,
            now: t0,
            flags,
            piece,
            heartbeat: Duration::from_secs(u64::from(heartbeat)),
            reply_timeout,
            wire: BytesMut::new(),
            decoder: FrameDecoder::new(0),
            out_input: 0,
            out_timer: 0,
            timer_turns: 0,
            fed: 0,
            small_events: 0,
            connected: false,
            closed: false,
            blocked: false,
            close_sent: None,
            close_ok_sent: false,
            we_closed: false,
            ids: Vec::new(),
            outstanding: BTreeMap::new(),
            consumers: BTreeMap::new(),
            cancelled: BTreeMap::new(),
            confirm_seq: BTreeMap::new(),
            last_delivery: BTreeMap::new(),
            seen: record.then(BTreeSet::new),
        };
        sim.transmit(Cause::Application);
        if !flag(flags, 3) {
            sim.scripted_handshake(channel_max, frame_max, heartbeat);
        }
        sim
    }

    /// A correct broker's side of the handshake.
    fn scripted_handshake(&mut self, channel_max: u16, frame_max: u32, heartbeat: u16) {
        let start = ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: FieldTable::new().with("product", "fuzz"),
            mechanisms: "PLAIN AMQPLAIN".into(),
            locales: "en_US".into(),
        };
        let tune = ConnectionTune {
            channel_max,
            frame_max,
            heartbeat,
        };
        for frame in [
            Frame::Method(0, start.into()),
            Frame::Method(0, tune.into()),
            Frame::Method(0, ConnectionOpenOk::default().into()),
        ] {
            let mut b = BytesMut::new();
            frame.encode(&mut b).expect("handshake frames encode");
            self.conn.handle_bytes(&b, self.now);
            self.transmit(Cause::Application);
            self.events();
        }
        assert!(self.connected, "a correct handshake connects");
        // The bounds count from here.
        self.out_input = 0;
        self.fed = 0;
        self.small_events = 0;
    }

    fn run(&mut self, program: &[u8]) {
        let mut at = 0;
        while let Some(&tag) = program.get(at) {
            at += 1;
            match tag & 3 {
                0 => {
                    let len = match program.get(at..at + 2) {
                        Some(l) => usize::from(u16::from_be_bytes([l[0], l[1]])),
                        None => program.len(),
                    };
                    at = (at + 2).min(program.len());
                    let end = at.saturating_add(len).min(program.len());
                    let piece = match tag >> 2 {
                        0 => self.piece,
                        p => p,
                    };
                    self.feed(&program[at..end], usize::from(piece));
                    at = end;
                }
                1 => {
                    let arg = program.get(at).copied().unwrap_or(0);
                    at += 1;
                    self.call(tag >> 2, arg);
                }
                2 => {
                    let step = Duration::from_millis(250) * u32::from(tag >> 2 & 31);
                    self.advance(step, tag & 0x80 != 0);
                }
                _ => self.early_timeout(),
            }
        }
        self.finish();
    }

    // ------------------------------------------------------------ the driver's moves

    /// Broker bytes in reads of `piece` bytes (0: one read).
    fn feed(&mut self, bytes: &[u8], piece: usize) {
        let piece = if piece == 0 {
            bytes.len().max(1)
        } else {
            piece
        };
        for chunk in bytes.chunks(piece) {
            self.conn.handle_bytes(chunk, self.now);
            self.fed += chunk.len();
            self.transmit(Cause::Input);
            self.events();
            self.check_bounds();
        }
    }

    /// The clock moves `step`: a punctual driver fires each deadline on the way at its instant,
    /// a late one fires once at the end.
    fn advance(&mut self, step: Duration, late: bool) {
        let end = self.now + step;
        if late {
            self.now = end;
            self.fire();
            return;
        }
        while let Some(deadline) = self.conn.poll_timeout() {
            if deadline > end {
                break;
            }
            self.now = self.now.max(deadline);
            self.fire();
        }
        self.now = end;
    }

    /// `handle_timeout` as a driver's timer calls it, and what must hold after it.
    fn fire(&mut self) {
        self.timer_turns += 1;
        assert!(
            self.timer_turns < MAX_TIMER_TURNS,
            "the timer keeps firing: deadline {:?} at {:?}",
            self.conn.poll_timeout().map(|d| d - self.t0),
            self.now - self.t0
        );
        self.conn.handle_timeout(self.now);
        self.transmit(Cause::Timer);
        self.events();
        if let Some(next) = self.conn.poll_timeout() {
            assert!(
                next > self.now,
                "handle_timeout at {:?} left its deadline {:?} in the past: a busy loop",
                self.now - self.t0,
                next - self.t0
            );
        }
        self.check_bounds();
    }

    /// `handle_timeout` whenever: before a deadline it must change nothing.
    fn early_timeout(&mut self) {
        let due = self.conn.poll_timeout().is_some_and(|d| d <= self.now);
        if due {
            self.fire();
            return;
        }
        self.conn.handle_timeout(self.now);
        assert!(
            !self.conn.has_transmit(),
            "handle_timeout before any deadline sent something"
        );
        let early = self.conn.poll_event();
        assert!(
            early.is_none(),
            "handle_timeout before any deadline: {early:?}"
        );
    }

    /// The end of the input: EOF, or a broker that falls silent while the timers run out.
    fn finish(&mut self) {
        // No error leaves the connection half alive.
        if self.conn.is_closing() {
            assert!(
                self.close_sent.is_some(),
                "closing without connection.close"
            );
        }
        if self.conn.error().is_some() {
            assert!(self.closed, "an error without Closed");
        }
        if flag(self.flags, 7) {
            self.conn.handle_eof(0, self.now);
            self.transmit(Cause::Input);
            self.events();
        } else {
            // Every deadline has a bound: the handshake's, a reply's plus the close's, the
            // silence of two heartbeat intervals (as negotiated: the broker may have asked).
            let heartbeat = match self.conn.tuned() {
                Some(t) => Duration::from_secs(u64::from(t.heartbeat)),
                None => self.heartbeat,
            };
            let bound = Duration::from_secs(10)
                .max(self.reply_timeout + CLOSE_TIMEOUT)
                .max(heartbeat * 2)
                + CLOSE_TIMEOUT
                + Duration::from_secs(1);
            let start = self.now;
            while let Some(deadline) = self.conn.poll_timeout() {
                assert!(
                    deadline <= start + bound,
                    "a deadline {:?} past every bound ({bound:?})",
                    deadline - start
                );
                self.now = self.now.max(deadline);
                self.fire();
            }
            // Nothing left to wait for: closed, or idle with no call outstanding and no
            // heartbeat to keep.
            if !self.closed {
                assert!(
                    self.outstanding.values().all(|n| *n == 0),
                    "calls left waiting with no deadline: {:?}",
                    self.outstanding
                );
                assert!(heartbeat.is_zero() || !self.conn.is_connected());
            }
            self.conn.handle_eof(0, self.now);
            self.transmit(Cause::Input);
            self.events();
        }
        assert!(self.closed, "EOF ends the connection");
        assert!(self.conn.is_closed());
        assert_eq!(self.conn.poll_timeout(), None);
        assert!(self.conn.poll_event().is_none());
    }

    // ------------------------------------------------------------ what comes out

    /// Takes what the client has to send and checks it frame by frame.
    fn transmit(&mut self, cause: Cause) {
        let mut buf = BytesMut::new();
        if !self.conn.poll_transmit(self.now, &mut buf) {
            return;
        }
        let n = buf.len();
        match cause {
            Cause::Input => self.out_input += n,
            Cause::Timer => self.out_timer += n,
            Cause::Application => {}
        }
        self.wire.extend_from_slice(&buf);
        loop {
            let frame = match self.decoder.decode(&mut self.wire) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => panic!("the client sent a bad frame: {e}"),
            };
            assert!(
                !self.close_ok_sent,
                "the client sent {frame:?} after close-ok"
            );
            if self.close_sent.is_some() {
                assert!(
                    matches!(
                        frame,
                        Frame::Heartbeat | Frame::Method(0, Method::ConnectionCloseOk(_))
                    ),
                    "after its connection.close the client sent {frame:?}"
                );
            }
            if let Some(seen) = self.seen.as_mut().filter(|_| cause != Cause::Application) {
                seen.insert(match &frame {
                    Frame::Method(_, m) => {
                        format!("sent {}.{}", m.info().class_name, m.info().method_name)
                    }
                    other => format!("sent {other:?}"),
                });
                if let Frame::Method(0, Method::ConnectionClose(c)) = &frame {
                    seen.insert(format!("close {}", c.reply_code));
                }
            }
            match &frame {
                Frame::Method(0, Method::ConnectionClose(c)) => {
                    assert!(CLOSE_CODES.contains(&c.reply_code), "close code {c:?}");
                    self.close_sent = Some(c.reply_code);
                }
                Frame::Method(0, Method::ConnectionCloseOk(_)) => self.close_ok_sent = true,
                _ => {}
            }
        }
        assert!(
            self.wire.is_empty(),
            "poll_transmit handed out {} bytes of a partial frame",
            self.wire.len()
        );
    }

    fn check_bounds(&self) {
        assert!(
            self.out_input <= self.fed + 2048,
            "{} bytes sent in answer to {} bytes",
            self.out_input,
            self.fed
        );
        assert!(
            self.out_timer <= 8 * self.timer_turns + 512,
            "{} bytes sent by {} timer turns",
            self.out_timer,
            self.timer_turns
        );
        assert!(
            self.small_events <= self.fed / 12 + 4,
            "{} events from {} bytes",
            self.small_events,
            self.fed
        );
    }

    /// Takes every event and checks it against what the client did.
    fn events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            assert!(!self.closed, "an event after Closed: {event:?}");
            if let Some(seen) = self.seen.as_mut() {
                seen.insert(describe(&event));
            }
            match event {
                Event::Reply { channel, result } => {
                    let n = self.outstanding.get_mut(&channel);
                    match n {
                        Some(n) if *n > 0 => *n -= 1,
                        _ => panic!("a reply on channel {channel} no call waits for: {result:?}"),
                    }
                    if let Ok(Reply::Method(Method::BasicConsumeOk(ok))) = &result {
                        self.consumers
                            .entry(channel)
                            .or_default()
                            .insert(ok.consumer_tag.clone().into_bytes());
                    }
                    if let Ok(Reply::Get(Some(got))) = &result {
                        self.last_delivery
                            .insert(channel, got.delivery.delivery_tag);
                    }
                    continue;
                }
                Event::ChannelClosed { channel, .. } => {
                    assert_eq!(
                        self.outstanding.remove(&channel),
                        Some(0),
                        "channel {channel} closed with calls unanswered (or twice)"
                    );
                    self.consumers.remove(&channel);
                    self.cancelled.remove(&channel);
                    self.confirm_seq.remove(&channel);
                    self.last_delivery.remove(&channel);
                    continue;
                }
                _ => {}
            }
            self.small_events += 1;
            match event {
                Event::Connected => {
                    assert!(!self.connected, "Connected twice");
                    self.connected = true;
                    let tuned = self.conn.tuned().expect("tuned once connected");
                    assert!(tuned.channel_max > 0 && tuned.frame_max >= 4096);
                    self.decoder.set_frame_max(tuned.frame_max);
                }
                Event::Delivery { channel, delivery } => {
                    let tag = delivery.consumer_tag.as_bytes();
                    assert!(
                        self.consumers
                            .get(&channel)
                            .is_some_and(|c| c.contains(tag)),
                        "a delivery on channel {channel} for a consumer the client was not told of"
                    );
                    self.last_delivery.insert(channel, delivery.delivery_tag);
                }
                Event::Confirm { channel, .. } => assert!(
                    self.confirm_seq.contains_key(&channel),
                    "a confirm on channel {channel}, not in confirm mode"
                ),
                Event::ConsumerEnded {
                    channel,
                    consumer_tag,
                    ..
                } => {
                    let tag = consumer_tag.as_bytes();
                    let known = self
                        .consumers
                        .get_mut(&channel)
                        .is_some_and(|c| c.remove(tag))
                        || self
                            .cancelled
                            .get_mut(&channel)
                            .is_some_and(|c| c.remove(tag));
                    assert!(known, "the end of a consumer never started");
                }
                Event::Blocked { .. } => self.blocked = true,
                Event::Unblocked => {
                    assert!(self.blocked, "unblocked while not blocked");
                    self.blocked = false;
                }
                Event::Closed { error } => {
                    self.closed = true;
                    assert!(self.conn.is_closed());
                    assert!(
                        self.outstanding.is_empty(),
                        "closed with channels not told: {:?}",
                        self.outstanding
                    );
                    assert!(!self.blocked, "closed while still blocked");
                    if self.close_sent == Some(200) && !self.we_closed {
                        // Our 200 close came from a reply deadline (or the broker's close
                        // crossed it and won).
                        assert!(
                            matches!(
                                error,
                                Error::ReplyTimeout { .. } | Error::ConnectionClosed { .. }
                            ),
                            "{error}"
                        );
                    }
                }
                Event::Returned { .. } | Event::Flow { .. } => {}
                Event::Reply { .. } | Event::ChannelClosed { .. } => unreachable!(),
            }
        }
    }

    // ------------------------------------------------------------ the application

    /// The channel handle a call goes to: the newest one with number `arg & 7` + 1, or else the
    /// newest of all (closed handles included: their calls must be refused).
    fn pick(&self, arg: u8) -> Option<ChannelId> {
        let number = u16::from(arg & 7) + 1;
        self.ids
            .iter()
            .rev()
            .find(|id| id.number() == number)
            .or(self.ids.last())
            .copied()
    }

    fn call(&mut self, op: u8, arg: u8) {
        self.transmit(Cause::Application);
        if op == 0 {
            match self.conn.open_channel() {
                Ok(id) => {
                    let n = id.number();
                    assert!(
                        self.outstanding.insert(n, 1).is_none(),
                        "channel {n} given out while in use"
                    );
                    self.ids.push(id);
                }
                Err(_) => assert!(!self.conn.has_transmit(), "a refused open sent something"),
            }
            self.transmit(Cause::Application);
            return;
        }
        if op == 25 {
            self.we_closed |= self.conn.close(
                200,
                "fuzz",
                Error::ConnectionLost("closed by the application".into()),
                self.now,
            );
            self.transmit(Cause::Application);
            self.events();
            return;
        }
        let Some(ch) = self.pick(arg) else {
            return;
        };
        let n = ch.number();
        if op == 10 {
            self.publish(ch, arg);
            return;
        }
        let tag_of = |sets: &BTreeMap<u16, BTreeSet<Bytes>>| {
            sets.get(&n)
                .and_then(|c| c.iter().next().cloned())
                .unwrap_or_default()
        };
        let last = self.last_delivery.get(&n).copied().unwrap_or(0);
        let nowait = arg & 0x80 != 0;
        let method: Method = match op {
            1 => QueueDeclare {
                queue: "".into(),
                exclusive: true,
                nowait,
                ..Default::default()
            }
            .into(),
            2 => BasicQos {
                prefetch_count: u16::from(arg),
                ..Default::default()
            }
            .into(),
            3 | 4 => BasicConsume {
                queue: "q".into(),
                no_ack: op == 4,
                ..Default::default()
            }
            .into(),
            5 | 6 => BasicCancel {
                consumer_tag: tag_of(&self.consumers).into(),
                nowait: op == 6,
            }
            .into(),
            7 => ConfirmSelect { nowait }.into(),
            8 => BasicGet {
                queue: "q".into(),
                no_ack: arg & 1 != 0,
                ..Default::default()
            }
            .into(),
            9 => ChannelClose {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            }
            .into(),
            11 => BasicAck {
                delivery_tag: last,
                multiple: arg & 1 != 0,
            }
            .into(),
            12 => BasicReject {
                delivery_tag: last,
                requeue: arg & 1 != 0,
            }
            .into(),
            13 => BasicNack {
                delivery_tag: last,
                multiple: arg & 1 != 0,
                requeue: true,
            }
            .into(),
            14 => ExchangeDeclare {
                exchange: "x".into(),
                kind: "direct".into(),
                nowait,
                ..Default::default()
            }
            .into(),
            15 => QueueBind {
                queue: "q".into(),
                exchange: "x".into(),
                nowait,
                ..Default::default()
            }
            .into(),
            16 => ExchangeBind {
                destination: "x".into(),
                source: "y".into(),
                nowait,
                ..Default::default()
            }
            .into(),
            17 => ExchangeUnbind {
                destination: "x".into(),
                source: "y".into(),
                nowait,
                ..Default::default()
            }
            .into(),
            18 => QueueUnbind {
                queue: "q".into(),
                exchange: "x".into(),
                ..Default::default()
            }
            .into(),
            19 => QueuePurge {
                queue: "q".into(),
                nowait,
                ..Default::default()
            }
            .into(),
            20 => QueueDelete {
                queue: "q".into(),
                nowait,
                ..Default::default()
            }
            .into(),
            21 => ExchangeDelete {
                exchange: "x".into(),
                nowait,
                ..Default::default()
            }
            .into(),
            22 => BasicRecover { requeue: true }.into(),
            23 => TxSelect {}.into(),
            24 => TxCommit {}.into(),
            26 => ChannelFlow {
                active: arg & 1 != 0,
            }
            .into(),
            // A reply text too long to encode: refused, and nothing may change.
            27 => ChannelClose {
                reply_code: 200,
                reply_text: vec![b'x'; 256].into(),
                class_id: 0,
                method_id: 0,
            }
            .into(),
            _ => return,
        };
        // A synchronous method waits for its reply unless sent with nowait.
        let with_nowait = matches!(op, 1 | 7 | 14 | 15 | 16 | 17 | 19 | 20 | 21) && nowait;
        let awaits = method.info().synchronous && !with_nowait && op != 6;
        let cancel_nowait = match &method {
            Method::BasicCancel(c) if c.nowait => Some(c.consumer_tag.clone().into_bytes()),
            _ => None,
        };
        let select = matches!(method, Method::ConfirmSelect(_));
        match self.conn.send_method(ch, method) {
            Ok(sent) => {
                assert_eq!(sent == Sent::AwaitsReply, awaits, "op {op}: {sent:?}");
                if awaits {
                    *self
                        .outstanding
                        .get_mut(&n)
                        .expect("a channel that takes calls is in use") += 1;
                }
                if select {
                    self.confirm_seq.entry(n).or_insert(1);
                }
                if let Some(tag) = cancel_nowait {
                    if self.consumers.get_mut(&n).is_some_and(|c| c.remove(&tag)) {
                        self.cancelled.entry(n).or_default().insert(tag);
                    }
                }
            }
            Err(_) => assert!(!self.conn.has_transmit(), "a refused call sent something"),
        }
        self.transmit(Cause::Application);
    }

    fn publish(&mut self, ch: ChannelId, arg: u8) {
        // Up to ~9.4 KB: over a 4096-byte frame_max, a body is split.
        let body = vec![arg; usize::from(arg) * 37];
        let props = BasicProperties::default().with_correlation_id("c");
        let result = self
            .conn
            .publish(ch, "", "q", arg & 1 != 0, false, &props, &body);
        match result {
            Ok(seq) => {
                let expected = self.confirm_seq.get_mut(&ch.number());
                match (seq, expected) {
                    (Some(seq), Some(next)) => {
                        assert_eq!(seq, *next, "publish sequence numbers count from 1");
                        *next += 1;
                    }
                    (None, None) => {}
                    (seq, next) => panic!("publish sequence {seq:?}, confirm mode {next:?}"),
                }
            }
            Err(_) => assert!(
                !self.conn.has_transmit(),
                "a refused publish sent something"
            ),
        }
        self.transmit(Cause::Application);
    }
}
