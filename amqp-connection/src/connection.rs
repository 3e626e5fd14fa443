//! The connection as a state machine with no I/O and no clock of its own (quinn-proto's model).
//!
//! A driver owns the socket and a timer; the [`Connection`] owns every rule:
//!
//! ```text
//!            bytes read ──► handle_input(buf, now)      poll_transmit(now, buf) ──► bytes to write
//!        peer closed it ──► handle_eof(unread, now)     poll_event()            ──► Event
//!          timer fired ──► handle_timeout(now)          poll_timeout()          ──► next deadline
//!   the application asks ──► open_channel / send_method / publish / close
//! ```
//!
//! Inside: the handshake, tuning, the channel table, each channel's state (synchronous calls and
//! their replies, consumers, content assembly, confirms), heartbeats as deadlines (one sent after
//! half an interval without sending, the peer declared dead after two intervals without
//! receiving), every synchronous call bounded by a reply deadline, close handshakes in both
//! directions (crossing ones included), `connection.blocked`, `channel.flow`, and protocol
//! violations, each closing the connection with its reply code. Nothing here blocks, sleeps or
//! reads a clock: the same inputs give the same outputs, so every rule is tested with a simulated
//! clock and fuzzed with arbitrary broker bytes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};

use amqp_codec::{
    encode_publish, encode_publish_raw, BasicProperties, ConnectionClose, ConnectionCloseOk, Frame,
    FrameDecoder, Method, DEFAULT_FRAME_MAX, PROTOCOL_HEADER,
};

use crate::channel::{ChannelState, Outcome, Pending, Status, Violation};
use crate::error::{Error, Result, ACCESS_REFUSED, CHANNEL_ERROR, REPLY_SUCCESS, UNEXPECTED_FRAME};
use crate::event::Event;
use crate::handshake::{Handshake, Stage, Tuned};
use crate::hash::IdMap;
use crate::uri::ConnectionConfig;

/// How long a close (ours or a violation's) waits for the broker's close-ok before the
/// connection is declared over anyway.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Default bound on waiting for the reply to a synchronous method (declare, consume, cancel,
/// close, …). A broker that keeps the connection alive but never answers would otherwise hold
/// the caller forever.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reply texts are short strings; keep ours well inside 255 bytes.
const MAX_REPLY_TEXT: usize = 200;

/// A channel of a [`Connection`]: its number and which opening of that number it is, so that a
/// handle kept after its channel closed never reaches a later channel given the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelId {
    number: u16,
    serial: u64,
}

impl ChannelId {
    /// The channel number on the wire.
    pub fn number(self) -> u16 {
        self.number
    }
}

/// What became of a method sent with [`Connection::send_method`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// A synchronous method: an [`Event::Reply`] on its channel will answer it.
    AwaitsReply,
    /// An asynchronous method (or one sent with `nowait`): nothing will answer it.
    NoReply,
}

#[derive(Debug)]
enum Phase {
    Handshake(Handshake),
    Open,
    Closed,
}

/// This side started a close: when it must be over, and the error everyone gets.
#[derive(Debug)]
struct Closing {
    deadline: Instant,
    error: Error,
}

/// When a synchronous call must be answered by.
#[derive(Debug, Clone, Copy)]
struct ReplyDeadline {
    /// Set when the call's bytes are handed to the driver: the wait starts when it is sent.
    at: Option<Instant>,
    channel: u16,
    serial: u64,
    seq: u64,
}

