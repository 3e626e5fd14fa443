//! RPC calls out of frame events: every request paired with its delivery to a server, the
//! server's reply, the reply's delivery to the client and the server's ack — across connections.
//!
//! ```
//! use std::ops::ControlFlow;
//!
//! use amqp_dissect::rpc::{Limits, Pairing, Report};
//! use amqp_dissect::{dissect, Options};
//!
//! # fn calls(capture: &[u8]) -> Result<(), amqp_dissect::Unreadable> {
//! let mut pairing = Pairing::new(Limits::default());
//! let mut print = |report: Report| {
//!     if let Report::Call(call) = report {
//!         println!("call {} {} {:?}", call.number, call.outcome().name(), call.latency().total);
//!     }
//! };
//! dissect(capture, &Options::default(), |event| {
//!     pairing.event(event, &mut print);
//!     ControlFlow::Continue(())
//! })?;
//! pairing.finish(&mut print);
//! # Ok(())
//! # }
//! ```
//!
//! # How calls are paired
//! Tutorial six's convention: a request is a `basic.publish` whose content header has `reply-to`;
//! the server publishes its reply with the request's `correlation-id` to the default exchange,
//! with routing key = the request's `reply-to`. A call is keyed by (correlation id as bytes,
//! reply queue), which holds across connections and clients:
//!
//! - request → its delivery to a server: a `basic.deliver` (or `get-ok`) whose `reply-to` and
//!   correlation id are the request's;
//! - **direct reply-to**: a request with `reply-to = amq.rabbitmq.reply-to` is delivered with
//!   `reply-to` rewritten by the broker to `amq.rabbitmq.reply-to.<opaque>`; the delivery is
//!   paired by correlation id (the oldest such request still waiting), and from then on the call
//!   is also keyed by the rewritten name, which the reply is published to and delivered with;
//! - reply: a `basic.publish` with a correlation id and no `reply-to` whose routing key is a
//!   waiting call's reply queue, on any connection (a server may reply on another connection than
//!   the one it consumes on); its delivery: a `basic.deliver` with the same key;
//! - ack: the server's `basic.ack` (or `multiple` ack) of the delivery, on its channel;
//! - return: a `basic.return` with the request's correlation id and reply-to.
//!
//! A publish with a correlation id, no `reply-to`, and no call waiting for it is an
//! [`OrphanReply`](CallOutcome::OrphanReply) (its request is not in the capture).
//!
//! # Bounded memory: what is kept, and when a call is reported
//! Only unfinished calls are kept. A call is finished when its reply has been delivered to the
//! client (or the request was returned), no delivery of its request is still waiting for an ack,
//! and none went back to the queue unacked (a server gone, a requeueing reject) without being
//! delivered again — so a redelivery and the duplicate reply it causes are counted on the call. Finished
//! calls are reported at once ([`Limits::ordered`] `false`), or in order of their number: a
//! finished call then waits for every earlier one. At most [`Limits::max_pending`] calls are kept
//! (unfinished plus, when ordered, finished ones waiting); past that, the oldest unfinished call
//! is reported as it stands (`evicted`, with a [`Problem::Evicted`]), and a reply that comes for it
//! later is a [`Problem::LateReply`] (the keys of the last `max_pending` reported calls are
//! remembered for that). At [`Pairing::finish`] every call left is reported: without a reply it
//! is [`NoReply`](CallOutcome::NoReply).
//!
//! Per connection, the pairing keeps the consumers' ack modes, the message being assembled on
//! each channel and direction (one frame's worth of strings, its first body bytes), and the
//! deliveries waiting for an ack (at most 65,536 per channel; the oldest are forgotten beyond);
//! a connection's state is dropped at `connection.close-ok`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use amqp_codec::{Frame, Method, ShortString};
use bytes::Bytes;

use crate::{Event, Side, What};

mod call;
mod connection;
mod problem;

pub use call::{Call, CallOutcome, Latency, Leg};
pub use problem::{Problem, Unacked};

use connection::{Channel, Connection, Content, ContentMethod, Delivery, Props, MAX_UNACKED};

/// RabbitMQ's direct reply-to pseudo-queue, as a client names it in `reply-to`.
pub const DIRECT_REPLY_TO: &[u8] = b"amq.rabbitmq.reply-to";

/// The prefix of the per-request names the broker rewrites it to.
const DIRECT_REPLY_TO_PREFIX: &[u8] = b"amq.rabbitmq.reply-to.";

