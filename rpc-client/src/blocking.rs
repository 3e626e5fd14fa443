//! Blocking twins of the async clients, for programs without a runtime — the tutorial's shape:
//! `FibonacciRpcClient::new()?` then `call(n)?`, which blocks until the answer arrives.
//!
//! They run on `amqp-client`'s blocking shell ([`amqp_client::blocking`]), not on a runtime: a
//! call publishes its request (one `write`) and reads the socket on the caller's own thread until
//! its reply is there (usually one `read`). Between calls the shell's keeper thread answers the
//! broker's heartbeats, so an idle client stays connected. Everything else is the async client's:
//! the same requests (correlation ids as [`CorrelationIds`] says, matched byte for byte; the
//! deadline as `expiration` and `x-deadline`; `traceparent`), the same reply modes (callback
//! queue or direct reply-to), `mandatory` requests with [`RpcError::NoRoute`], the same
//! timeouts (set-up included), calls that wait out `connection.blocked` within their deadline
//! ([`RpcError::Blocked`]), late and unknown replies dropped and counted apart, and the same
//! metrics when the builder has them.
//!
//! One client has one call in flight: calls from several threads take turns, each publishing its
//! request only when the previous call has its answer (or its error). So a reply matches the one
//! call in flight or none — a late reply to a timed-out call, a duplicate — and no correlation
//! map is needed: the async client's map, its locks and its per-call channel are what a
//! sequential call would pay for nothing (see `bench/NOTES.md`). Use the async
//! [`crate::RpcClient`] for many calls in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use amqp_client::blocking::{Channel, Connection, Consumer, Incoming, Returns};
use amqp_client::{
    BasicConsumeOptions, BasicPublishOptions, ConnectionConfig, QueueDeclareOptions, ShortString,
};
use rpc_wire::{DisplayId, DIRECT_REPLY_TO};

use crate::client::{
    call_trace, encode_request_properties, request_properties, server_error_of,
    CONSUMER_COUNT_TIMEOUT,
};
use crate::pending::GivenUp;
use crate::{CallOptions, CorrelationIds, FibAnswer, Reply, ReplyMode, RpcClientBuilder, RpcError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The reply path: the consumer of the reply queue and the channel's returned requests, read
/// together by the caller whose turn it is.
#[derive(Debug)]
struct ReplyPath {
    consumer: Consumer,
    returns: Returns,
    /// Set once the client can take no more calls (the reply consumer ended, or `close`).
    closed: Option<RpcError>,
    /// Calls that timed out, so that a reply coming for one is told late, not unknown.
    given_up: GivenUp,
    /// The request properties, encoded in place per call (kept between calls: no allocation).
    encoded: Vec<u8>,
}

/// A blocking RPC caller on the blocking shell: the async [`crate::RpcClient`]'s behaviour with
/// no runtime inside.
#[derive(Debug)]
pub struct RpcClient {
    reply_path: Mutex<ReplyPath>,
    channel: Channel,
    /// The one channel that asks how many consumers a queue has when a call times out (a
    /// passive declare of a missing queue closes its channel, which must not be `channel`).
    probe: Mutex<Option<Channel>>,
    connection: Connection,
    reply_to: String,
    /// `reply_to` as the request property: one shared buffer, not a copy per request.
    reply_to_property: ShortString,
    ids: CorrelationIds,
    answered: AtomicU64,
    dropped: AtomicU64,
    late: AtomicU64,
    config: RpcClientBuilder,
    /// Made by [`RpcClient::connect`] (closed on drop), not lent by
    /// [`RpcClient::with_connection`] (only the client's channels close then).
    owns_connection: bool,
}

/// Whether a reply's correlation id is the call's, byte for byte: as in the async client, the
/// same uuid written another way is not an echo of ours.
fn matches(correlation_id: Option<&ShortString>, id: &[u8]) -> bool {
    correlation_id.is_some_and(|c| c.as_bytes() == id)
}

/// One step of setting a client up, bounded by what is left until `deadline`; a step that runs
/// out fails with [`RpcError::SetupTimeout`], as the async client's.
fn setup_step<T>(
    deadline: Instant,
    limit: Duration,
    waiting_for: &'static str,
    step: impl FnOnce(Duration) -> Result<T, amqp_client::Error>,
) -> Result<T, RpcError> {
    let timed_out = RpcError::SetupTimeout {
        timeout: limit,
        waiting_for,
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out);
    }
    match step(left) {
        Err(amqp_client::Error::ReplyTimeout { .. }) => Err(timed_out),
        r => r.map_err(RpcError::from),
    }
}