/// One AMQP 0-9-1 connection, client side, as a deterministic state machine.
///
/// ```
/// use std::time::Instant;
/// use amqp_connection::{Connection, ConnectionConfig};
///
/// let now = Instant::now();
/// let mut conn = Connection::new(ConnectionConfig::default(), now);
/// let mut out = bytes::BytesMut::new();
/// assert!(conn.poll_transmit(now, &mut out));
/// assert_eq!(&out[..], b"AMQP\x00\x00\x09\x01"); // the protocol header goes first
/// // The broker has until the connection timeout to answer.
/// assert_eq!(conn.poll_timeout(), Some(now + std::time::Duration::from_secs(10)));
/// ```
#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    phase: Phase,
    decoder: FrameDecoder,
    /// Bytes for the driver to write.
    out: BytesMut,
    events: VecDeque<Event>,
    channels: IdMap<u16, ChannelState>,
    next_serial: u64,
    tuned: Option<Tuned>,
    /// Negotiated heartbeat interval; `None` = heartbeats off.
    heartbeat: Option<Duration>,
    /// Half the heartbeat interval (send one after this much quiet) and twice it (the broker's
    /// silence that ends the connection): computed once at tuning, not at every `poll_timeout`.
    heartbeat_send: Duration,
    heartbeat_limit: Duration,
    last_recv: Instant,
    last_send: Instant,
    handshake_deadline: Instant,
    closing: Option<Closing>,
    blocked: Option<String>,
    reply_timeout: Duration,
    /// Deadlines of synchronous calls in the order they were sent (so in deadline order):
    /// answered ones are dropped lazily when they reach the front.
    reply_deadlines: VecDeque<ReplyDeadline>,
    next_call_seq: u64,
    /// Why the connection ended, once it has.
    error: Option<Error>,
    /// Input given to [`Connection::handle_bytes`], kept until it makes whole frames.
    scratch: BytesMut,
    /// `host:port` of the broker, for errors.
    peer: String,
}

fn truncate(s: &str) -> &str {
    if s.len() <= MAX_REPLY_TEXT {
        return s;
    }
    let mut end = MAX_REPLY_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The error for an operation on a channel handle whose channel is gone: the connection's error
/// if it ended, else a closed channel.
fn stale_channel(error: Option<&Error>, id: ChannelId) -> Error {
    if let Some(e) = error {
        return e.clone();
    }
    Error::ChannelClosed {
        code: REPLY_SUCCESS,
        text: format!("channel {} is closed", id.number),
        class_id: 0,
        method_id: 0,
    }
}

/// The replies a synchronous method allows, and its name; `None` for a method nothing answers
/// (asynchronous, or sent with `nowait`).
fn expected_replies(m: &Method) -> Option<&'static [(u16, u16)]> {
    macro_rules! ok {
        ($($t:ident),*) => { Some(&[$((amqp_codec::$t::CLASS_ID, amqp_codec::$t::METHOD_ID)),*]) };
    }
    match m {
        Method::ChannelOpen(_) => ok!(ChannelOpenOk),
        Method::ChannelClose(_) => ok!(ChannelCloseOk),
        Method::ChannelFlow(_) => ok!(ChannelFlowOk),
        Method::ExchangeDeclare(x) if !x.nowait => ok!(ExchangeDeclareOk),
        Method::ExchangeDelete(x) if !x.nowait => ok!(ExchangeDeleteOk),
        Method::ExchangeBind(x) if !x.nowait => ok!(ExchangeBindOk),
        Method::ExchangeUnbind(x) if !x.nowait => ok!(ExchangeUnbindOk),
        Method::QueueDeclare(x) if !x.nowait => ok!(QueueDeclareOk),
        Method::QueueBind(x) if !x.nowait => ok!(QueueBindOk),
        Method::QueuePurge(x) if !x.nowait => ok!(QueuePurgeOk),
        Method::QueueDelete(x) if !x.nowait => ok!(QueueDeleteOk),
        Method::QueueUnbind(_) => ok!(QueueUnbindOk),
        Method::BasicQos(_) => ok!(BasicQosOk),
        Method::BasicConsume(x) if !x.nowait => ok!(BasicConsumeOk),
        Method::BasicCancel(x) if !x.nowait => ok!(BasicCancelOk),
        Method::BasicGet(_) => ok!(BasicGetOk, BasicGetEmpty),
        Method::BasicRecover(_) => ok!(BasicRecoverOk),
        Method::ConfirmSelect(x) if !x.nowait => ok!(ConfirmSelectOk),
        Method::TxSelect(_) => ok!(TxSelectOk),
        Method::TxCommit(_) => ok!(TxCommitOk),
        Method::TxRollback(_) => ok!(TxRollbackOk),
        _ => None,
    }
}