/// How much the pairing may keep, and in which order it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls kept at most (see the [module docs](self)).
    pub max_pending: usize,
    /// Report calls in order of their number (else as they finish).
    pub ordered: bool,
    /// Body bytes kept for [`Call::request_body`] and [`Call::reply_body`].
    pub preview: usize,
}

impl Default for Limits {
    /// 65,536 calls (a few hundred bytes each), in order, 32 body bytes.
    fn default() -> Self {
        Limits {
            max_pending: 65_536,
            ordered: true,
            preview: 32,
        }
    }
}

/// What the pairing hands out.
#[derive(Debug, Clone, PartialEq)]
// Calls are what the pairing is for; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum Report {
    /// A call, finished (or let go, or left at the end).
    Call(Call),
    /// A problem, as soon as it is seen.
    Problem(Problem),
}

/// (correlation id, reply queue): what a reply names of its call.
type Key = (Option<Bytes>, Bytes);

/// A call not reported yet.
#[derive(Debug)]
struct Pending {
    call: Call,
    /// The keys it is indexed by in `by_reply`.
    keys: Vec<Key>,
    /// Requests with `reply-to = amq.rabbitmq.reply-to`, before their delivery: indexed in
    /// `direct` rather than `by_reply`.
    direct: bool,
    /// Deliveries of its request to consumers with acks, not yet acked (or otherwise ended).
    outstanding: u32,
    /// Deliveries of its request that ended unacked and went back to the queue (a channel or
    /// connection gone, a requeueing reject), not yet delivered again.
    requeued: u32,
    replies: u32,
    reply_deliveries: u32,
}

/// The RPC pairing: feed it every [`Event`] of a dissection, in order, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct Pairing {
    limits: Limits,
    next_number: u64,
    /// Unfinished calls, by number (boxed: a call is ~700 bytes, and B-tree nodes move their
    /// values on every insert; unboxed, those moves were a fifth of `--rpc`'s instructions).
    pending: BTreeMap<u64, Box<Pending>>,
    /// Finished calls waiting for earlier ones (ordered mode).
    done: BTreeMap<u64, Box<Call>>,
    /// Calls by (correlation id, reply queue), oldest first.
    by_reply: HashMap<Key, Vec<u64>>,
    /// Keys in `by_reply` with no correlation id (rare: only then is a publish with neither
    /// correlation id nor reply-to looked up as a reply).
    uncorrelated: usize,
    /// Direct reply-to requests not yet delivered, by correlation id, oldest first.
    direct: HashMap<Option<Bytes>, VecDeque<u64>>,
    /// Keys of recently reported calls, to tell a late reply from an orphan.
    recent: HashMap<Key, u64>,
    recent_order: VecDeque<(Key, u64)>,
    /// Per TCP stream.
    connections: Vec<Option<Box<Connection>>>,
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Broker => 1,
    }
}

fn copy(s: &ShortString) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn is_direct(reply_to: &[u8]) -> bool {
    reply_to.starts_with(DIRECT_REPLY_TO_PREFIX)
}

impl Pairing {
    /// A pairing within `limits`.
    pub fn new(limits: Limits) -> Self {
        Pairing {
            limits,
            next_number: 1,
            pending: BTreeMap::new(),
            done: BTreeMap::new(),
            by_reply: HashMap::new(),
            uncorrelated: 0,
            direct: HashMap::new(),
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            connections: Vec::new(),
        }
    }

    /// Calls currently kept (unfinished, and finished ones waiting for earlier ones).
    pub fn kept(&self) -> usize {
        self.pending.len() + self.done.len()
    }

    /// Take one event; calls finished by it and problems found go to `out`.
    pub fn event(&mut self, event: &Event, out: &mut dyn FnMut(Report)) {
        match &event.what {
            What::Frame { frame, .. } => self.frame(event, frame, out),
            What::Closed { .. } => self.lost(event, out),
            // A damaged frame: what it was is unknown; the message it may have belonged to is
            // completed or dropped by the next method frame on its channel.
            What::Error { .. } => {}
        }
    }

    /// End of input: deliveries still unacked are reported, then every call left, in order.
    pub fn finish(&mut self, out: &mut dyn FnMut(Report)) {
        let streams: Vec<usize> = (0..self.connections.len()).collect();
        for stream in streams {
            if let Some(conn) = self.connections.get_mut(stream).and_then(Option::take) {
                self.drop_unacked(*conn, problem::Unacked::EndOfCapture, None, out);
            }
        }
        while let Some((_, pending)) = self.pending.pop_first() {
            let call = self.unindex(pending);
            self.report(call, out);
        }
        self.flush(out);
        while let Some((_, call)) = self.done.pop_first() {
            out(Report::Call(*call));
        }
    }