impl RpcClient {
    /// Connects with `builder`'s settings and sets up the reply path, all of it within the
    /// builder's timeout.
    pub fn connect(builder: RpcClientBuilder) -> Result<Self, RpcError> {
        let limit = builder.timeout;
        let deadline = Instant::now() + limit;
        let mut config = ConnectionConfig::parse(&builder.uri)?;
        // The client's timeout bounds the connect too when it is the tighter of the two.
        let bound_by_client = limit < config.connection_timeout;
        if bound_by_client {
            config.connection_timeout = limit;
        }
        let connection = match Connection::connect_with(config) {
            Err(
                amqp_client::Error::ConnectTimeout { .. }
                | amqp_client::Error::HandshakeTimeout { .. },
            ) if bound_by_client => {
                return Err(RpcError::SetupTimeout {
                    timeout: limit,
                    waiting_for: "the connection",
                })
            }
            r => r?,
        };
        let mut client = Self::with_connection_by(builder, connection, deadline)?;
        client.owns_connection = true;
        Ok(client)
    }

    /// Sets up the reply path on an existing blocking connection (the client opens its own
    /// channel), within the builder's timeout.
    pub fn with_connection(
        builder: RpcClientBuilder,
        connection: Connection,
    ) -> Result<Self, RpcError> {
        let deadline = Instant::now() + builder.timeout;
        Self::with_connection_by(builder, connection, deadline)
    }

