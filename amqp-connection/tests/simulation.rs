//! A simulation of tutorial six's RPC over two connection cores and an in-memory broker, with
//! seeded delays, dropped connections and broker restarts: every call the client starts gets
//! exactly one outcome, in time.
//!
//! - The **RPC client** (one [`Connection`] at a time) declares a server-named exclusive reply
//!   queue, consumes it, and publishes each request to `rpc_queue` (mandatory, with `reply_to`
//!   and `correlation_id`). A call's deadline covers its whole life, set-up and reconnections
//!   included. Its outcome is the answer, or a typed error: the connection was lost while it was
//!   out, it ran out of time, or the broker returned it unroutable.
//! - The **RPC server** (one [`Connection`] at a time) declares `rpc_queue` (durable or not, per
//!   seed), sets a prefetch, consumes with acks, answers each request after a random processing
//!   time, and acks a little later (so that a drop between the reply and its ack makes the
//!   broker deliver the request again, and the client see a duplicate answer).
//! - The **broker** is a model written here: the handshake with heartbeats, channels,
//!   `queue.declare` (server-named and exclusive queues, 405 for another connection's exclusive
//!   queue), `basic.qos`, `basic.consume`/`cancel`, `basic.publish` through the default exchange
//!   with `mandatory` and `basic.return`, deliveries with per-channel delivery tags and the
//!   prefetch window, `basic.ack`/`reject`/`nack`, unacked deliveries requeued when their
//!   connection goes, exclusive queues deleted with their owner, `connection.close`.
//! - **The network** carries each direction of each connection as a queue of byte batches with a
//!   seeded delay (order kept); the client core gets them cut into random pieces.
//! - **Chaos**, at seeded times: a connection dropped with EOF on both sides; a connection the
//!   broker forgets without a word (the client only learns by the silence: heartbeats); the
//!   client closing politely and reconnecting; the broker restarting, with a
//!   `connection.close` 320 or a crash, down for a while, durable queues kept and others lost.
//!
//! Everything runs on a simulated clock, event by event: each step jumps to the next deadline
//! of a core, a timer of an application, a network delivery, a broker heartbeat or a chaos event.
//! The same seed gives the same run.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use amqp_codec::{
    encode_message, Assembled, BasicAck, BasicCancelOk, BasicConsume, BasicConsumeOk, BasicDeliver,
    BasicProperties, BasicQos, BasicQosOk, BasicReturn, ChannelClose, ChannelCloseOk,
    ChannelOpenOk, ConnectionClose, ConnectionCloseOk, ConnectionOpenOk, ConnectionStart,
    ConnectionTune, FieldTable, Frame, FrameDecoder, MessageAssembler, Method, QueueDeclare,
    QueueDeclareOk, ShortString,
};
use amqp_connection::{ChannelId, Connection, ConnectionConfig, Error, Event, Reply};

const HEARTBEAT_SECS: u16 = 2;
const FRAME_MAX: u32 = 131_072;
/// A call's whole life, from its start to its outcome.
const CALL_TIMEOUT: Duration = Duration::from_secs(4);
/// The cores' bound on a synchronous method's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
const RPC_QUEUE: &str = "rpc_queue";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the server computes: cheap, and wrong answers cannot hide.
fn answer(n: u64) -> u64 {
    n * n + 1
}

// ---------------------------------------------------------------- seeded randomness

/// SplitMix64: small, fast, and the same sequence on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.next() % one_in == 0
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        ms(self.range(lo, hi))
    }
}

// ---------------------------------------------------------------- the network

enum Item {
    Bytes(Bytes),
    Eof,
}

/// One direction of one TCP connection: batches in order, each with its arrival time.
#[derive(Default)]
struct Pipe {
    items: VecDeque<(Duration, Item)>,
    last: Duration,
}

impl Pipe {
    fn send(&mut self, at: Duration, item: Item) {
        // TCP keeps order: nothing overtakes what was sent before it.
        let at = at.max(self.last);
        self.last = at;
        self.items.push_back((at, item));
    }

    fn next_at(&self) -> Option<Duration> {
        self.items.front().map(|(at, _)| *at)
    }

    fn due(&mut self, now: Duration) -> Option<Item> {
        match self.items.front() {
            Some((at, _)) if *at <= now => self.items.pop_front().map(|(_, i)| i),
            _ => None,
        }
    }
}

/// Both directions of one connection, and its latency.
struct Link {
    to_broker: Pipe,
    to_client: Pipe,
    delay: (u64, u64),
}

// ---------------------------------------------------------------- the broker

#[derive(Clone)]
struct Msg {
    properties: BasicProperties,
    body: Bytes,
    redelivered: bool,
}

struct Queue {
    durable: bool,
    exclusive_to: Option<u64>,
    messages: VecDeque<Msg>,
    /// (link, channel, consumer tag), served in turn.
    consumers: Vec<(u64, u16, Bytes)>,
    next_consumer: usize,
}

struct BrokerChannel {
    assembler: MessageAssembler,
    prefetch: u16,
    next_tag: u64,
    unacked: BTreeMap<u64, (String, Msg)>,
    /// tag -> (queue, no_ack)
    consumers: BTreeMap<Bytes, (String, bool)>,
    /// The broker closed it and waits for close-ok: everything else is dropped.
    closing: bool,
}

#[derive(PartialEq)]
enum Stage {
    Header,
    StartOk,
    TuneOk,
    Open,
    Running,
}

struct BrokerConn {
    decoder: FrameDecoder,
    input: BytesMut,
    stage: Stage,
    channels: BTreeMap<u16, BrokerChannel>,
    out: BytesMut,
    last_send: Duration,
    /// Sent its close-ok (or a close): nothing more but EOF.
    finished: bool,
    /// Alive but deaf: reads nothing, delivers nothing, heartbeats on (issue 13's hostile
    /// broker that "goes silent after connection.open-ok").
    stalled: bool,
}

#[derive(Default)]
struct Broker {
    down_until: Option<Duration>,
    queues: BTreeMap<String, Queue>,
    conns: BTreeMap<u64, BrokerConn>,
    next_name: u64,
    /// Requests published to rpc_queue, replies published to a reply queue, returned.
    published: u64,
    returned: u64,
}

fn put(out: &mut BytesMut, channel: u16, m: impl Into<Method>) {
    Frame::Method(channel, m.into())
        .encode(out)
        .expect("broker frames encode");
}

impl Broker {
    fn is_up(&self, now: Duration) -> bool {
        self.down_until.is_none_or(|t| now >= t)
    }