    fn connection(&mut self, stream: u32) -> &mut Connection {
        let i = stream as usize;
        if self.connections.len() <= i {
            self.connections.resize_with(i + 1, || None);
        }
        self.connections[i].get_or_insert_with(Box::default)
    }

    fn leg(event: &Event, channel: u16) -> Leg {
        Leg {
            stream: event.stream,
            channel,
            side: event.side,
            offset: event.offset,
            packet: event.packet,
            time: event.time,
            endpoints: event.endpoints.clone(),
            body_size: None,
            delivery_tag: None,
            redelivered: None,
        }
    }

    fn frame(&mut self, event: &Event, frame: &Frame, out: &mut dyn FnMut(Report)) {
        let side = side_index(event.side);
        let preview = self.limits.preview;
        let conn = self.connection(event.stream);
        if let Some(time) = event.time {
            if let Some((last, since_packet)) = conn.last_heard[side] {
                let gap = time - last;
                // AMQP 0-9-1 §4.2.7: a peer that sends nothing for the negotiated interval sends
                // a heartbeat; a longer silence is a missed heartbeat.
                if conn.heartbeat > 0 && !conn.closing && gap > f64::from(conn.heartbeat) {
                    out(Report::Problem(Problem::HeartbeatGap {
                        at: Self::leg(event, frame.channel()),
                        side: event.side,
                        interval: conn.heartbeat,
                        gap,
                        since_packet,
                    }));
                }
            }
            conn.last_heard[side] = Some((time, event.packet));
        }
        let complete = match frame {
            Frame::Method(channel, method) => {
                self.method(event, *channel, method, out);
                None
            }
            Frame::Header(channel, header) => {
                let content = &mut conn.channel(*channel).content[side];
                match content {
                    Some(c) if c.props.is_none() => {
                        c.props = Some(Props::from_header(header));
                        c.body_size = header.body_size;
                        c.leg.body_size = Some(header.body_size);
                        (header.body_size == 0).then_some(*channel)
                    }
                    _ => None,
                }
            }
            Frame::Body(channel, body) => {
                let content = &mut conn.channel(*channel).content[side];
                match content {
                    Some(c) if c.props.is_some() => {
                        c.received += body.len() as u64;
                        let room = preview.saturating_sub(c.preview.len());
                        c.preview
                            .extend_from_slice(body.get(..room).unwrap_or(body));
                        (c.received >= c.body_size).then_some(*channel)
                    }
                    _ => None,
                }
            }
            Frame::ProtocolHeader(_) | Frame::Heartbeat => None,
        };
        if let Some(channel) = complete {
            self.complete(event.stream, channel, side, out);
        }
    }