    fn with_connection_by(
        builder: RpcClientBuilder,
        connection: Connection,
        deadline: Instant,
    ) -> Result<Self, RpcError> {
        let limit = builder.timeout;
        let mut channel = setup_step(deadline, limit, "channel.open-ok", |left| {
            let mut bounded = connection.clone();
            bounded.set_call_timeout(Some(left));
            bounded.open_channel()
        })?;
        let reply_to = match builder.reply_mode {
            ReplyMode::CallbackQueue => {
                // queue_declare(queue='', exclusive=True): the broker names it.
                setup_step(deadline, limit, "queue.declare-ok", |left| {
                    channel.set_call_timeout(Some(left));
                    let options = QueueDeclareOptions {
                        exclusive: true,
                        ..Default::default()
                    };
                    channel.queue_declare("", options)
                })?
                .queue
            }
            ReplyMode::DirectReplyTo => DIRECT_REPLY_TO.to_owned(),
        };
        // Returns kept from before the first publish; consume before it too: RabbitMQ refuses
        // a publish naming amq.rabbitmq.reply-to on a channel that does not consume it.
        let returns = channel.returns();
        let consumer = setup_step(deadline, limit, "basic.consume-ok", |left| {
            channel.set_call_timeout(Some(left));
            let options = BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            };
            channel.basic_consume(&reply_to, options)
        })?;
        channel.set_call_timeout(None);
        tracing::debug!(reply_to = %reply_to, mode = ?builder.reply_mode, "blocking RPC client ready");
        Ok(RpcClient {
            reply_path: Mutex::new(ReplyPath {
                consumer,
                returns,
                closed: None,
                given_up: GivenUp::default(),
                encoded: Vec::with_capacity(256),
            }),
            channel,
            probe: Mutex::new(None),
            connection,
            reply_to_property: ShortString::from(reply_to.clone()),
            reply_to,
            ids: builder.correlation_ids,
            answered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            late: AtomicU64::new(0),
            config: builder,
            owns_connection: false,
        })
    }

    /// Calls the default queue with `body`; returns the reply's body.
    pub fn call(&self, body: impl Into<Bytes>) -> Result<Bytes, RpcError> {
        self.call_raw(&self.config.queue, body)
    }

    /// Calls `queue` with `body`; blocks until the reply (or an error) arrives. Error replies
    /// (`x-error`) become [`RpcError::Server`].
    pub fn call_raw(&self, queue: &str, body: impl Into<Bytes>) -> Result<Bytes, RpcError> {
        // The body alone: the reply's properties are dropped in their box, never moved.
        self.call_measured(queue, body.into(), CallOptions::default())
            .map(|d| d.body)
    }

    /// Calls `queue` with `body` and per-call options; returns the whole reply.
    ///
    /// As the async client's: the request goes to the default exchange with routing key
    /// `queue`, `mandatory` (a queue that does not exist fails the call at once with
    /// [`RpcError::NoRoute`]), `reply_to` = the client's reply queue and a fresh uuid v4
    /// `correlation_id`; the timeout counts from this call, a turn spent waiting for another
    /// thread's call included.
    pub fn call_raw_with(
        &self,
        queue: &str,
        body: impl Into<Bytes>,
        options: CallOptions,
    ) -> Result<Reply, RpcError> {
        self.call_measured(queue, body.into(), options).map(|d| {
            let amqp_client::Delivery {
                properties, body, ..
            } = *d;
            Reply { body, properties }
        })
    }

    /// The call, counted in the client's metrics if it has them. The reply stays in the box the
    /// connection delivered it in (a ~500-byte `Reply` moved through each caller was ~5 % of a
    /// sequential call's instructions, callgrind).
    fn call_measured(
        &self,
        queue: &str,
        body: Bytes,
        options: CallOptions,
    ) -> Result<Box<amqp_client::Delivery>, RpcError> {
        let Some(metrics) = &self.config.metrics else {
            return self.call_inner(queue, body, options);
        };
        metrics.started();
        let started = Instant::now();
        let outcome = self.call_inner(queue, body, options);
        metrics.finished(queue, &outcome.as_ref().map(drop), started.elapsed());
        outcome
    }

    fn call_inner(
        &self,
        queue: &str,
        body: Bytes,
        options: CallOptions,
    ) -> Result<Box<amqp_client::Delivery>, RpcError> {
        let timeout = options.timeout.unwrap_or(self.config.timeout);
        let deadline = Instant::now() + timeout;
        let mut path = lock(&self.reply_path);
        if let Some(e) = &path.closed {
            return Err(e.clone());
        }
        // A broker under a memory or disk alarm stops reading publishes: wait (within the call's
        // deadline) rather than write into a socket nobody reads.
        if let Some(reason) = self.connection.blocked() {
            if !self.connection.wait_while_blocked(deadline)? {
                return Err(RpcError::Blocked { reason, timeout });
            }
        }
        let (call_id, wire, len) = self.ids.fresh();
        let id = &wire[..usize::from(len)];
        let trace = call_trace(options.trace);
        // The usual call has no properties of its own: its request's are written straight into
        // the client's buffer (the bytes the built ones encode to, without building them).
        let encoded = options.properties.flags() == 0
            && encode_request_properties(
                &mut path.encoded,
                self.reply_to.as_bytes(),
                id,
                deadline,
                &trace,
            )
            .is_some();
        if encoded {
            self.channel.basic_publish_raw(
                "",
                queue,
                BasicPublishOptions::mandatory(),
                &path.encoded,
                &body,
            )?;
        } else {
            let properties = request_properties(
                options.properties,
                self.reply_to_property.clone(),
                id,
                deadline,
                trace,
            );
            self.channel.basic_publish(
                "",
                queue,
                BasicPublishOptions::mandatory(),
                &properties,
                &body,
            )?;
        }
        tracing::trace!(queue, trace_id = %format_args!("{:032x}", trace.trace_id), "RPC request");
        let ReplyPath {
            consumer,
            returns,
            closed,
            given_up,
            ..
        } = &mut *path;
        loop {
            match consumer.next_with_returns(returns, deadline) {
                Ok(Some(Incoming::Delivery(d))) => {
                    if matches(d.properties.correlation_id.as_ref(), id) {
                        self.answered.fetch_add(1, Ordering::Relaxed);
                        if let Some(code) = rpc_wire::error_code(&d.properties) {
                            // An error reply (`x-error`): the same error as the async client's.
                            let amqp_client::Delivery {
                                properties, body, ..
                            } = *d;
                            return Err(server_error_of(code, &Reply { body, properties }));
                        }
                        return Ok(d);
                    }
                    match d.properties.correlation_id.as_ref() {
                        Some(other) => {
                            tracing::debug!(correlation_id = %DisplayId(other.as_bytes()), "reply for no waiting call dropped")
                        }
                        None => tracing::debug!("reply without correlation_id dropped"),
                    }
                    self.count_dropped(given_up, d.properties.correlation_id.as_ref());
                }
                Ok(Some(Incoming::Returned(r))) => {
                    let Some(returned_id) = r.properties.correlation_id.as_ref() else {
                        continue;
                    };
                    if returned_id.as_bytes() == id {
                        return Err(RpcError::NoRoute {
                            queue: r.routing_key.to_string(),
                            reply_code: r.reply_code,
                            reply_text: r.reply_text.to_string(),
                        });
                    }
                    // The request of an earlier call that gave up: counted as the async
                    // client counts it.
                    self.count_dropped(given_up, Some(returned_id));
                }
                Ok(None) => {
                    // A reply to this call from now on is late, and dropped.
                    given_up.remember(call_id);
                    drop(path);
                    let consumers = self.consumer_count(queue);
                    return Err(RpcError::Timeout {
                        queue: queue.to_owned(),
                        timeout,
                        consumers,
                    });
                }
                // The reply consumer ended (the channel or the connection closed): this call and
                // every later one fail at once, as in the async client.
                Err(e) => {
                    tracing::debug!(error = %e, "RPC reply consumer ended");
                    let error = RpcError::ConnectionLost(e);
                    *closed = Some(error.clone());
                    return Err(error);
                }
            }
        }
    }

    /// A reply (or a returned request) for no call in flight: late if its call timed out (once:
    /// a second one is a duplicate), else unknown.
    fn count_dropped(&self, given_up: &mut GivenUp, correlation_id: Option<&ShortString>) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        let late = correlation_id
            .and_then(|c| self.ids.parse(c.as_bytes()))
            .is_some_and(|id| given_up.take(id));
        if late {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(m) = &self.config.metrics {
            m.dropped_reply(late);
        }
    }

    /// How many consumers `queue` has, asked with a passive declare on the client's probe
    /// channel; `None` if the broker cannot tell within a short bound (2 s).
    pub fn consumer_count(&self, queue: &str) -> Option<u32> {
        let deadline = Instant::now() + CONSUMER_COUNT_TIMEOUT;
        let left = || {
            let left = deadline.saturating_duration_since(Instant::now());
            (!left.is_zero()).then_some(left)
        };
        let mut probe = lock(&self.probe);
        let mut channel = match probe.as_ref().filter(|ch| ch.status().is_ok()) {
            Some(ch) => ch.clone(),
            None => {
                let mut bounded = self.connection.clone();
                bounded.set_call_timeout(left());
                let ch = bounded.open_channel().ok()?;
                *probe = Some(ch.clone());
                ch
            }
        };
        channel.set_call_timeout(Some(left()?));
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue, options)
            .ok()
            .map(|d| d.consumer_count)
    }

    /// The queue replies come back on (the callback queue's name, or `amq.rabbitmq.reply-to`).
    pub fn reply_to(&self) -> &str {
        &self.reply_to
    }

    /// The default request queue.
    pub fn queue(&self) -> &str {
        &self.config.queue
    }

    /// Replies dropped so far: unknown correlation id, already answered, or arrived after their
    /// call timed out.
    pub fn dropped_replies(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Replies that came for a call after it had timed out (part of
    /// [`dropped_replies`](Self::dropped_replies)).
    pub fn late_replies(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    /// Replies handed to their callers so far.
    pub fn answered_replies(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// The underlying blocking connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Closes the connection (`connection.close`, waiting for close-ok; a lent one too); later
    /// calls fail with [`RpcError::Closed`].
    pub fn close(&self) -> Result<(), RpcError> {
        self.connection.close()?;
        lock(&self.reply_path).closed = Some(RpcError::Closed);
        Ok(())
    }
}

impl Drop for RpcClient {
    fn drop(&mut self) {
        // Close its own connection politely (bounded by the close timeout), so the broker sees
        // connection.close rather than a reset; the consumer and channels then have nothing left
        // to undo. A lent connection stays open: the consumer and channels close themselves.
        if self.owns_connection {
            let _ = self.connection.close();
        }
    }
}

/// The tutorial's client, blocking, on the blocking shell.
///
/// ```no_run
/// use rpc_client::blocking::FibonacciRpcClient;
///
/// let fibonacci_rpc = FibonacciRpcClient::new()?;
/// println!(" [x] Requesting fib(30)");
/// let response = fibonacci_rpc.call(30)?;
/// println!(" [.] Got {response}");
/// # Ok::<(), rpc_client::RpcError>(())
/// ```
#[derive(Debug)]
pub struct FibonacciRpcClient {
    rpc: RpcClient,
}

impl FibonacciRpcClient {
    /// Connects to the local broker (guest/guest at 127.0.0.1:5672), as the tutorial does.
    pub fn new() -> Result<Self, RpcError> {
        Self::with_builder(crate::RpcClient::builder())
    }

    /// Connects to `uri`.
    pub fn connect(uri: &str) -> Result<Self, RpcError> {
        Self::with_builder(crate::RpcClient::builder().uri(uri))
    }

    /// Connects with `builder`'s settings (queue, timeout, reply mode, correlation ids).
    pub fn with_builder(builder: RpcClientBuilder) -> Result<Self, RpcError> {
        RpcClient::connect(builder).map(Self::from)
    }

    /// `fib(n)`: sends the request and blocks until the answer is received.
    pub fn call(&self, n: u64) -> Result<FibAnswer, RpcError> {
        FibAnswer::parse(&self.rpc.call(n.to_string())?)
    }

    /// `fib(n)` with a timeout for this call.
    pub fn call_timeout(&self, n: u64, timeout: Duration) -> Result<FibAnswer, RpcError> {
        let reply = self.rpc.call_raw_with(
            self.rpc.queue(),
            n.to_string(),
            CallOptions::timeout(timeout),
        )?;
        FibAnswer::parse(&reply.body)
    }

    /// The underlying client.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }
}

impl From<RpcClient> for FibonacciRpcClient {
    fn from(rpc: RpcClient) -> Self {
        FibonacciRpcClient { rpc }
    }
}