impl Connection {
    /// A connection about to shake hands with a broker as `config` says; the protocol header is
    /// the first thing [`Connection::poll_transmit`] gives. `now` starts the handshake's
    /// deadline (`config.connection_timeout`).
    pub fn new(config: ConnectionConfig, now: Instant) -> Self {
        let mut out = BytesMut::with_capacity(16 * 1024);
        out.put_slice(&PROTOCOL_HEADER);
        Connection {
            handshake_deadline: now + config.connection_timeout,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            config,
            phase: Phase::Handshake(Handshake::new()),
            // Before tune there is no negotiated frame_max; bound frames by RabbitMQ's default.
            decoder: FrameDecoder::new(DEFAULT_FRAME_MAX),
            out,
            events: VecDeque::new(),
            channels: IdMap::default(),
            next_serial: 0,
            tuned: None,
            heartbeat: None,
            heartbeat_send: Duration::ZERO,
            heartbeat_limit: Duration::ZERO,
            last_recv: now,
            last_send: now,
            closing: None,
            blocked: None,
            reply_deadlines: VecDeque::new(),
            next_call_seq: 0,
            error: None,
            scratch: BytesMut::new(),
            peer: String::new(),
        }
    }

    /// Names the broker (`host:port`) in the errors that say where (a handshake timeout).
    pub fn set_peer(&mut self, peer: impl Into<String>) {
        self.peer = peer.into();
    }