    fn method(
        &mut self,
        event: &Event,
        channel: u16,
        method: &Method,
        out: &mut dyn FnMut(Report),
    ) {
        let side = side_index(event.side);
        // A method frame ends any message still being assembled on its channel and direction
        // (a truncated or damaged one): what was seen of it still counts.
        if self.connection(event.stream).channel(channel).content[side]
            .as_ref()
            .is_some_and(|c| c.props.is_some())
        {
            self.complete(event.stream, channel, side, out);
        }
        let leg = Self::leg(event, channel);
        let conn = self.connection(event.stream);
        let client = event.side == Side::Client;
        let start = |conn: &mut Connection, method: ContentMethod, leg: Leg| {
            conn.channel(channel).content[side] = Some(Content {
                method,
                leg,
                props: None,
                body_size: 0,
                received: 0,
                preview: Vec::new(),
            });
        };
        match method {
            Method::BasicPublish(p) if client => start(
                conn,
                ContentMethod::Publish {
                    routing_key: p.routing_key.clone(),
                },
                leg,
            ),
            Method::BasicDeliver(d) if !client => {
                let no_ack = conn.consumers.get(d.consumer_tag.as_bytes()).copied();
                let leg = Leg {
                    delivery_tag: Some(d.delivery_tag),
                    redelivered: Some(d.redelivered),
                    ..leg
                };
                let method = ContentMethod::Deliver {
                    routing_key: d.routing_key.clone(),
                    delivery_tag: d.delivery_tag,
                    redelivered: d.redelivered,
                    no_ack,
                };
                start(conn, method, leg);
            }
            Method::BasicGetOk(g) if !client => {
                let no_ack = conn.channel(channel).gets.pop_front();
                let leg = Leg {
                    delivery_tag: Some(g.delivery_tag),
                    redelivered: Some(g.redelivered),
                    ..leg
                };
                let method = ContentMethod::Deliver {
                    routing_key: g.routing_key.clone(),
                    delivery_tag: g.delivery_tag,
                    redelivered: g.redelivered,
                    no_ack,
                };
                start(conn, method, leg);
            }
            Method::BasicReturn(r) if !client => start(
                conn,
                ContentMethod::Return {
                    reply_code: r.reply_code,
                    reply_text: r.reply_text.clone(),
                },
                leg,
            ),
            Method::BasicGet(g) if client => {
                let gets = &mut conn.channel(channel).gets;
                if gets.len() < MAX_UNACKED {
                    gets.push_back(g.no_ack);
                }
            }
            Method::BasicGetEmpty(_) if !client => {
                conn.channel(channel).gets.pop_front();
            }
            Method::BasicConsume(c) if client => {
                if c.nowait {
                    conn.add_consumer(&c.consumer_tag, c.no_ack);
                } else {
                    let consumes = &mut conn.channel(channel).consumes;
                    if consumes.len() < MAX_UNACKED {
                        consumes.push_back(c.no_ack);
                    }
                }
            }
            Method::BasicConsumeOk(c) if !client => {
                if let Some(no_ack) = conn.channel(channel).consumes.pop_front() {
                    conn.add_consumer(&c.consumer_tag, no_ack);
                }
            }
            // Acks from the broker are publisher confirms, not consumer acks.
            Method::BasicAck(a) if client => {
                let acked = take_acked(conn.channel(channel), a.delivery_tag, a.multiple);
                for (tag, delivery) in acked {
                    self.acked(delivery, tag, &leg, out);
                }
            }
            Method::BasicReject(r) if client => {
                let rejected = take_acked(conn.channel(channel), r.delivery_tag, false);
                for (tag, delivery) in rejected {
                    self.rejected(delivery, tag, &leg, "reject", r.requeue, out);
                }
            }
            Method::BasicNack(n) if client => {
                let rejected = take_acked(conn.channel(channel), n.delivery_tag, n.multiple);
                for (tag, delivery) in rejected {
                    self.rejected(delivery, tag, &leg, "nack", n.requeue, out);
                }
            }
            Method::BasicRecover(_) | Method::BasicRecoverAsync(_) if client => {
                let unacked = std::mem::take(&mut conn.channel(channel).unacked);
                self.ended(unacked, problem::Unacked::Recovered, Some(&leg), out);
            }
            Method::ChannelOpen(_) => {
                conn.channels.remove(&channel);
            }
            Method::ChannelClose(c) => {
                out(Report::Problem(Problem::Closed {
                    at: leg.clone(),
                    by: event.side,
                    code: c.reply_code,
                    text: copy(&c.reply_text),
                    cause: (c.class_id, c.method_id),
                }));
                if let Some(chan) = conn.channels.remove(&channel) {
                    self.ended(
                        chan.unacked,
                        problem::Unacked::ChannelClosed,
                        Some(&leg),
                        out,
                    );
                }
            }
            Method::ConnectionTuneOk(t) if client => conn.heartbeat = t.heartbeat,
            Method::ConnectionClose(c) => {
                out(Report::Problem(Problem::Closed {
                    at: leg.clone(),
                    by: event.side,
                    code: c.reply_code,
                    text: copy(&c.reply_text),
                    cause: (c.class_id, c.method_id),
                }));
                conn.closing = true;
                let channels = std::mem::take(&mut conn.channels);
                for chan in channels.into_values() {
                    self.ended(
                        chan.unacked,
                        problem::Unacked::ConnectionClosed,
                        Some(&leg),
                        out,
                    );
                }
            }
            Method::ConnectionCloseOk(_) => {
                if let Some(conn) = self
                    .connections
                    .get_mut(event.stream as usize)
                    .and_then(Option::take)
                {
                    self.drop_unacked(*conn, problem::Unacked::ConnectionClosed, Some(&leg), out);
                }
            }
            _ => {}
        }
    }