    fn accept(&mut self, link: u64, now: Duration) {
        self.conns.insert(
            link,
            BrokerConn {
                decoder: FrameDecoder::new(FRAME_MAX),
                input: BytesMut::new(),
                stage: Stage::Header,
                channels: BTreeMap::new(),
                out: BytesMut::new(),
                last_send: now,
                finished: false,
                stalled: false,
            },
        );
    }

    /// Bytes from the client of `link`.
    fn input(&mut self, link: u64, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(&link) else {
            return; // forgotten: what the client sends goes nowhere
        };
        if conn.finished || conn.stalled {
            return;
        }
        conn.input.extend_from_slice(bytes);
        loop {
            let Some(conn) = self.conns.get_mut(&link) else {
                return;
            };
            let frame = match conn.decoder.decode(&mut conn.input) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => panic!("the client sent a bad frame: {e}"),
            };
            self.frame(link, frame);
        }
        self.dispatch();
    }

    fn frame(&mut self, link: u64, frame: Frame) {
        let conn = self.conns.get_mut(&link).expect("a live connection");
        if conn.finished {
            return;
        }
        if conn.stage == Stage::Running && frame.channel() != 0 {
            self.channel_frame(link, frame);
            return;
        }
        match (&conn.stage, frame) {
            (Stage::Header, Frame::ProtocolHeader(_)) => {
                let start = ConnectionStart {
                    version_major: 0,
                    version_minor: 9,
                    server_properties: FieldTable::new().with("product", "simulated broker"),
                    mechanisms: "PLAIN".into(),
                    locales: "en_US".into(),
                };
                put(&mut conn.out, 0, start);
                conn.stage = Stage::StartOk;
            }
            (Stage::StartOk, Frame::Method(0, Method::ConnectionStartOk(_))) => {
                let tune = ConnectionTune {
                    channel_max: 2047,
                    frame_max: FRAME_MAX,
                    heartbeat: HEARTBEAT_SECS,
                };
                put(&mut conn.out, 0, tune);
                conn.stage = Stage::TuneOk;
            }
            (Stage::TuneOk, Frame::Method(0, Method::ConnectionTuneOk(t))) => {
                assert_eq!(t.heartbeat, HEARTBEAT_SECS);
                conn.stage = Stage::Open;
            }
            (Stage::Open, Frame::Method(0, Method::ConnectionOpen(_))) => {
                put(&mut conn.out, 0, ConnectionOpenOk::default());
                conn.stage = Stage::Running;
            }
            (Stage::Running, Frame::Heartbeat) => {}
            (Stage::Running, Frame::Method(0, Method::ConnectionClose(_))) => {
                put(&mut conn.out, 0, ConnectionCloseOk {});
                conn.finished = true;
            }
            // The answer to a close of ours (a restart): the connection is going anyway.
            (Stage::Running, Frame::Method(0, Method::ConnectionCloseOk(_))) => {}
            (_, frame) => panic!("the client sent {frame:?} out of place"),
        }
    }

    fn channel_frame(&mut self, link: u64, frame: Frame) {
        let n = frame.channel();
        let conn = self.conns.get_mut(&link).expect("a live connection");
        if let Frame::Method(_, Method::ChannelOpen(_)) = frame {
            assert!(!conn.channels.contains_key(&n), "channel {n} opened twice");
            conn.channels.insert(
                n,
                BrokerChannel {
                    assembler: MessageAssembler::new(n),
                    prefetch: 0,
                    next_tag: 1,
                    unacked: BTreeMap::new(),
                    consumers: BTreeMap::new(),
                    closing: false,
                },
            );
            put(&mut conn.out, n, ChannelOpenOk::default());
            return;
        }
        let ch = conn
            .channels
            .get_mut(&n)
            .unwrap_or_else(|| panic!("a frame on channel {n}, which is not open"));
        if ch.closing {
            // After its channel.close the broker drops all but close and close-ok; a close
            // that crossed its own is answered, and the close-ok ends the channel.
            match frame {
                Frame::Method(_, Method::ChannelClose(_)) => {
                    put(&mut conn.out, n, ChannelCloseOk {})
                }
                Frame::Method(_, Method::ChannelCloseOk(_)) => {
                    let ch = conn.channels.remove(&n).expect("present");
                    self.release_channel(link, ch);
                }
                _ => {}
            }
            return;
        }
        let assembled = ch
            .assembler
            .push(frame)
            .expect("the client's content is in order");
        match assembled {
            None => {}
            Some(Assembled::Message(msg)) => {
                let Method::BasicPublish(p) = msg.method else {
                    panic!("content with {:?}", msg.method)
                };
                self.publish(
                    link,
                    n,
                    p.exchange.as_bytes(),
                    p.routing_key,
                    p.mandatory,
                    msg.header.properties,
                    msg.body,
                );
            }
            Some(Assembled::Method(m)) => self.channel_method(link, n, m),
        }
    }

    fn channel_method(&mut self, link: u64, n: u16, m: Method) {
        let conn = self.conns.get_mut(&link).expect("a live connection");
        let ch = conn.channels.get_mut(&n).expect("an open channel");
        match m {
            Method::ChannelClose(_) => {
                let ch = conn.channels.remove(&n).expect("present");
                put(&mut conn.out, n, ChannelCloseOk {});
                self.release_channel(link, ch);
            }
            Method::QueueDeclare(QueueDeclare {
                queue,
                durable,
                exclusive,
                ..
            }) => {
                let name = if queue.is_empty() {
                    self.next_name += 1;
                    format!("amq.gen-{}", self.next_name)
                } else {
                    queue.to_string_lossy().into_owned()
                };
                if let Some(q) = self.queues.get(&name) {
                    if q.exclusive_to.is_some_and(|owner| owner != link) {
                        ch.closing = true;
                        let close = ChannelClose {
                            reply_code: 405,
                            reply_text: format!("RESOURCE_LOCKED - queue '{name}'").into(),
                            class_id: 50,
                            method_id: 10,
                        };
                        put(&mut conn.out, n, close);
                        return;
                    }
                } else {
                    self.queues.insert(
                        name.clone(),
                        Queue {
                            durable,
                            exclusive_to: exclusive.then_some(link),
                            messages: VecDeque::new(),
                            consumers: Vec::new(),
                            next_consumer: 0,
                        },
                    );
                }
                let q = &self.queues[&name];
                let ok = QueueDeclareOk {
                    queue: name.as_str().into(),
                    message_count: q.messages.len() as u32,
                    consumer_count: q.consumers.len() as u32,
                };
                put(&mut conn.out, n, ok);
            }
            Method::BasicQos(BasicQos { prefetch_count, .. }) => {
                ch.prefetch = prefetch_count;
                put(&mut conn.out, n, BasicQosOk {});
            }
            Method::BasicConsume(BasicConsume {
                queue,
                consumer_tag,
                no_ack,
                ..
            }) => {
                let name = queue.to_string_lossy().into_owned();
                let Some(q) = self.queues.get_mut(&name) else {
                    ch.closing = true;
                    let close = ChannelClose {
                        reply_code: 404,
                        reply_text: format!("NOT_FOUND - no queue '{name}'").into(),
                        class_id: 60,
                        method_id: 20,
                    };
                    put(&mut conn.out, n, close);
                    return;
                };
                let tag = if consumer_tag.is_empty() {
                    self.next_name += 1;
                    Bytes::from(format!("amq.ctag-{}", self.next_name))
                } else {
                    consumer_tag.into_bytes()
                };
                q.consumers.push((link, n, tag.clone()));
                ch.consumers.insert(tag.clone(), (name, no_ack));
                put(
                    &mut conn.out,
                    n,
                    BasicConsumeOk {
                        consumer_tag: ShortString::from(tag),
                    },
                );
            }
            Method::BasicCancel(c) => {
                let tag = c.consumer_tag.clone().into_bytes();
                if let Some((queue, _)) = ch.consumers.remove(&tag) {
                    if let Some(q) = self.queues.get_mut(&queue) {
                        q.consumers
                            .retain(|(l, c, t)| !(*l == link && *c == n && *t == tag));
                    }
                }
                if !c.nowait {
                    put(
                        &mut conn.out,
                        n,
                        BasicCancelOk {
                            consumer_tag: c.consumer_tag,
                        },
                    );
                }
            }
            Method::BasicAck(BasicAck {
                delivery_tag,
                multiple,
            }) => {
                let tags: Vec<u64> = if multiple {
                    ch.unacked.range(..=delivery_tag).map(|(t, _)| *t).collect()
                } else {
                    ch.unacked
                        .contains_key(&delivery_tag)
                        .then_some(delivery_tag)
                        .into_iter()
                        .collect()
                };
                if tags.is_empty() {
                    ch.closing = true;
                    let close = ChannelClose {
                        reply_code: 406,
                        reply_text: format!(
                            "PRECONDITION_FAILED - unknown delivery tag {delivery_tag}"
                        )
                        .into(),
                        class_id: 60,
                        method_id: 80,
                    };
                    put(&mut conn.out, n, close);
                    return;
                }
                for t in tags {
                    ch.unacked.remove(&t);
                }
            }
            Method::BasicReject(r) => {
                if let Some((queue, msg)) = ch.unacked.remove(&r.delivery_tag) {
                    if r.requeue {
                        self.requeue(&queue, msg);
                    }
                }
            }
            other => panic!("the simulated broker does not expect {other:?}"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn publish(
        &mut self,
        link: u64,
        n: u16,
        exchange: &[u8],
        routing_key: ShortString,
        mandatory: bool,
        properties: BasicProperties,
        body: Bytes,
    ) {
        assert!(exchange.is_empty(), "the default exchange only");
        let name = routing_key.to_string_lossy().into_owned();
        self.published += 1;
        match self.queues.get_mut(&name) {
            Some(q) => q.messages.push_back(Msg {
                properties,
                body,
                redelivered: false,
            }),
            None if mandatory => {
                self.returned += 1;
                let conn = self.conns.get_mut(&link).expect("a live connection");
                let ret = BasicReturn {
                    reply_code: 312,
                    reply_text: "NO_ROUTE".into(),
                    exchange: "".into(),
                    routing_key,
                };
                encode_message(&mut conn.out, n, &ret.into(), &properties, &body, FRAME_MAX)
                    .expect("a return encodes");
            }
            None => {}
        }
    }

    fn requeue(&mut self, queue: &str, mut msg: Msg) {
        if let Some(q) = self.queues.get_mut(queue) {
            msg.redelivered = true;
            q.messages.push_front(msg);
        }
    }

    /// A channel is gone: its unacked deliveries go back, its consumers stop.
    fn release_channel(&mut self, link: u64, ch: BrokerChannel) {
        for (tag, (queue, _)) in &ch.consumers {
            if let Some(q) = self.queues.get_mut(queue) {
                q.consumers.retain(|(l, _, t)| !(*l == link && t == tag));
            }
        }
        for (_, (queue, msg)) in ch.unacked.into_iter().rev() {
            self.requeue(&queue, msg);
        }
    }

    /// The connection of `link` is gone (EOF, forgotten, restart): everything it held goes.
    fn drop_conn(&mut self, link: u64) {
        let Some(conn) = self.conns.remove(&link) else {
            return;
        };
        for (_, ch) in conn.channels {
            self.release_channel(link, ch);
        }
        self.queues.retain(|_, q| q.exclusive_to != Some(link));
    }

    /// Deliveries to every consumer with room in its prefetch window, in turn.
    fn dispatch(&mut self) {
        let names: Vec<String> = self.queues.keys().cloned().collect();
        for name in names {
            loop {
                let q = self.queues.get_mut(&name).expect("present");
                if q.messages.is_empty() || q.consumers.is_empty() {
                    break;
                }
                let count = q.consumers.len();
                let mut chosen = None;
                for i in 0..count {
                    let at = (q.next_consumer + i) % count;
                    let (link, n, tag) = &q.consumers[at];
                    let Some(ch) = self
                        .conns
                        .get(link)
                        .filter(|c| !c.finished && !c.stalled)
                        .and_then(|c| c.channels.get(n))
                    else {
                        continue;
                    };
                    let no_ack = ch.consumers.get(tag).is_some_and(|c| c.1);
                    if ch.closing
                        || !(no_ack || ch.prefetch == 0 || ch.unacked.len() < ch.prefetch.into())
                    {
                        continue;
                    }
                    chosen = Some((at, *link, *n, tag.clone(), no_ack));
                    break;
                }
                let Some((at, link, n, tag, no_ack)) = chosen else {
                    break;
                };
                q.next_consumer = at + 1;
                let msg = q.messages.pop_front().expect("not empty");
                let conn = self.conns.get_mut(&link).expect("chosen live");
                let ch = conn.channels.get_mut(&n).expect("chosen open");
                let delivery_tag = ch.next_tag;
                ch.next_tag += 1;
                let deliver = BasicDeliver {
                    consumer_tag: ShortString::from(tag),
                    delivery_tag,
                    redelivered: msg.redelivered,
                    exchange: "".into(),
                    routing_key: name.as_str().into(),
                };
                encode_message(
                    &mut conn.out,
                    n,
                    &deliver.into(),
                    &msg.properties,
                    &msg.body,
                    FRAME_MAX,
                )
                .expect("a delivery encodes");
                if !no_ack {
                    ch.unacked.insert(delivery_tag, (name.clone(), msg));
                }
            }
        }
    }

    /// A restart: every connection goes (told with a 320 close, or not at all), durable queues
    /// stay with their messages, the others are lost.
    fn restart(&mut self, graceful: bool) -> Vec<u64> {
        let links: Vec<u64> = self.conns.keys().copied().collect();
        for link in &links {
            if graceful {
                let conn = self.conns.get_mut(link).expect("present");
                let close = ConnectionClose {
                    reply_code: 320,
                    reply_text: "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'".into(),
                    class_id: 0,
                    method_id: 0,
                };
                put(&mut conn.out, 0, close);
            }
        }
        links
    }

    fn forget_transient_queues(&mut self) {
        self.queues.retain(|_, q| q.durable);
        for q in self.queues.values_mut() {
            q.consumers.clear();
        }
    }
}

// ---------------------------------------------------------------- the applications

/// Where a session's set-up is.
#[derive(Debug, Clone, PartialEq)]
enum Setup {
    Handshake,
    /// Waiting for the reply to the `step`-th call of the set-up.
    Step(usize),
    Ready,
}

/// One connection of an application: its core, its link, where its set-up is.
struct Session {
    core: Connection,
    link: u64,
    channel: Option<ChannelId>,
    setup: Setup,
    /// The queue the set-up's declare named.
    queue: Option<ShortString>,
    consumer_tag: Option<ShortString>,
}

impl Session {
    fn new(link: u64, t0: Instant, now: Duration) -> Session {
        let config = ConnectionConfig {
            heartbeat: HEARTBEAT_SECS,
            connection_timeout: Duration::from_secs(3),
            ..ConnectionConfig::default()
        };
        let mut core = Connection::new(config, t0 + now);
        core.set_reply_timeout(REPLY_TIMEOUT);
        Session {
            core,
            link,
            channel: None,
            setup: Setup::Handshake,
            queue: None,
            consumer_tag: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Answer(u64),
    /// The connection it went out on was lost (with the core's reason).
    ConnectionLost(String),
    Timeout,
    NoRoute,
}

#[derive(Debug)]
struct Call {
    n: u64,
    deadline: Duration,
    /// The link it was published on, once it was.
    sent_on: Option<u64>,
}

#[derive(Default, Debug)]
struct Stats {
    calls: u64,
    answers: u64,
    lost: u64,
    timeouts: u64,
    no_route: u64,
    duplicates_ignored: u64,
    late_ignored: u64,
    client_connections: u64,
    server_connections: u64,
    refused: u64,
    drops: u64,
    forgets: u64,
    polite_closes: u64,
    stalls: u64,
    restarts: u64,
    steps: u64,
    /// The core's reason each time a connection of the client or the server ended.
    ends: BTreeMap<String, u64>,
}

// ---------------------------------------------------------------- the simulation

struct Sim {
    rng: Rng,
    t0: Instant,
    now: Duration,
    broker: Broker,
    links: BTreeMap<u64, Link>,
    next_link: u64,
    rpc_queue_durable: bool,
    prefetch: u16,
    // The client.
    client: Option<Session>,
    client_reconnect_at: Option<Duration>,
    calls: BTreeMap<u64, Call>,
    next_call: u64,
    next_call_at: Option<Duration>,
    /// Every outcome given, by call: given once.
    outcomes: BTreeMap<u64, (Duration, Outcome)>,
    /// Calls timed out in a row on the current connection: at 3 the client gives up on it.
    timeouts_in_a_row: u32,
    // The server.
    server: Option<Session>,
    server_reconnect_at: Option<Duration>,
    /// (ready at, link, channel, delivery tag, reply_to, correlation id, n)
    work: Vec<(Duration, u64, ChannelId, u64, ShortString, ShortString, u64)>,
    /// (at, link, channel, delivery tag): acks sent a little after the reply.
    acks: Vec<(Duration, u64, ChannelId, u64)>,
    /// When the ready server next checks that the broker still answers it (a `basic.qos`, a
    /// synchronous call: a stalled broker lets its reply deadline pass).
    server_ping_at: Option<Duration>,
    next_chaos_at: Duration,
    /// Steps in a row at the same instant.
    stuck: u32,
    stats: Stats,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let rpc_queue_durable = rng.chance(2);
        let prefetch = rng.range(1, 4) as u16;
        let next_chaos_at = rng.millis(500, 3000);
        Sim {
            rng,
            t0: Instant::now(),
            now: Duration::ZERO,
            broker: Broker::default(),
            links: BTreeMap::new(),
            next_link: 0,
            rpc_queue_durable,
            prefetch,
            client: None,
            client_reconnect_at: Some(Duration::ZERO),
            calls: BTreeMap::new(),
            next_call: 0,
            next_call_at: Some(ms(50)),
            outcomes: BTreeMap::new(),
            timeouts_in_a_row: 0,
            server: None,
            server_reconnect_at: Some(ms(10)),
            work: Vec::new(),
            acks: Vec::new(),
            server_ping_at: None,
            next_chaos_at,
            stuck: 0,
            stats: Stats::default(),
        }
    }

    fn instant(&self) -> Instant {
        self.t0 + self.now
    }

    /// A new TCP connection, or None while the broker is down (connection refused).
    fn connect(&mut self) -> Option<Session> {
        if !self.broker.is_up(self.now) {
            self.stats.refused += 1;
            return None;
        }
        self.next_link += 1;
        let link = self.next_link;
        let base = self.rng.range(0, 20);
        let jitter = self.rng.range(0, 30);
        self.links.insert(
            link,
            Link {
                to_broker: Pipe::default(),
                to_client: Pipe::default(),
                delay: (base, base + jitter),
            },
        );
        self.broker.accept(link, self.now);
        let mut s = Session::new(link, self.t0, self.now);
        s.core.set_peer(format!("link {link}"));
        Some(s)
    }

    /// Runs `steps` steps with calls starting, then lets every call finish.
    fn run(mut self, steps: u64) -> Stats {
        for _ in 0..steps {
            self.step();
        }
        // No new calls: every call started must end by its deadline.
        self.next_call_at = None;
        let last_deadline = self
            .calls
            .values()
            .map(|c| c.deadline)
            .max()
            .unwrap_or(self.now);
        let mut guard = 0;
        while !self.calls.is_empty() {
            guard += 1;
            assert!(guard < 1_000_000, "the simulation stopped moving");
            self.step();
            assert!(
                self.now <= last_deadline,
                "calls still waiting past every deadline: {:?}",
                self.calls
            );
        }
        self.stats
    }

    /// Jumps to the next thing that happens and handles everything due then.
    fn step(&mut self) {
        self.stats.steps += 1;
        let next = self.next_wake();
        assert!(next >= self.now, "time went backwards");
        // Everything due is handled in one step, so the clock must move on: a deadline that
        // stays due (a core's, an application's) would spin here as in a real driver.
        if next == self.now {
            self.stuck += 1;
            assert!(self.stuck < 100, "no progress at {:?}", self.now);
        } else {
            self.stuck = 0;
        }
        self.now = next;
        self.network();
        self.chaos();
        self.broker_tick();
        self.client_tick();
        self.server_tick();
        self.flush();
    }

    fn next_wake(&mut self) -> Duration {
        let mut next = self.next_chaos_at;
        let mut at = |t: Option<Duration>| {
            if let Some(t) = t {
                next = next.min(t);
            }
        };
        for link in self.links.values() {
            at(link.to_broker.next_at());
            at(link.to_client.next_at());
        }
        let t0 = self.t0;
        let deadline = |s: &mut Option<Session>| {
            s.as_mut()
                .and_then(|s| s.core.poll_timeout())
                .map(|d| d.saturating_duration_since(t0))
        };
        at(deadline(&mut self.client));
        at(deadline(&mut self.server));
        at(self.client_reconnect_at);
        at(self.server_reconnect_at);
        at(self.next_call_at);
        at(self.calls.values().map(|c| c.deadline).min());
        at(self.work.iter().map(|w| w.0).min());
        at(self.acks.iter().map(|a| a.0).min());
        at(self.server_ping_at.filter(|_| self.server.is_some()));
        at(self.broker.down_until.filter(|t| *t > self.now));
        let half = Duration::from_secs(HEARTBEAT_SECS.into()) / 2;
        at(self
            .broker
            .conns
            .values()
            .filter(|c| c.stage == Stage::Running && !c.finished)
            .map(|c| c.last_send + half)
            .min());
        next.max(self.now)
    }

    // ------------------------------------------------------------ network

    fn network(&mut self) {
        let now = self.now;
        let ids: Vec<u64> = self.links.keys().copied().collect();
        for id in ids {
            while let Some(item) = self.links.get_mut(&id).and_then(|l| l.to_broker.due(now)) {
                match item {
                    Item::Bytes(b) => self.broker.input(id, &b),
                    Item::Eof => {
                        // The client closed its socket: the broker cleans up and closes too.
                        if self.broker.conns.contains_key(&id) {
                            self.broker.drop_conn(id);
                            self.broker.dispatch();
                            let link = self.links.get_mut(&id).expect("present");
                            let delay = self.rng.range(link.delay.0, link.delay.1);
                            link.to_client.send(now + ms(delay), Item::Eof);
                        }
                    }
                }
            }
            while let Some(item) = self.links.get_mut(&id).and_then(|l| l.to_client.due(now)) {
                let t = self.t0 + now;
                let is_client = self.client.as_ref().is_some_and(|s| s.link == id);
                let is_server = self.server.as_ref().is_some_and(|s| s.link == id);
                let session = if is_client {
                    self.client.as_mut()
                } else if is_server {
                    self.server.as_mut()
                } else {
                    None
                };
                let Some(s) = session else {
                    continue; // the application let this connection go
                };
                match item {
                    Item::Bytes(b) => {
                        // Reads cut anywhere.
                        let mut at = 0;
                        while at < b.len() {
                            let take = if self.rng.chance(3) {
                                self.rng.range(1, b.len() as u64) as usize
                            } else {
                                b.len()
                            };
                            let end = (at + take).min(b.len());
                            s.core.handle_bytes(&b[at..end], t);
                            at = end;
                        }
                    }
                    Item::Eof => s.core.handle_eof(0, t),
                }
            }
        }
        // Links both sides let go of are done.
        self.links.retain(|id, l| {
            !(l.to_broker.items.is_empty()
                && l.to_client.items.is_empty()
                && !self.broker.conns.contains_key(id)
                && self.client.as_ref().is_none_or(|s| s.link != *id)
                && self.server.as_ref().is_none_or(|s| s.link != *id))
        });
    }

    /// What the cores and the broker have to send goes on the wire.
    fn flush(&mut self) {
        let now = self.now;
        let t = self.instant();
        for s in [self.client.as_mut(), self.server.as_mut()]
            .into_iter()
            .flatten()
        {
            let mut buf = BytesMut::new();
            if s.core.poll_transmit(t, &mut buf) {
                if let Some(link) = self.links.get_mut(&s.link) {
                    let delay = self.rng.range(link.delay.0, link.delay.1);
                    link.to_broker
                        .send(now + ms(delay), Item::Bytes(buf.freeze()));
                }
            }
        }
        let links: Vec<u64> = self.broker.conns.keys().copied().collect();
        for id in links {
            let conn = self.broker.conns.get_mut(&id).expect("present");
            if conn.out.is_empty() {
                continue;
            }
            conn.last_send = now;
            let bytes = conn.out.split().freeze();
            let finished = conn.finished;
            let link = self
                .links
                .get_mut(&id)
                .expect("a broker connection has its link");
            let delay = self.rng.range(link.delay.0, link.delay.1);
            link.to_client.send(now + ms(delay), Item::Bytes(bytes));
            if finished {
                // After its close-ok the broker closes the socket.
                link.to_client.send(now + ms(delay), Item::Eof);
                self.broker.drop_conn(id);
                self.broker.dispatch();
            }
        }
    }

    // ------------------------------------------------------------ broker

    fn broker_tick(&mut self) {
        let now = self.now;
        if self.broker.down_until.is_some_and(|t| now >= t) {
            self.broker.down_until = None;
        }
        let half = Duration::from_secs(HEARTBEAT_SECS.into()) / 2;
        for conn in self.broker.conns.values_mut() {
            if conn.stage == Stage::Running
                && !conn.finished
                && conn.out.is_empty()
                && now >= conn.last_send + half
            {
                Frame::Heartbeat.encode(&mut conn.out).expect("encodes");
            }
        }
    }

    // ------------------------------------------------------------ chaos

    fn chaos(&mut self) {
        if self.now < self.next_chaos_at {
            return;
        }
        self.next_chaos_at = self.now + self.rng.millis(500, 5000);
        let now = self.now;
        match self.rng.range(0, 10) {
            // A connection dropped: each side sees EOF (after what was already in flight).
            // (The application then closes its socket: the broker sees EOF too.)
            0..=2 => {
                let which = if self.rng.chance(2) {
                    self.client.as_mut()
                } else {
                    self.server.as_mut()
                };
                if let Some(s) = which.filter(|s| !s.core.is_closed()) {
                    self.stats.drops += 1;
                    s.core.handle_eof(0, self.t0 + now);
                }
            }
            // The broker forgets a connection without a word: only silence tells.
            3..=4 => {
                let link = if self.rng.chance(2) {
                    self.client.as_ref().map(|s| s.link)
                } else {
                    self.server.as_ref().map(|s| s.link)
                };
                if let Some(link) = link {
                    if self.broker.conns.contains_key(&link) {
                        self.stats.forgets += 1;
                        self.broker.drop_conn(link);
                        self.broker.dispatch();
                        if let Some(l) = self.links.get_mut(&link) {
                            l.to_client.items.clear();
                        }
                    }
                }
            }
            // The broker stops answering a connection but keeps heartbeating it: the cores'
            // reply deadlines, the calls' deadlines and the close's timeout are all that help.
            7..=8 => {
                let link = if self.rng.chance(2) {
                    self.client.as_ref().map(|s| s.link)
                } else {
                    self.server.as_ref().map(|s| s.link)
                };
                if let Some(conn) = link.and_then(|l| self.broker.conns.get_mut(&l)) {
                    self.stats.stalls += 1;
                    conn.stalled = true;
                }
            }
            // The client closes politely and will reconnect.
            5..=6 => {
                if let Some(s) = self.client.as_mut() {
                    if s.core.is_connected() && !s.core.is_closing() {
                        self.stats.polite_closes += 1;
                        s.core.close(
                            200,
                            "client leaving",
                            Error::ConnectionClosed {
                                code: 200,
                                text: "closed by the application".into(),
                                class_id: 0,
                                method_id: 0,
                            },
                            self.t0 + now,
                        );
                    }
                }
            }
            // The broker restarts: a close 320 to each connection, or a crash; down a while.
            _ => {
                if !self.broker.is_up(now) {
                    return;
                }
                self.stats.restarts += 1;
                let graceful = self.rng.chance(2);
                let links = self.broker.restart(graceful);
                // What the broker had to say goes out, then EOF.
                self.flush();
                for link in links {
                    self.broker.drop_conn(link);
                    if let Some(l) = self.links.get_mut(&link) {
                        let delay = self.rng.range(l.delay.0, l.delay.1);
                        l.to_client.send(now + ms(delay), Item::Eof);
                        // Bytes still on their way to the old broker go nowhere.
                        l.to_broker.items.clear();
                    }
                }
                self.broker.forget_transient_queues();
                self.broker.down_until = Some(now + self.rng.millis(200, 2000));
            }
        }
    }

    // ------------------------------------------------------------ the RPC client

    fn outcome(&mut self, id: u64, outcome: Outcome) {
        let call = self.calls.remove(&id).expect("an outcome for a live call");
        assert!(
            self.now <= call.deadline,
            "call {id} answered at {:?}, after its deadline {:?}",
            self.now,
            call.deadline
        );
        if outcome == Outcome::Timeout {
            assert_eq!(self.now, call.deadline, "a timeout comes at the deadline");
        }
        if let Outcome::Answer(v) = outcome {
            assert_eq!(v, answer(call.n), "call {id}: a wrong answer");
        }
        match &outcome {
            Outcome::Answer(_) => self.stats.answers += 1,
            Outcome::ConnectionLost(_) => self.stats.lost += 1,
            Outcome::Timeout => self.stats.timeouts += 1,
            Outcome::NoRoute => self.stats.no_route += 1,
        }
        // A connection whose calls keep timing out is alive but useless (a stalled broker):
        // give it up and reconnect, as an application would.
        let current = self.client.as_ref().map(|s| s.link);
        match (&outcome, call.sent_on) {
            (Outcome::Timeout, Some(link)) if Some(link) == current => {
                self.timeouts_in_a_row += 1;
                if self.timeouts_in_a_row >= 3 {
                    self.timeouts_in_a_row = 0;
                    let t = self.t0 + self.now;
                    if let Some(s) = self.client.as_mut().filter(|s| s.core.is_connected()) {
                        let e = Error::ConnectionLost("calls time out".into());
                        s.core.close(200, "calls time out", e, t);
                    }
                }
            }
            (Outcome::Answer(_), _) => self.timeouts_in_a_row = 0,
            _ => {}
        }
        let previous = self.outcomes.insert(id, (self.now, outcome));
        assert!(
            previous.is_none(),
            "call {id} got two outcomes: {previous:?}"
        );
    }

    fn client_tick(&mut self) {
        let now = self.now;
        // Reconnect.
        if self.client.is_none() && self.client_reconnect_at.is_some_and(|t| now >= t) {
            self.client_reconnect_at = None;
            match self.connect() {
                Some(s) => {
                    self.stats.client_connections += 1;
                    self.client = Some(s);
                }
                None => self.client_reconnect_at = Some(now + self.rng.millis(100, 500)),
            }
        }
        // Start calls.
        if self.next_call_at.is_some_and(|t| now >= t) {
            self.next_call += 1;
            self.stats.calls += 1;
            let n = self.rng.range(0, 1_000_000);
            self.calls.insert(
                self.next_call,
                Call {
                    n,
                    deadline: now + CALL_TIMEOUT,
                    sent_on: None,
                },
            );
            self.next_call_at = Some(now + self.rng.millis(1, 150));
        }
        if let Some(s) = self.client.as_mut() {
            s.core.handle_timeout(self.t0 + now);
        }
        self.client_events();
        // Calls out of time.
        let overdue: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            self.outcome(id, Outcome::Timeout);
        }
        // Calls waiting for a ready connection go out.
        let Some(s) = self.client.as_mut() else {
            return;
        };
        if s.setup != Setup::Ready || s.core.is_closing() || s.core.is_closed() {
            return;
        }
        let (ch, reply_to, link) = (
            s.channel.expect("ready"),
            s.queue.clone().expect("ready"),
            s.link,
        );
        for (id, call) in self.calls.iter_mut().filter(|(_, c)| c.sent_on.is_none()) {
            let props = BasicProperties::default()
                .with_correlation_id(id.to_string())
                .with_reply_to(reply_to.clone());
            let body = call.n.to_string();
            // A ready, open connection takes it; if not, its Closed event is on its way and the
            // call waits for the next connection.
            if s.core
                .publish(ch, "", RPC_QUEUE, true, false, &props, body.as_bytes())
                .is_ok()
            {
                call.sent_on = Some(link);
            }
        }
    }

    fn client_events(&mut self) {
        loop {
            let Some(s) = self.client.as_mut() else {
                return;
            };
            let Some(event) = s.core.poll_event() else {
                return;
            };
            let link = s.link;
            match event {
                Event::Connected => {
                    // Refused only when the connection already ended in the same read: its
                    // Closed event follows.
                    if let Ok(ch) = s.core.open_channel() {
                        s.channel = Some(ch);
                        s.setup = Setup::Step(0);
                    }
                }
                Event::Reply { result, .. } => match (s.setup.clone(), result) {
                    (Setup::Step(0), Ok(_)) => {
                        let declare = QueueDeclare {
                            queue: "".into(),
                            exclusive: true,
                            auto_delete: true,
                            ..Default::default()
                        };
                        send(s, declare);
                        s.setup = Setup::Step(1);
                    }
                    (Setup::Step(1), Ok(Reply::Method(Method::QueueDeclareOk(ok)))) => {
                        s.queue = Some(ok.queue.clone());
                        let consume = BasicConsume {
                            queue: ok.queue,
                            no_ack: true,
                            ..Default::default()
                        };
                        send(s, consume);
                        s.setup = Setup::Step(2);
                    }
                    (Setup::Step(2), Ok(Reply::Method(Method::BasicConsumeOk(ok)))) => {
                        s.consumer_tag = Some(ok.consumer_tag);
                        s.setup = Setup::Ready;
                    }
                    (_, Err(_)) => {}
                    (setup, other) => panic!("client: {other:?} during {setup:?}"),
                },
                Event::Delivery { delivery, .. } => {
                    assert_eq!(Some(&delivery.consumer_tag), s.consumer_tag.as_ref());
                    let id = correlation(&delivery.properties);
                    match self.calls.get(&id) {
                        Some(call) if call.sent_on == Some(link) => {
                            let v = std::str::from_utf8(&delivery.body)
                                .ok()
                                .and_then(|t| t.parse().ok())
                                .expect("a numeric answer");
                            self.outcome(id, Outcome::Answer(v));
                        }
                        // Answered already (a request the broker delivered twice), or
                        // after its deadline or the loss of its connection.
                        _ if self
                            .outcomes
                            .get(&id)
                            .is_some_and(|(_, o)| matches!(o, Outcome::Answer(_))) =>
                        {
                            self.stats.duplicates_ignored += 1
                        }
                        _ => self.stats.late_ignored += 1,
                    }
                }
                Event::Returned { returned, .. } => {
                    assert_eq!(returned.reply_code, 312);
                    let id = correlation(&returned.properties);
                    if self.calls.get(&id).is_some_and(|c| c.sent_on == Some(link)) {
                        self.outcome(id, Outcome::NoRoute);
                    }
                }
                Event::ChannelClosed { .. } => {
                    // The set-up's channel went (a 405 from a restarted broker, …): start over.
                    if !s.core.is_closing() && !s.core.is_closed() {
                        let e = Error::ConnectionLost("the client's channel closed".into());
                        s.core.close(200, "channel lost", e, self.t0 + self.now);
                    }
                }
                Event::Closed { error } => {
                    *self.stats.ends.entry(kind(&error)).or_default() += 1;
                    let lost: Vec<u64> = self
                        .calls
                        .iter()
                        .filter(|(_, c)| c.sent_on == Some(link))
                        .map(|(id, _)| *id)
                        .collect();
                    for id in lost {
                        self.outcome(id, Outcome::ConnectionLost(kind(&error)));
                    }
                    self.client_let_go();
                    return;
                }
                Event::ConsumerEnded { .. }
                | Event::Confirm { .. }
                | Event::Flow { .. }
                | Event::Blocked { .. }
                | Event::Unblocked => panic!("client: unexpected {event:?}"),
            }
        }
    }

    /// The client's connection is over: flush its last bytes, close the socket, reconnect later.
    fn client_let_go(&mut self) {
        if let Some(mut s) = self.client.take() {
            let mut buf = BytesMut::new();
            let now = self.now;
            s.core.poll_transmit(self.t0 + now, &mut buf);
            if let Some(l) = self.links.get_mut(&s.link) {
                let delay = self.rng.range(l.delay.0, l.delay.1);
                if !buf.is_empty() {
                    l.to_broker.send(now + ms(delay), Item::Bytes(buf.freeze()));
                }
                l.to_broker.send(now + ms(delay), Item::Eof);
            }
        }
        self.client_reconnect_at = Some(self.now + self.rng.millis(50, 400));
    }

    // ------------------------------------------------------------ the RPC server

    fn server_tick(&mut self) {
        let now = self.now;
        if self.server.is_none() && self.server_reconnect_at.is_some_and(|t| now >= t) {
            self.server_reconnect_at = None;
            match self.connect() {
                Some(s) => {
                    self.stats.server_connections += 1;
                    self.server = Some(s);
                }
                None => self.server_reconnect_at = Some(now + self.rng.millis(100, 500)),
            }
        }
        if let Some(s) = self.server.as_mut() {
            s.core.handle_timeout(self.t0 + now);
        }
        self.server_events();
        if self.server_ping_at.is_some_and(|t| now >= t) {
            self.server_ping_at = Some(now + Duration::from_secs(2));
            if let Some(s) = self.server.as_mut().filter(|s| s.setup == Setup::Ready) {
                let qos = BasicQos {
                    prefetch_count: self.prefetch,
                    ..Default::default()
                };
                send(s, qos);
            }
        }
        // Finished work: the reply, then (a little later) the ack.
        let (due, rest): (Vec<_>, Vec<_>) = self.work.drain(..).partition(|w| w.0 <= now);
        self.work = rest;
        for (_, link, ch, tag, reply_to, correlation_id, n) in due {
            let Some(s) = self.server.as_mut().filter(|s| s.link == link) else {
                continue; // its connection is gone: the broker requeued the request
            };
            let props = BasicProperties::default().with_correlation_id(correlation_id);
            let body = answer(n).to_string();
            if s.core
                .publish(
                    ch,
                    "",
                    reply_to.as_bytes(),
                    false,
                    false,
                    &props,
                    body.as_bytes(),
                )
                .is_ok()
            {
                let at = now + self.rng.millis(0, 40);
                self.acks.push((at, link, ch, tag));
            }
        }
        let (due, rest): (Vec<_>, Vec<_>) = self.acks.drain(..).partition(|a| a.0 <= now);
        self.acks = rest;
        for (_, link, ch, tag) in due {
            if let Some(s) = self.server.as_mut().filter(|s| s.link == link) {
                let ack = BasicAck {
                    delivery_tag: tag,
                    multiple: false,
                };
                let _ = s.core.send_method(ch, ack.into());
            }
        }
    }

    fn server_events(&mut self) {
        loop {
            let Some(s) = self.server.as_mut() else {
                return;
            };
            let Some(event) = s.core.poll_event() else {
                return;
            };
            let link = s.link;
            match event {
                Event::Connected => {
                    // Refused only when the connection already ended in the same read: its
                    // Closed event follows.
                    if let Ok(ch) = s.core.open_channel() {
                        s.channel = Some(ch);
                        s.setup = Setup::Step(0);
                    }
                }
                Event::Reply { result, .. } => match (s.setup.clone(), result) {
                    (Setup::Step(0), Ok(_)) => {
                        let declare = QueueDeclare {
                            queue: RPC_QUEUE.into(),
                            durable: self.rpc_queue_durable,
                            ..Default::default()
                        };
                        send(s, declare);
                        s.setup = Setup::Step(1);
                    }
                    (Setup::Step(1), Ok(_)) => {
                        let qos = BasicQos {
                            prefetch_count: self.prefetch,
                            ..Default::default()
                        };
                        send(s, qos);
                        s.setup = Setup::Step(2);
                    }
                    (Setup::Step(2), Ok(_)) => {
                        let consume = BasicConsume {
                            queue: RPC_QUEUE.into(),
                            no_ack: false,
                            ..Default::default()
                        };
                        send(s, consume);
                        s.setup = Setup::Step(3);
                    }
                    (Setup::Step(3), Ok(Reply::Method(Method::BasicConsumeOk(ok)))) => {
                        s.consumer_tag = Some(ok.consumer_tag);
                        s.setup = Setup::Ready;
                        self.server_ping_at = Some(self.now + Duration::from_secs(2));
                    }
                    (Setup::Ready, Ok(Reply::Method(Method::BasicQosOk(_)))) => {}
                    (_, Err(_)) => {}
                    (setup, other) => panic!("server: {other:?} during {setup:?}"),
                },
                Event::Delivery {
                    channel: _,
                    delivery,
                } => {
                    let ch = s.channel.expect("delivered on the set-up's channel");
                    let n = std::str::from_utf8(&delivery.body)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .expect("a numeric request");
                    let reply_to = delivery
                        .properties
                        .reply_to
                        .clone()
                        .expect("requests name their reply queue");
                    let correlation_id = delivery
                        .properties
                        .correlation_id
                        .clone()
                        .expect("requests carry a correlation id");
                    let at = self.now + self.rng.millis(0, 30);
                    self.work.push((
                        at,
                        link,
                        ch,
                        delivery.delivery_tag,
                        reply_to,
                        correlation_id,
                        n,
                    ));
                }
                Event::ChannelClosed { .. } => {
                    if !s.core.is_closing() && !s.core.is_closed() {
                        let e = Error::ConnectionLost("the server's channel closed".into());
                        s.core.close(200, "channel lost", e, self.t0 + self.now);
                    }
                }
                Event::Closed { error } => {
                    *self.stats.ends.entry(kind(&error)).or_default() += 1;
                    if let Some(mut s) = self.server.take() {
                        let mut buf = BytesMut::new();
                        let now = self.now;
                        s.core.poll_transmit(self.t0 + now, &mut buf);
                        if let Some(l) = self.links.get_mut(&s.link) {
                            let delay = self.rng.range(l.delay.0, l.delay.1);
                            if !buf.is_empty() {
                                l.to_broker.send(now + ms(delay), Item::Bytes(buf.freeze()));
                            }
                            l.to_broker.send(now + ms(delay), Item::Eof);
                        }
                    }
                    self.server_reconnect_at = Some(self.now + self.rng.millis(50, 400));
                    return;
                }
                Event::Returned { .. }
                | Event::ConsumerEnded { .. }
                | Event::Confirm { .. }
                | Event::Flow { .. }
                | Event::Blocked { .. }
                | Event::Unblocked => panic!("server: unexpected {event:?}"),
            }
        }
    }
}

fn send(s: &mut Session, m: impl Into<Method>) {
    let ch = s.channel.expect("a set-up call has its channel");
    // Refused only when the connection is already ending: its Closed event follows.
    let _ = s.core.send_method(ch, m.into());
}

fn correlation(p: &BasicProperties) -> u64 {
    p.correlation_id
        .as_ref()
        .and_then(|c| c.as_str())
        .and_then(|c| c.parse().ok())
        .expect("a numeric correlation id")
}

/// An error's variant name, for the figures.
fn kind(e: &Error) -> String {
    let text = format!("{e:?}");
    let name = text.split(['(', ' ', '{']).next().unwrap_or_default();
    match e {
        Error::ConnectionClosed { code, .. } => format!("{name} {code}"),
        _ => name.to_owned(),
    }
}

const SEEDS: [u64; 8] = [1, 2, 3, 4, 5, 0xDEAD_BEEF, 42, 2026];
const STEPS: u64 = 6000;

#[test]
fn every_call_gets_exactly_one_outcome_in_time() {
    let started = Instant::now();
    let mut total = Stats::default();
    for seed in SEEDS {
        let stats = Sim::new(seed).run(STEPS);
        eprintln!("seed {seed}: {stats:?}");
        // Every kind of trouble happened, and calls still got through.
        assert!(stats.answers > 0, "seed {seed}: no call answered");
        assert_eq!(
            stats.calls,
            stats.answers + stats.lost + stats.timeouts + stats.no_route,
            "seed {seed}: an outcome count does not add up"
        );
        total.calls += stats.calls;
        total.answers += stats.answers;
        total.lost += stats.lost;
        total.timeouts += stats.timeouts;
        total.no_route += stats.no_route;
        total.duplicates_ignored += stats.duplicates_ignored;
        total.late_ignored += stats.late_ignored;
        total.steps += stats.steps;
        total.client_connections += stats.client_connections;
        total.server_connections += stats.server_connections;
        total.refused += stats.refused;
        total.drops += stats.drops;
        total.forgets += stats.forgets;
        total.polite_closes += stats.polite_closes;
        total.stalls += stats.stalls;
        total.restarts += stats.restarts;
        for (k, v) in stats.ends {
            *total.ends.entry(k).or_default() += v;
        }
    }
    eprintln!(
        "{} seeds, {:?} wall: {total:?}",
        SEEDS.len(),
        started.elapsed()
    );
    // Across the seeds, every outcome and every kind of trouble occurred.
    assert!(
        total.lost > 0 && total.timeouts > 0 && total.no_route > 0,
        "{total:?}"
    );
    assert!(
        total.drops > 0
            && total.forgets > 0
            && total.restarts > 0
            && total.polite_closes > 0
            && total.stalls > 0,
        "{total:?}"
    );
    for end in [
        "HeartbeatTimeout",
        "ConnectionLost",
        "ConnectionClosed 320",
        "ReplyTimeout",
    ] {
        assert!(
            total.ends.contains_key(end),
            "no connection ended by {end}: {total:?}"
        );
    }
}

/// The same seed gives the same run, outcome for outcome.
#[test]
fn a_seed_replays_exactly() {
    let run = |seed| {
        let mut sim = Sim::new(seed);
        for _ in 0..1500 {
            sim.step();
        }
        (sim.outcomes, sim.stats.steps, sim.now)
    };
    assert_eq!(format!("{:?}", run(7)), format!("{:?}", run(7)));
}