    /// The broker's name as given to [`Connection::set_peer`].
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Sets the bound on waiting for a synchronous method's reply (default
    /// [`DEFAULT_REPLY_TIMEOUT`]). Past it the connection is closed: the broker is alive but
    /// not answering, and a late reply would answer the wrong call.
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.reply_timeout = timeout;
    }

    // ---------------------------------------------------------------- state

    /// True once the handshake finished and until the connection is over.
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// True once the connection is over (its last event is [`Event::Closed`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// True while a close started by this side waits for the broker's close-ok.
    pub fn is_closing(&self) -> bool {
        self.closing.is_some() && !self.is_closed()
    }

    /// Why the connection ended, once it has.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// What the handshake settled, once it has.
    pub fn tuned(&self) -> Option<&Tuned> {
        self.tuned.as_ref()
    }

    /// Where the handshake is.
    pub fn stage(&self) -> Stage {
        match &self.phase {
            Phase::Handshake(hs) => hs.stage(),
            _ => Stage::Done,
        }
    }

    /// `Some(reason)` while the broker blocks publishers (`connection.blocked`).
    pub fn blocked(&self) -> Option<&str> {
        self.blocked.as_deref()
    }

    /// The settings the connection was made with.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// `Ok` while `channel` is usable; otherwise why not.
    pub fn channel_status(&self, channel: ChannelId) -> Result<()> {
        self.channel(channel).map(drop)
    }

    /// The error for an operation on a connection that no longer takes them.
    fn dead_error(&self) -> Error {
        if let Some(e) = &self.error {
            return e.clone();
        }
        if let Some(c) = &self.closing {
            return c.error.clone();
        }
        match self.phase {
            Phase::Handshake(_) => Error::Protocol("the connection is not open yet".into()),
            _ => Error::ConnectionLost("connection is shutting down".into()),
        }
    }

    fn usable(&self) -> Result<()> {
        if self.is_connected() && self.closing.is_none() {
            Ok(())
        } else {
            Err(self.dead_error())
        }
    }

    fn channel(&self, id: ChannelId) -> Result<&ChannelState> {
        match self.channels.get(&id.number) {
            Some(ch) if ch.serial == id.serial => {
                ch.check_open()?;
                Ok(ch)
            }
            _ => Err(self.stale_channel(id)),
        }
    }

    fn channel_mut(&mut self, id: ChannelId) -> Result<&mut ChannelState> {
        self.usable()?;
        match self.channels.get_mut(&id.number) {
            Some(ch) if ch.serial == id.serial => {
                ch.check_open()?;
                Ok(ch)
            }
            // Built only here: every publish passes through this function (measured: formatting
            // the error up front was ~5 % of a blocking client's user time per call).
            _ => Err(stale_channel(self.error.as_ref(), id)),
        }
    }

    fn stale_channel(&self, id: ChannelId) -> Error {
        stale_channel(self.error.as_ref(), id)
    }

    // ---------------------------------------------------------------- outputs

    /// Hands the bytes to write to `buf` (appended; swapped in without a copy when `buf` is
    /// empty). Returns whether there were any. `now` is when they go out: it restarts the
    /// heartbeat's send interval.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut BytesMut) -> bool {
        if self.out.is_empty() {
            return false;
        }
        if buf.is_empty() {
            std::mem::swap(&mut self.out, buf);
        } else {
            buf.extend_from_slice(&self.out);
            self.out.clear();
        }
        self.last_send = now;
        // Calls just sent start waiting for their replies now.
        for d in self.reply_deadlines.iter_mut().rev() {
            if d.at.is_some() {
                break;
            }
            d.at = Some(now + self.reply_timeout);
        }
        true
    }

    /// Whether bytes wait to be written.
    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty()
    }

    /// How many bytes wait to be written: what a driver bounds to give publishers backpressure.
    pub fn transmit_len(&self) -> usize {
        self.out.len()
    }

    /// The next thing that happened, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must be called next (`None`: no deadline, e.g. when
    /// the connection is over). Calling it early is harmless.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let mut next = match &self.phase {
            Phase::Handshake(_) => Some(self.handshake_deadline),
            _ => None,
        };
        let mut earliest = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if let Some(c) = &self.closing {
            earliest(c.deadline);
        }
        if self.heartbeat.is_some() {
            earliest(self.last_send + self.heartbeat_send);
            earliest(self.last_recv + self.heartbeat_limit);
        }
        // While closing, the close's own deadline bounds the wait. An overdue call is what may
        // have started the close: naming its passed deadline again would fire a driver's timer
        // at once, over and over, until close-ok (a busy loop of up to CLOSE_TIMEOUT).
        if self.closing.is_none() {
            if let Some(at) = self.first_reply_deadline().and_then(|d| d.at) {
                earliest(at);
            }
        }
        next
    }

    /// The oldest unanswered call's deadline, dropping answered ones from the front.
    fn first_reply_deadline(&mut self) -> Option<ReplyDeadline> {
        while let Some(d) = self.reply_deadlines.front() {
            let waiting = self.channels.get(&d.channel).is_some_and(|ch| {
                ch.serial == d.serial && ch.pending.iter().any(|p| p.seq == d.seq)
            });
            if waiting {
                return Some(*d);
            }
            self.reply_deadlines.pop_front();
        }
        None
    }

    // ---------------------------------------------------------------- inputs

    /// Bytes from the broker: every whole frame in `input` is taken out and handled; a partial
    /// frame stays for the next read. `now` is when they arrived (the peer is alive).
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) {
        if self.is_closed() {
            input.clear();
            return;
        }
        if !input.is_empty() {
            self.last_recv = now;
        }
        loop {
            // Each frame is handled as the decoder builds it (no copy of it returned first); the
            // decoder is a copy of ours, taken per frame since tuning changes its frame_max.
            let decoder = self.decoder.clone();
            match decoder.decode_with(input, |frame| self.handle_frame(frame, now)) {
                Ok(Some(())) => {}
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be resynchronised after a framing error: report it,
                    // drop what is buffered and wait (briefly) for the broker's close-ok.
                    input.clear();
                    let violation = Violation {
                        code: e.reply_code(),
                        error: Error::Decode(e),
                    };
                    match self.phase {
                        Phase::Handshake(_) => self.fail(violation.error),
                        _ => self.violation(violation, now),
                    }
                    break;
                }
            }
            if self.is_closed() {
                input.clear();
                break;
            }
        }
    }

    /// [`Connection::handle_input`] for a slice (tests, fuzzing): the bytes are copied into a
    /// buffer of the connection's own.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.extend_from_slice(bytes);
        self.handle_input(&mut scratch, now);
        self.scratch = scratch;
    }

    /// The broker closed its side of the socket; `unread` bytes of an incomplete frame were
    /// left over.
    pub fn handle_eof(&mut self, unread: usize, _now: Instant) {
        if self.is_closed() {
            return;
        }
        let unread = unread + self.scratch.len();
        let error = if let Some(c) = &self.closing {
            c.error.clone()
        } else if unread > 0 {
            Error::ConnectionLost(format!(
                "peer closed the connection in the middle of a frame ({unread} byte{} of it \
                 received){}",
                if unread == 1 { "" } else { "s" },
                self.while_()
            ))
        } else {
            match self.stage() {
                // Spec 0-9-1: a broker that cannot authenticate the client may just close the
                // socket (RabbitMQ does so for clients without authentication_failure_close).
                Stage::AwaitTune => Error::AuthenticationFailed {
                    code: ACCESS_REFUSED,
                    text: "broker closed the connection after start-ok".into(),
                },
                Stage::Done => Error::ConnectionLost(
                    "peer closed the connection without connection.close".into(),
                ),
                stage => Error::ConnectionLost(format!(
                    "peer closed the connection while {}",
                    stage.describe()
                )),
            }
        };
        self.fail(error);
    }

    fn while_(&self) -> String {
        match self.stage() {
            Stage::Done => String::new(),
            stage => format!(" while {}", stage.describe()),
        }
    }

    /// Reading or writing the socket failed: the connection is over.
    pub fn handle_io_error(&mut self, error: std::io::Error) {
        self.fail(error.into());
    }

    /// Deadlines that have passed by `now`: the handshake's, a close's, a reply's, the peer's
    /// silence; and a heartbeat to send.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if let Phase::Handshake(hs) = &self.phase {
            if now >= self.handshake_deadline {
                let error = Error::HandshakeTimeout {
                    addr: self.peer.clone(),
                    timeout: self.config.connection_timeout,
                    stage: hs.stage().describe(),
                };
                self.fail(error);
                return;
            }
        }
        if let Some(c) = &self.closing {
            if now >= c.deadline {
                let e = c.error.clone();
                self.fail(e);
                return;
            }
        }
        if self.heartbeat.is_some() {
            let limit = self.heartbeat_limit;
            let silence = now.saturating_duration_since(self.last_recv);
            if silence >= limit {
                tracing::warn!(limit = ?limit, "heartbeat timeout: the broker sent nothing");
                // A close of ours under way keeps its reason, as at EOF: the silence only ends
                // the wait for its close-ok (the calls learn why the close began, e.g. a reply
                // timeout, not that the broker then went quiet).
                let error = match &self.closing {
                    Some(c) => c.error.clone(),
                    None => Error::HeartbeatTimeout(limit),
                };
                self.fail(error);
                return;
            }
            // Only when nothing else went out for half an interval (and nothing waits to).
            if self.out.is_empty()
                && now.saturating_duration_since(self.last_send) >= self.heartbeat_send
            {
                let _ = Frame::Heartbeat.encode(&mut self.out);
            }
        }
        if let Some(d) = self.first_reply_deadline() {
            if d.at.is_some_and(|at| now >= at) && self.closing.is_none() {
                let what = self
                    .channels
                    .get(&d.channel)
                    .and_then(|ch| ch.pending.front())
                    .map_or("a synchronous method".to_owned(), |p| {
                        format!("{}.{}", p.what.class_name, p.what.method_name)
                    });
                let text = format!(
                    "no reply to {what} on channel {} within {:?}",
                    d.channel, self.reply_timeout
                );
                let error = Error::ReplyTimeout {
                    channel: d.channel,
                    method: what,
                    timeout: self.reply_timeout,
                };
                tracing::warn!(%error, "closing the connection");
                self.begin_close(REPLY_SUCCESS, &text, (0, 0), error, now);
            }
        }
    }

    // ---------------------------------------------------------------- commands

    /// Opens a channel on the lowest free number (numbers are reused after close). The open is
    /// a synchronous call: an [`Event::Reply`] on the channel answers it.
    pub fn open_channel(&mut self) -> Result<ChannelId> {
        self.usable()?;
        let max = self.tuned.as_ref().map_or(u16::MAX, |t| t.channel_max);
        // Linear scan from 1: channel counts are small, and this reuses numbers after close.
        let number = (1..=max)
            .find(|n| !self.channels.contains_key(n))
            .ok_or(Error::ChannelsExhausted(max))?;
        self.next_serial += 1;
        let id = ChannelId {
            number,
            serial: self.next_serial,
        };
        self.channels
            .insert(number, ChannelState::new(number, id.serial));
        self.send_method(id, amqp_codec::ChannelOpen::default().into())?;
        Ok(id)
    }

    /// Sends a method (not a content-carrying one: see [`Connection::publish`]) on `channel`.
    /// For a synchronous method the channel then waits for the reply, and an [`Event::Reply`]
    /// answers each call in order.
    ///
    /// A few methods change the channel's state as they go: `confirm.select` puts it in confirm
    /// mode (so acks are understood even before select-ok), `channel.close` starts its close
    /// (every frame but close/close-ok is then discarded), and `basic.cancel` with `nowait`
    /// ends the consumer here (deliveries already on their way are requeued).
    pub fn send_method(&mut self, channel: ChannelId, method: Method) -> Result<Sent> {
        let info = method.info();
        if info.content {
            return Err(Error::Protocol(format!(
                "{}.{} carries content: use publish",
                info.class_name, info.method_name
            )));
        }
        if info.class_id == amqp_codec::ConnectionClose::CLASS_ID {
            return Err(Error::Protocol(format!(
                "connection.{} is the connection's own (use close)",
                info.method_name
            )));
        }
        let expect = expected_replies(&method);
        let consume_no_ack = match &method {
            Method::BasicConsume(c) => Some(c.no_ack),
            _ => None,
        };
        let cancel_nowait = match &method {
            Method::BasicCancel(c) if c.nowait => Some(c.consumer_tag.clone()),
            _ => None,
        };
        let (confirm_select, channel_close) = (
            matches!(method, Method::ConfirmSelect(_)),
            matches!(method, Method::ChannelClose(_)),
        );
        self.channel_mut(channel)?;
        // Encode first: a method that cannot be encoded (a string over 255 bytes, the caller's
        // error) must leave the channel as it was. Marking a channel.close's channel as closing
        // before its encode failed left it refusing every call, its number held for good.
        let start = self.out.len();
        if let Err(e) = Frame::Method(channel.number, method).encode(&mut self.out) {
            self.out.truncate(start);
            return Err(e.into());
        }
        let seq = self.next_call_seq;
        // Nothing changed since the check above: this cannot fail.
        let ch = self.channel_mut(channel)?;
        if confirm_select {
            ch.enable_confirms();
        }
        if channel_close {
            ch.status = Status::Closing;
        }
        if let Some(tag) = cancel_nowait {
            ch.cancel_nowait(tag.as_bytes());
        }
        if let Some(expect) = expect {
            ch.pending.push_back(Pending {
                expect,
                seq,
                what: info,
                consume_no_ack,
            });
            let serial = ch.serial;
            self.next_call_seq += 1;
            // The wait starts when poll_transmit hands the call out, not while it is queued.
            self.reply_deadlines.push_back(ReplyDeadline {
                at: None,
                channel: channel.number,
                serial,
                seq,
            });
        }
        Ok(if expect.is_some() {
            Sent::AwaitsReply
        } else {
            Sent::NoReply
        })
    }

    /// `basic.publish` on `channel`: the method, header and body frames (bodies split to the
    /// negotiated `frame_max`) appended to the send buffer in one piece, so that no other frame
    /// of the channel can come between them. In confirm mode, returns the publish's sequence
    /// number (the delivery tag the broker's ack or nack will name).
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &mut self,
        channel: ChannelId,
        exchange: impl AsRef<[u8]>,
        routing_key: impl AsRef<[u8]>,
        mandatory: bool,
        immediate: bool,
        properties: &BasicProperties,
        body: &[u8],
    ) -> Result<Option<u64>> {
        // On error nothing is appended (encode_publish's contract).
        self.publish_with(channel, |out, number, frame_max| {
            encode_publish(
                out,
                number,
                exchange,
                routing_key,
                mandatory,
                immediate,
                properties,
                body,
                frame_max,
            )
        })
    }

    /// [`Connection::publish`] with the properties already encoded (the flags word and the
    /// present properties in wire order, as [`BasicProperties::encoded`] gives them; see
    /// [`amqp_codec::encode_publish_raw`]): for a sender that keeps one properties buffer and
    /// writes only what changes per message. The bytes are the caller's word.
    #[allow(clippy::too_many_arguments)]
    pub fn publish_raw(
        &mut self,
        channel: ChannelId,
        exchange: impl AsRef<[u8]>,
        routing_key: impl AsRef<[u8]>,
        mandatory: bool,
        immediate: bool,
        properties: &[u8],
        body: &[u8],
    ) -> Result<Option<u64>> {
        // On error nothing is appended (encode_publish_raw's contract).
        self.publish_with(channel, |out, number, frame_max| {
            encode_publish_raw(
                out,
                number,
                exchange,
                routing_key,
                mandatory,
                immediate,
                properties,
                body,
                frame_max,
            )
        })
    }

    /// What both publishes share: the channel must be usable, `encode` appends the message's
    /// frames (split at the negotiated `frame_max`) to the output, and in confirm mode the
    /// publish takes the channel's next sequence number.
    fn publish_with(
        &mut self,
        channel: ChannelId,
        encode: impl FnOnce(&mut BytesMut, u16, u32) -> std::result::Result<(), amqp_codec::EncodeError>,
    ) -> Result<Option<u64>> {
        let frame_max = self
            .tuned
            .as_ref()
            .map_or(DEFAULT_FRAME_MAX, |t| t.frame_max);
        self.channel_mut(channel)?;
        encode(&mut self.out, channel.number, frame_max)?;
        Ok(self
            .channels
            .get_mut(&channel.number)
            .and_then(ChannelState::take_publish_seq))
    }

    /// Whether `channel` is in confirm mode.
    pub fn is_confirm_mode(&self, channel: ChannelId) -> bool {
        self.channel(channel)
            .is_ok_and(|ch| ch.next_publish_seq.is_some())
    }

    /// Whether `consumer_tag` is a live consumer on `channel` (not cancelled, not ended).
    pub fn has_consumer(&self, channel: ChannelId, consumer_tag: &[u8]) -> bool {
        self.channel(channel)
            .is_ok_and(|ch| ch.has_consumer(consumer_tag))
    }

    /// Closes the connection from this side: `connection.close` with `code` and `text`, no
    /// further operations, and [`Event::Closed`] with `error` once the broker's close-ok
    /// arrives (or [`CLOSE_TIMEOUT`] passes). Returns false if a close was already under way.
    pub fn close(&mut self, code: u16, text: &str, error: Error, now: Instant) -> bool {
        if let Phase::Handshake(_) = self.phase {
            // Nothing to close politely yet.
            if self.is_closed() {
                return false;
            }
            self.fail(error);
            return true;
        }
        self.begin_close(code, text, (0, 0), error, now)
    }

    fn begin_close(
        &mut self,
        code: u16,
        text: &str,
        class_method: (u16, u16),
        error: Error,
        now: Instant,
    ) -> bool {
        if self.closing.is_some() || self.is_closed() {
            return false;
        }
        let close = Frame::Method(
            0,
            ConnectionClose {
                reply_code: code,
                reply_text: truncate(text).into(),
                class_id: class_method.0,
                method_id: class_method.1,
            }
            .into(),
        );
        let _ = close.encode(&mut self.out);
        self.closing = Some(Closing {
            deadline: now + CLOSE_TIMEOUT,
            error,
        });
        true
    }

    fn violation(&mut self, v: Violation, now: Instant) {
        tracing::warn!(code = v.code, error = %v.error, "closing connection: protocol violation by the broker");
        let text = v.error.to_string();
        if !self.begin_close(v.code, &text, (0, 0), v.error.clone(), now) {
            // Already closing: a second violation changes nothing.
        }
    }

    /// The connection is over with `e`: every pending call, every channel, then the
    /// connection itself get their last events.
    fn fail(&mut self, e: Error) {
        if self.is_closed() {
            return;
        }
        tracing::debug!(error = %e, "connection ended");
        let mut numbers: Vec<u16> = self.channels.keys().copied().collect();
        numbers.sort_unstable();
        for n in numbers {
            if let Some(mut ch) = self.channels.remove(&n) {
                // A channel whose close crossed the broker's was told already.
                if !ch.has_ended() {
                    ch.fail(e.clone(), &mut self.events);
                }
            }
        }
        if self.blocked.take().is_some() {
            self.events.push_back(Event::Unblocked);
        }
        self.reply_deadlines.clear();
        self.error = Some(e.clone());
        self.phase = Phase::Closed;
        self.events.push_back(Event::Closed { error: e });
    }

    // ---------------------------------------------------------------- frames

    fn handle_frame(&mut self, frame: Frame, now: Instant) {
        if let Phase::Handshake(hs) = &mut self.phase {
            match hs.handle(&self.config, frame, &mut self.out) {
                Ok(None) => {}
                Ok(Some(tuned)) => {
                    self.decoder.set_frame_max(tuned.frame_max);
                    self.heartbeat = match tuned.heartbeat {
                        0 => None,
                        s => Some(Duration::from_secs(u64::from(s))),
                    };
                    if let Some(hb) = self.heartbeat {
                        self.heartbeat_send = hb / 2;
                        self.heartbeat_limit = hb * 2;
                    }
                    self.tuned = Some(tuned);
                    self.phase = Phase::Open;
                    self.events.push_back(Event::Connected);
                }
                Err(e) => self.fail(e),
            }
            return;
        }
        if let Err(v) = self.dispatch(frame, now) {
            self.violation(v, now);
        }
    }

    fn dispatch(&mut self, frame: Frame, now: Instant) -> std::result::Result<(), Violation> {
        let closing = self.closing.is_some();
        match frame {
            Frame::Heartbeat => Ok(()),
            Frame::Method(0, m) => self.connection_method(m, closing, now),
            // Spec 2.2.2.2: after sending connection.close, discard all but close/close-ok.
            _ if closing => Ok(()),
            Frame::ProtocolHeader(_) => Err(Violation::unexpected(
                0,
                "protocol header after the handshake".into(),
            )),
            Frame::Header(0, _) | Frame::Body(0, _) => Err(Violation::unexpected(
                0,
                "content frame on channel 0".into(),
            )),
            frame => {
                let id = frame.channel();
                let Some(ch) = self.channels.get_mut(&id) else {
                    return Err(Violation {
                        code: CHANNEL_ERROR,
                        error: Error::Protocol(format!("frame on channel {id}, which is not open")),
                    });
                };
                match ch.handle(frame, &mut self.events)? {
                    Outcome::Nothing => {}
                    Outcome::Send(f) => {
                        let _ = f.encode(&mut self.out);
                    }
                    Outcome::SendAndRelease(f) => {
                        let _ = f.encode(&mut self.out);
                        self.channels.remove(&id);
                    }
                    Outcome::Release => {
                        self.channels.remove(&id);
                    }
                }
                Ok(())
            }
        }
    }

    fn connection_method(
        &mut self,
        m: Method,
        closing: bool,
        _now: Instant,
    ) -> std::result::Result<(), Violation> {
        match m {
            Method::ConnectionClose(close) => {
                let _ = Frame::Method(0, ConnectionCloseOk {}.into()).encode(&mut self.out);
                let theirs = Error::ConnectionClosed {
                    code: close.reply_code,
                    text: close.reply_text.to_string_lossy().into_owned(),
                    class_id: close.class_id,
                    method_id: close.method_id,
                };
                // Closes that cross: the broker's reason wins unless it is a plain 200.
                let e = match self.closing.take() {
                    Some(ours) if close.reply_code == REPLY_SUCCESS => ours.error,
                    _ => theirs,
                };
                self.fail(e);
                Ok(())
            }
            Method::ConnectionCloseOk(_) if closing => {
                let e = self.dead_error();
                self.fail(e);
                Ok(())
            }
            _ if closing => Ok(()),
            Method::ConnectionBlocked(b) => {
                let reason = b.reason.to_string_lossy().into_owned();
                self.blocked = Some(reason.clone());
                self.events.push_back(Event::Blocked { reason });
                Ok(())
            }
            Method::ConnectionUnblocked(_) => {
                if self.blocked.take().is_some() {
                    self.events.push_back(Event::Unblocked);
                }
                Ok(())
            }
            Method::ConnectionUpdateSecretOk(_) => Ok(()),
            other => Err(Violation {
                code: UNEXPECTED_FRAME,
                error: Error::Protocol(format!(
                    "unexpected {}.{} on channel 0",
                    other.info().class_name,
                    other.info().method_name
                )),
            }),
        }
    }
}