    /// The TCP connection ended with a FIN or RST.
    fn lost(&mut self, event: &Event, out: &mut dyn FnMut(Report)) {
        let Some(conn) = self
            .connections
            .get_mut(event.stream as usize)
            .and_then(Option::take)
        else {
            return;
        };
        let leg = Self::leg(event, 0);
        self.drop_unacked(*conn, problem::Unacked::ConnectionLost, Some(&leg), out);
    }

    fn drop_unacked(
        &mut self,
        conn: Connection,
        why: problem::Unacked,
        at: Option<&Leg>,
        out: &mut dyn FnMut(Report),
    ) {
        for chan in conn.channels.into_values() {
            self.ended(chan.unacked, why, at, out);
        }
    }

    /// Deliveries that ended without an ack.
    fn ended(
        &mut self,
        unacked: BTreeMap<u64, Delivery>,
        why: problem::Unacked,
        at: Option<&Leg>,
        out: &mut dyn FnMut(Report),
    ) {
        for delivery in unacked.into_values() {
            if !delivery.known {
                continue;
            }
            out(Report::Problem(Problem::Unacked {
                call: delivery.call,
                delivery: delivery.leg,
                why,
                at: at.cloned(),
            }));
            if let Some(number) = delivery.call {
                if why != problem::Unacked::EndOfCapture {
                    self.requeue(number);
                }
                self.settle_delivery(number, out);
            }
        }
    }

    /// A delivery of call `number`'s request went back to its queue: a redelivery (and, if the
    /// server had replied, a duplicate reply) may follow.
    fn requeue(&mut self, number: u64) {
        if let Some(p) = self.pending.get_mut(&number) {
            p.requeued += 1;
        }
    }

    fn acked(&mut self, delivery: Delivery, tag: u64, by: &Leg, out: &mut dyn FnMut(Report)) {
        let Some(number) = delivery.call else {
            return;
        };
        if let Some(p) = self.pending.get_mut(&number) {
            let same = p.call.delivery.as_ref().is_some_and(|d| {
                d.stream == delivery.leg.stream
                    && d.channel == delivery.leg.channel
                    && d.delivery_tag == Some(tag)
            });
            if same && p.call.ack.is_none() {
                p.call.ack = Some(Leg {
                    delivery_tag: Some(tag),
                    ..by.clone()
                });
            }
        }
        if delivery.known {
            self.settle_delivery(number, out);
        }
    }

    fn rejected(
        &mut self,
        delivery: Delivery,
        tag: u64,
        by: &Leg,
        method: &'static str,
        requeue: bool,
        out: &mut dyn FnMut(Report),
    ) {
        out(Report::Problem(Problem::Rejected {
            call: delivery.call,
            delivery: delivery.leg.clone(),
            by: Leg {
                delivery_tag: Some(tag),
                ..by.clone()
            },
            method,
            requeue,
        }));
        if let (Some(number), true) = (delivery.call, delivery.known) {
            if requeue {
                self.requeue(number);
            }
            self.settle_delivery(number, out);
        }
    }

    /// One delivery of call `number`'s request is no longer outstanding.
    fn settle_delivery(&mut self, number: u64, out: &mut dyn FnMut(Report)) {
        if let Some(p) = self.pending.get_mut(&number) {
            p.outstanding = p.outstanding.saturating_sub(1);
        }
        self.try_finish(number, out);
    }

    /// The message on (stream, channel, side) is complete (or cut short): pair it.
    fn complete(&mut self, stream: u32, channel: u16, side: usize, out: &mut dyn FnMut(Report)) {
        let conn = self.connection(stream);
        let Some(content) = conn.channel(channel).content[side].take() else {
            return;
        };
        let Some(props) = content.props else {
            return;
        };
        let preview = Bytes::from(content.preview);
        match content.method {
            ContentMethod::Publish { routing_key } => {
                if let Some(reply_to) = &props.reply_to {
                    self.request(content.leg, &routing_key, &props, reply_to, preview, out);
                } else if props.correlation_id.is_some() || self.uncorrelated > 0 {
                    self.reply(content.leg, &routing_key, props, preview, out);
                }
            }
            ContentMethod::Deliver {
                routing_key,
                delivery_tag,
                redelivered,
                no_ack,
            } => {
                let leg = content.leg;
                let call = if let Some(reply_to) = &props.reply_to {
                    Some(self.request_delivery(
                        leg.clone(),
                        &routing_key,
                        &props,
                        reply_to,
                        preview,
                        out,
                    ))
                } else {
                    if props.correlation_id.is_some() || self.uncorrelated > 0 {
                        self.reply_delivery(leg.clone(), &routing_key, &props, out);
                    }
                    None
                };
                if redelivered {
                    out(Report::Problem(Problem::Redelivered {
                        call,
                        delivery: leg.clone(),
                    }));
                }
                if no_ack != Some(true) {
                    let known = no_ack.is_some();
                    if let (Some(number), true) = (call, known) {
                        if let Some(p) = self.pending.get_mut(&number) {
                            p.outstanding += 1;
                        }
                    }
                    let conn = self.connection(stream);
                    let unacked = &mut conn.channel(channel).unacked;
                    unacked.insert(delivery_tag, Delivery { call, leg, known });
                    if unacked.len() > MAX_UNACKED {
                        if let Some((_, forgotten)) = unacked.pop_first() {
                            if let (Some(number), true) = (forgotten.call, forgotten.known) {
                                self.settle_delivery(number, out);
                            }
                        }
                    }
                }
                if let Some(number) = call {
                    self.try_finish(number, out);
                }
            }
            ContentMethod::Return {
                reply_code,
                reply_text,
            } => self.returned(content.leg, reply_code, &reply_text, &props, out),
        }
    }

    fn new_call(&mut self, out: &mut dyn FnMut(Report)) -> u64 {
        let number = self.next_number;
        self.next_number += 1;
        self.pending.insert(
            number,
            Box::new(Pending {
                call: Call::new(number),
                keys: Vec::new(),
                direct: false,
                outstanding: 0,
                requeued: 0,
                replies: 0,
                reply_deliveries: 0,
            }),
        );
        // Finished calls wait only behind older unfinished ones: letting the oldest unfinished
        // call go always frees room, down to the new call alone.
        while self.kept() > self.limits.max_pending.max(1) {
            let Some((&oldest, _)) = self.pending.first_key_value() else {
                break;
            };
            if oldest == number {
                break;
            }
            if let Some(p) = self.pending.remove(&oldest) {
                out(Report::Problem(Problem::Evicted { call: oldest }));
                let mut call = self.unindex(p);
                call.evicted = true;
                self.report(call, out);
            }
        }
        number
    }

    fn index(&mut self, number: u64, key: Key) {
        if key.0.is_none() {
            self.uncorrelated += 1;
        }
        self.by_reply.entry(key.clone()).or_default().push(number);
        if let Some(p) = self.pending.get_mut(&number) {
            p.keys.push(key);
        }
    }

    /// Remove a call from the indexes; it is about to be reported.
    fn unindex(&mut self, p: Box<Pending>) -> Call {
        for key in &p.keys {
            if let Some(numbers) = self.by_reply.get_mut(key) {
                numbers.retain(|&n| n != p.call.number);
                if numbers.is_empty() {
                    self.by_reply.remove(key);
                    if key.0.is_none() {
                        self.uncorrelated = self.uncorrelated.saturating_sub(1);
                    }
                }
            }
        }
        if p.direct {
            if let Some(queue) = self.direct.get_mut(&p.call.correlation_id) {
                queue.retain(|&n| n != p.call.number);
                if queue.is_empty() {
                    self.direct.remove(&p.call.correlation_id);
                }
            }
        }
        let capacity = self.limits.max_pending.max(1);
        for key in p.keys {
            self.recent.insert(key.clone(), p.call.number);
            self.recent_order.push_back((key, p.call.number));
            if self.recent_order.len() > capacity {
                if let Some((old, number)) = self.recent_order.pop_front() {
                    if self.recent.get(&old) == Some(&number) {
                        self.recent.remove(&old);
                    }
                }
            }
        }
        p.call
    }

    /// A call is finished: report it now, or once the calls before it are reported.
    fn report(&mut self, call: Call, out: &mut dyn FnMut(Report)) {
        if self.limits.ordered {
            self.done.insert(call.number, Box::new(call));
            self.flush(out);
        } else {
            out(Report::Call(call));
        }
    }

    /// Report the finished calls that no unfinished call precedes.
    fn flush(&mut self, out: &mut dyn FnMut(Report)) {
        let oldest_pending = self.pending.keys().next().copied().unwrap_or(u64::MAX);
        while self
            .done
            .first_key_value()
            .is_some_and(|(&n, _)| n < oldest_pending)
        {
            if let Some((_, call)) = self.done.pop_first() {
                out(Report::Call(*call));
            }
        }
    }

    fn try_finish(&mut self, number: u64, out: &mut dyn FnMut(Report)) {
        let finished = self.pending.get(&number).is_some_and(|p| {
            let c = &p.call;
            (c.reply_delivery.is_some() || c.returned.is_some())
                && p.outstanding == 0
                && p.requeued == 0
        });
        if finished {
            if let Some(p) = self.pending.remove(&number) {
                let call = self.unindex(p);
                self.report(call, out);
            }
        }
    }

    /// The oldest call indexed by `key` that `pick` accepts, else the oldest.
    fn find(&self, key: &Key, pick: impl Fn(&Pending) -> bool) -> Option<u64> {
        let numbers = self.by_reply.get(key)?;
        numbers
            .iter()
            .copied()
            .find(|n| self.pending.get(n).is_some_and(|p| pick(p)))
            .or_else(|| numbers.first().copied())
    }

    /// The oldest direct reply-to request with this correlation id not yet delivered, preferring
    /// one published on `stream` (a direct reply comes back on the requester's connection).
    fn take_direct(&mut self, correlation_id: &Option<Bytes>, stream: Option<u32>) -> Option<u64> {
        let queue = self.direct.get_mut(correlation_id)?;
        let at = stream
            .and_then(|s| {
                queue.iter().position(|n| {
                    self.pending
                        .get(n)
                        .and_then(|p| p.call.request.as_ref())
                        .is_some_and(|r| r.stream == s)
                })
            })
            .unwrap_or(0);
        let number = queue.remove(at)?;
        if queue.is_empty() {
            self.direct.remove(correlation_id);
        }
        if let Some(p) = self.pending.get_mut(&number) {
            p.direct = false;
        }
        Some(number)
    }

    fn request(
        &mut self,
        leg: Leg,
        routing_key: &ShortString,
        props: &Props,
        reply_to: &ShortString,
        preview: Bytes,
        out: &mut dyn FnMut(Report),
    ) {
        let number = self.new_call(out);
        let correlation_id = props.correlation_id.as_ref().map(copy);
        let reply_queue = copy(reply_to);
        let Some(p) = self.pending.get_mut(&number) else {
            return;
        };
        p.call.correlation_id = correlation_id.clone();
        p.call.queue = Some(copy(routing_key));
        p.call.reply_to = Some(reply_queue.clone());
        p.call.request = Some(leg);
        p.call.request_body = preview;
        if reply_queue.as_ref() == DIRECT_REPLY_TO {
            p.direct = true;
            self.direct
                .entry(correlation_id)
                .or_default()
                .push_back(number);
        } else {
            self.index(number, (correlation_id, reply_queue));
        }
    }

    fn request_delivery(
        &mut self,
        leg: Leg,
        routing_key: &ShortString,
        props: &Props,
        reply_to: &ShortString,
        preview: Bytes,
        out: &mut dyn FnMut(Report),
    ) -> u64 {
        let correlation_id = props.correlation_id.as_ref().map(copy);
        let key = (correlation_id.clone(), copy(reply_to));
        let redelivered = leg.redelivered == Some(true);
        let found = self
            .find(&key, |p| (p.call.deliveries > 0) == redelivered)
            .or_else(|| {
                if !is_direct(reply_to.as_bytes()) {
                    return None;
                }
                let number = self.take_direct(&correlation_id, None)?;
                self.index(number, key.clone());
                Some(number)
            });
        let number = match found {
            Some(n) => n,
            None => {
                // The request is not in the capture: the call starts here.
                let number = self.new_call(out);
                if let Some(p) = self.pending.get_mut(&number) {
                    p.call.correlation_id = correlation_id;
                    p.call.queue = Some(copy(routing_key));
                    p.call.reply_to = Some(key.1.clone());
                    p.call.request_body = preview;
                }
                self.index(number, key);
                number
            }
        };
        if let Some(p) = self.pending.get_mut(&number) {
            p.call.deliveries += 1;
            if redelivered {
                p.requeued = p.requeued.saturating_sub(1);
            }
            if p.replies == 0 {
                p.call.delivery = Some(leg);
            }
        }
        number
    }

    fn reply(
        &mut self,
        leg: Leg,
        routing_key: &ShortString,
        props: Props,
        preview: Bytes,
        out: &mut dyn FnMut(Report),
    ) {
        let correlation_id = props.correlation_id.as_ref().map(copy);
        let key = (correlation_id.clone(), copy(routing_key));
        let number = match self.find(&key, |p| p.replies == 0) {
            Some(n) => n,
            None => {
                let direct = is_direct(routing_key.as_bytes())
                    .then(|| self.take_direct(&correlation_id, None))
                    .flatten();
                match direct {
                    Some(n) => {
                        self.index(n, key);
                        n
                    }
                    None => match self.orphan(&key, &leg, out) {
                        Some(n) => n,
                        None => return,
                    },
                }
            }
        };
        let Some(p) = self.pending.get_mut(&number) else {
            return;
        };
        p.replies += 1;
        if p.call.reply.is_none() {
            p.call.reply = Some(leg);
            p.call.reply_body = preview;
            p.call.error = props.x_error;
        }
        p.call.duplicates = p.replies.max(p.reply_deliveries).saturating_sub(1);
    }

    fn reply_delivery(
        &mut self,
        leg: Leg,
        routing_key: &ShortString,
        props: &Props,
        out: &mut dyn FnMut(Report),
    ) {
        let correlation_id = props.correlation_id.as_ref().map(copy);
        let key = (correlation_id.clone(), copy(routing_key));
        let number = match self.find(&key, |p| p.reply_deliveries == 0) {
            Some(n) => n,
            None => {
                let direct = is_direct(routing_key.as_bytes())
                    .then(|| self.take_direct(&correlation_id, Some(leg.stream)))
                    .flatten();
                match direct {
                    Some(n) => {
                        self.index(n, key);
                        n
                    }
                    None => match self.orphan(&key, &leg, out) {
                        Some(n) => n,
                        None => return,
                    },
                }
            }
        };
        let Some(p) = self.pending.get_mut(&number) else {
            return;
        };
        p.reply_deliveries += 1;
        if p.call.reply_delivery.is_none() {
            p.call.reply_delivery = Some(leg);
            if p.call.reply.is_none() {
                // The reply's publish is not in the capture: its delivery tells what it said.
                p.call.error = props.x_error.clone();
            }
        }
        p.call.duplicates = p.replies.max(p.reply_deliveries).saturating_sub(1);
        self.try_finish(number, out);
    }

    /// A reply with no call waiting: late for a call already reported, or an orphan (a new call
    /// with no request). Without a correlation id it is neither: not RPC.
    fn orphan(&mut self, key: &Key, leg: &Leg, out: &mut dyn FnMut(Report)) -> Option<u64> {
        if let Some(&call) = self.recent.get(key) {
            out(Report::Problem(Problem::LateReply {
                call,
                at: leg.clone(),
            }));
            return None;
        }
        key.0.as_ref()?;
        let number = self.new_call(out);
        if let Some(p) = self.pending.get_mut(&number) {
            p.call.correlation_id = key.0.clone();
        }
        self.index(number, key.clone());
        Some(number)
    }

    fn returned(
        &mut self,
        leg: Leg,
        reply_code: u16,
        reply_text: &ShortString,
        props: &Props,
        out: &mut dyn FnMut(Report),
    ) {
        let Some(reply_to) = &props.reply_to else {
            return;
        };
        let correlation_id = props.correlation_id.as_ref().map(copy);
        let key = (correlation_id.clone(), copy(reply_to));
        let stream = leg.stream;
        let found = self
            .find(&key, |p| {
                p.call.returned.is_none()
                    && p.call.request.as_ref().is_some_and(|r| r.stream == stream)
            })
            .or_else(|| self.take_direct(&correlation_id, Some(stream)));
        let Some(number) = found else {
            return;
        };
        if let Some(p) = self.pending.get_mut(&number) {
            if p.call.returned.is_none() {
                let mut error = format!("{reply_code} ").into_bytes();
                error.extend_from_slice(reply_text.as_bytes());
                p.call.error = Some(Bytes::from(error));
                p.call.returned = Some(leg);
            }
        }
        self.try_finish(number, out);
    }
}

/// Take the deliveries an ack, reject or nack names: `tag`, or with `multiple` every one up to
/// it (tag 0 with `multiple`: all of them, AMQP 0-9-1 §1.8.3.13).
fn take_acked(chan: &mut Channel, tag: u64, multiple: bool) -> Vec<(u64, Delivery)> {
    if !multiple {
        return chan
            .unacked
            .remove(&tag)
            .map(|d| vec![(tag, d)])
            .unwrap_or_default();
    }
    let taken = if tag == 0 {
        std::mem::take(&mut chan.unacked)
    } else {
        let rest = chan.unacked.split_off(&tag.saturating_add(1));
        std::mem::replace(&mut chan.unacked, rest)
    };
    taken.into_iter().collect()
}

#[cfg(test)]
mod tests;
