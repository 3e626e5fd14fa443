//! The caller: one connection, one channel, one callback queue, any number of calls in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::Either;
use tokio::task::JoinHandle;

use amqp_codec::BasicProperties;

use crate::pending::{CorrelationIds, Pending};
use crate::{Reply, RpcError};
use amqp_client::{BasicPublishOptions, Channel, Connection, Delivery};
use rpc_wire::{error_code, DisplayId, DIRECT_REPLY_TO, RPC_QUEUE};

pub use amqp_client::DEFAULT_URI;

/// Default limit on one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a timed-out call spends asking the broker how many consumers the queue has.
pub(crate) const CONSUMER_COUNT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where replies come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    /// Tutorial six: an exclusive, server-named callback queue declared by the client and
    /// consumed with auto-ack.
    #[default]
    CallbackQueue,
    /// RabbitMQ's direct reply-to: consume the pseudo-queue `amq.rabbitmq.reply-to` (no-ack)
    /// and name it in `reply_to`; no queue is declared.
    DirectReplyTo,
}

/// Configures an [`RpcClient`].
#[derive(Debug, Clone)]
pub struct RpcClientBuilder {
    pub(crate) uri: String,
    pub(crate) timeout: Duration,
    pub(crate) queue: String,
    pub(crate) reply_mode: ReplyMode,
    pub(crate) correlation_ids: CorrelationIds,
    pub(crate) metrics: Option<Arc<crate::metrics::ClientMetrics>>,
}

impl Default for RpcClientBuilder {
    fn default() -> Self {
        RpcClientBuilder {
            uri: DEFAULT_URI.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            queue: RPC_QUEUE.to_owned(),
            reply_mode: ReplyMode::CallbackQueue,
            correlation_ids: CorrelationIds::UuidText,
            metrics: None,
        }
    }
}

impl RpcClientBuilder {
    /// The broker's AMQP URI (default [`DEFAULT_URI`]).
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = uri.into();
        self
    }

    /// The default limit on each call (default 30 s); [`CallOptions::timeout`] overrides it.
    /// Setting the client up (connect, handshake, reply queue, consumer) is bounded by it too.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The default limit on each call.
    pub fn call_timeout(&self) -> Duration {
        self.timeout
    }

    /// The default request queue (default `rpc_queue`), used by [`RpcClient::call`] and the
    /// Fibonacci client.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Receive replies by RabbitMQ's direct reply-to instead of a callback queue.
    pub fn direct_reply_to(mut self, on: bool) -> Self {
        self.reply_mode = if on {
            ReplyMode::DirectReplyTo
        } else {
            ReplyMode::CallbackQueue
        };
        self
    }

    /// Where replies come back.
    pub fn reply_mode(mut self, mode: ReplyMode) -> Self {
        self.reply_mode = mode;
        self
    }

    /// Count calls, outcomes, latency and late or unknown replies in `metrics` (see
    /// [`crate::metrics`]).
    pub fn metrics(mut self, metrics: crate::metrics::ClientMetrics) -> Self {
        self.metrics = Some(Arc::new(metrics));
        self
    }

    /// How request correlation ids are written: uuid text (default) or the uuid's 16 raw bytes.
    pub fn correlation_ids(mut self, format: CorrelationIds) -> Self {
        self.correlation_ids = format;
        self
    }

    /// Connects to the broker and sets up the reply path, all of it within the client's
    /// timeout (a broker that accepts the connection and then goes silent cannot hold it longer).
    pub async fn connect(self) -> Result<RpcClient, RpcError> {
        let deadline = Instant::now() + self.timeout;
        let connection = setup_step(
            deadline,
            self.timeout,
            "the connection",
            Connection::connect(&self.uri),
        )
        .await?;
        self.with_connection_by(connection, deadline).await
    }

    /// Sets up the reply path on an existing connection (the client opens its own channel),
    /// within the client's timeout.
    pub async fn with_connection(self, connection: Connection) -> Result<RpcClient, RpcError> {
        let deadline = Instant::now() + self.timeout;
        self.with_connection_by(connection, deadline).await
    }

    /// [`RpcClientBuilder::with_connection`], every step done by `deadline`.
    pub(crate) async fn with_connection_by(
        self,
        connection: Connection,
        deadline: Instant,
    ) -> Result<RpcClient, RpcError> {
        let limit = self.timeout;
        let channel = setup_step(
            deadline,
            limit,
            "channel.open-ok",
            connection.open_channel(),
        )
        .await?;
        let reply_to = match self.reply_mode {
            ReplyMode::CallbackQueue => {
                // queue_declare(queue='', exclusive=True): the broker names it.
                let declare = channel.queue_declare(
                    "",
                    amqp_client::QueueDeclareOptions {
                        exclusive: true,
                        ..Default::default()
                    },
                );
                setup_step(deadline, limit, "queue.declare-ok", declare)
                    .await?
                    .queue
            }
            ReplyMode::DirectReplyTo => DIRECT_REPLY_TO.to_owned(),
        };
        // Consume before the first publish: RabbitMQ refuses a publish naming
        // amq.rabbitmq.reply-to on a channel that does not consume it.
        //
        // Replies are matched on the connection's reader task, as they are decoded: no queue and
        // no task hop between the socket and the caller's oneshot (measured: ~0.5 µs of client
        // CPU per call at C=64, and one wake-up fewer on the sequential path).
        let pending = Arc::new(Pending::new(self.correlation_ids, self.metrics.clone()));
        let consume = channel.basic_consume_with(
            &reply_to,
            amqp_client::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            {
                let replies = ReplySink(Arc::clone(&pending));
                move |delivery| match delivery {
                    Ok(delivery) => deliver(&replies.0, delivery),
                    Err(e) => {
                        tracing::debug!(error = %e, "RPC reply consumer ended");
                        replies.0.close(RpcError::ConnectionLost(e));
                    }
                }
            },
        );
        setup_step(deadline, limit, "basic.consume-ok", consume).await?;
        let returns = channel.returns();
        let returns_task = tokio::spawn(route_returns(returns, Arc::clone(&pending)));
        tracing::debug!(reply_to = %reply_to, mode = ?self.reply_mode, "RPC client ready");
        let blocked = connection.blocked();
        Ok(RpcClient {
            inner: Arc::new(Inner {
                connection,
                channel,
                reply_to,
                pending,
                returns_task,
                config: self,
                probe: tokio::sync::Mutex::new(None),
                blocked,
            }),
        })
    }
}

/// One step of setting a client up, failed with [`RpcError::SetupTimeout`] if `deadline` passes.
pub(crate) async fn setup_step<T>(
    deadline: Instant,
    limit: Duration,
    waiting_for: &'static str,
    step: impl std::future::Future<Output = Result<T, amqp_client::Error>>,
) -> Result<T, RpcError> {
    match tokio::time::timeout_at(deadline.into(), step).await {
        Ok(r) => r.map_err(RpcError::from),
        Err(_) => Err(RpcError::SetupTimeout {
            timeout: limit,
            waiting_for,
        }),
    }
}

/// Per-call settings.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Limit on this call (default: the client's). It becomes the call's deadline, which the
    /// request carries to the server (`expiration` and `x-deadline`, see [`rpc_wire::deadline`]).
    pub timeout: Option<Duration>,
    /// Extra properties of the request (`content_type`, `headers`, …). `reply_to`,
    /// `correlation_id` and `expiration` are always set by the client, and the `x-deadline` and
    /// `traceparent` headers added to any given here.
    pub properties: BasicProperties,
    /// The trace this call belongs to (default: the task's current one, see
    /// [`rpc_wire::trace::current`], else a fresh trace). The request names a new span of it.
    pub trace: Option<rpc_wire::TraceParent>,
}

impl CallOptions {
    /// Options with a timeout.
    pub fn timeout(timeout: Duration) -> Self {
        CallOptions {
            timeout: Some(timeout),
            ..Default::default()
        }
    }
}

/// An RPC caller: cheap to clone, safe to share; calls may run concurrently.
#[derive(Debug, Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connection: Connection,
    channel: Channel,
    reply_to: String,
    pending: Arc<Pending>,
    returns_task: JoinHandle<()>,
    config: RpcClientBuilder,
    /// The one channel that asks the broker how many consumers a queue has (for the message of
    /// a timed-out call), opened on first use and again after a 404 closed it. One channel for
    /// every probe: 10,000 stalled calls must not open 10,000 channels.
    probe: tokio::sync::Mutex<Option<Channel>>,
    /// The connection's `connection.blocked` state.
    blocked: tokio::sync::watch::Receiver<Option<String>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.returns_task.abort();
    }
}

impl RpcClient {
    /// A builder with the tutorial's defaults.
    pub fn builder() -> RpcClientBuilder {
        RpcClientBuilder::default()
    }

    /// Connects to `uri` with the defaults.
    pub async fn connect(uri: &str) -> Result<RpcClient, RpcError> {
        RpcClient::builder().uri(uri).connect().await
    }

    /// Calls the default queue with `body`; returns the reply's body.
    pub async fn call(&self, body: impl Into<Bytes>) -> Result<Bytes, RpcError> {
        self.call_raw(&self.inner.config.queue, body).await
    }

    /// Calls `queue` with `body`; returns the reply's body. Error replies (`x-error`) become
    /// [`RpcError::Server`].
    pub async fn call_raw(&self, queue: &str, body: impl Into<Bytes>) -> Result<Bytes, RpcError> {
        self.call_raw_with(queue, body, CallOptions::default())
            .await
            .map(|r| r.body)
    }

    /// Calls `queue` with `body` and per-call options; returns the whole reply.
    ///
    /// The request goes to the default exchange with routing key `queue`, `mandatory` (a queue
    /// that does not exist fails the call at once with [`RpcError::NoRoute`]), `reply_to` = the
    /// client's reply queue and a fresh uuid v4 `correlation_id`.
    pub fn call_raw_with<'a>(
        &'a self,
        queue: &'a str,
        body: impl Into<Bytes>,
        options: CallOptions,
    ) -> impl std::future::Future<Output = Result<Reply, RpcError>> + Send + 'a {
        let body = body.into();
        match &self.inner.config.metrics {
            // Without metrics the call is the call itself: no wrapper in every call's future.
            None => Either::Left(self.call_inner(queue, body, options)),
            // Boxed: only clients with metrics pay for the wrapper.
            Some(metrics) => Either::Right(Box::pin(async move {
                metrics.started();
                let started = Instant::now();
                let outcome = self.call_inner(queue, body, options).await;
                metrics.finished(queue, &outcome.as_ref().map(drop), started.elapsed());
                outcome
            })),
        }
    }

    async fn call_inner(
        &self,
        queue: &str,
        body: Bytes,
        options: CallOptions,
    ) -> Result<Reply, RpcError> {
        let inner = &*self.inner;
        let timeout = options.timeout.unwrap_or(inner.config.timeout);
        let started = Instant::now();
        let deadline = started + timeout;
        // A broker under a memory or disk alarm stops reading publishes, and a send buffer over
        // its mark means the broker is not keeping up: wait (within the call's deadline) rather
        // than pile requests up. Boxed: the rare path must not grow every call's future.
        if inner.blocked.borrow().is_some() || inner.channel.needs_room() {
            Box::pin(self.wait_to_send(deadline, timeout, queue)).await?;
        }
        let (guard, rx) = inner.pending.register()?;
        let trace = call_trace(options.trace);
        // The usual call has no properties of its own: its request's are written straight into
        // a buffer of this thread's (the bytes the built ones encode to, without building them).
        let encoded = options.properties.flags() == 0
            && ENCODED
                .with_borrow_mut(|buf| {
                    encode_request_properties(
                        buf,
                        inner.reply_to.as_bytes(),
                        guard.correlation_id(),
                        deadline,
                        &trace,
                    )
                    .map(|()| {
                        inner.channel.basic_publish_raw_now(
                            "",
                            queue,
                            BasicPublishOptions::mandatory(),
                            buf,
                            &body,
                        )
                    })
                })
                .transpose()?
                .is_some();
        if !encoded {
            // Scoped so the properties (368 bytes) are not kept in the call's future across the await.
            let properties = request_properties(
                options.properties,
                inner.reply_to.as_str(),
                guard.correlation_id(),
                deadline,
                trace,
            );
            inner.channel.basic_publish_now(
                "",
                queue,
                BasicPublishOptions::mandatory(),
                &properties,
                &body,
            )?;
        }
        tracing::trace!(queue, trace_id = %format_args!("{:032x}", trace.trace_id), "RPC request");
        let timeout_left = deadline.saturating_duration_since(Instant::now());
        let reply = match tokio::time::timeout(timeout_left, rx).await {
            Ok(Ok(outcome)) => outcome?,
            // The waiter was dropped without the map being closed: the client is being dropped.
            Ok(Err(_)) => return Err(RpcError::Closed),
            Err(_) => {
                drop(guard);
                // Boxed: this rare path's future (open a channel, passive declare) would otherwise be
                // part of every call's future, which 10,000 calls in flight pay for.
                let consumers = Box::pin(self.consumer_count(queue)).await;
                return Err(RpcError::Timeout {
                    queue: queue.to_owned(),
                    timeout,
                    consumers,
                });
            }
        };
        tracing::trace!(queue, elapsed = ?started.elapsed(), "RPC reply");
        server_error(reply)
    }

    /// Calls `queue` with `request` as JSON (`content_type: application/json`) and reads the
    /// reply as JSON into `Resp`. A reply that is not `application/json`, or whose JSON does not
    /// fit `Resp`, is [`RpcError::UnexpectedReply`]; an error reply is [`RpcError::Server`] with
    /// the message from its JSON error body.
    ///
    /// ```no_run
    /// # async fn demo(client: rpc_client::RpcClient) -> Result<(), rpc_client::RpcError> {
    /// use rpc_wire::json::{FibReply, FibRequest};
    /// let reply: FibReply = client.call_json("rpc_queue", &FibRequest { n: 30 }).await?;
    /// assert_eq!(reply.fib, "832040");
    /// # Ok(()) }
    /// ```
    pub async fn call_json<Req, Resp>(&self, queue: &str, request: &Req) -> Result<Resp, RpcError>
    where
        Req: serde::Serialize + ?Sized,
        Resp: serde::de::DeserializeOwned,
    {
        self.call_json_with(queue, request, CallOptions::default())
            .await
    }

    /// [`call_json`](Self::call_json) with per-call options.
    pub async fn call_json_with<Req, Resp>(
        &self,
        queue: &str,
        request: &Req,
        mut options: CallOptions,
    ) -> Result<Resp, RpcError>
    where
        Req: serde::Serialize + ?Sized,
        Resp: serde::de::DeserializeOwned,
    {
        let body = crate::json::encode_request(request)?;
        options.properties.content_type = Some(rpc_wire::CONTENT_TYPE_JSON.into());
        let reply = self.call_raw_with(queue, body, options).await;
        crate::json::decode_reply(reply)
    }

    /// Waits, at most until `deadline`, while the broker blocks publishers (`connection.blocked`:
    /// then [`RpcError::Blocked`]) and while the send buffer is over its mark (then
    /// [`RpcError::Timeout`]).
    async fn wait_to_send(
        &self,
        deadline: Instant,
        timeout: Duration,
        queue: &str,
    ) -> Result<(), RpcError> {
        let mut blocked = self.inner.blocked.clone();
        let lifted = tokio::time::timeout_at(deadline.into(), blocked.wait_for(Option::is_none))
            .await
            .is_ok();
        if !lifted {
            let reason = blocked.borrow().clone().unwrap_or_default();
            return Err(RpcError::Blocked { reason, timeout });
        }
        if tokio::time::timeout_at(deadline.into(), self.inner.channel.room())
            .await
            .is_err()
        {
            return Err(RpcError::Timeout {
                queue: queue.to_owned(),
                timeout,
                consumers: None,
            });
        }
        Ok(())
    }

    /// How many consumers `queue` has, asked with a passive declare on the client's probe
    /// channel (a passive declare of a missing queue closes its channel with 404, which must not
    /// be the channel calls use). Probes take turns on that one channel; a probe that cannot
    /// start and finish within a short bound answers `None` rather than hold up the caller.
    pub async fn consumer_count(&self, queue: &str) -> Option<u32> {
        let ask = async {
            let mut probe = self.inner.probe.lock().await;
            let channel = match probe.as_ref().filter(|ch| ch.status().is_ok()) {
                Some(ch) => ch.clone(),
                None => {
                    let ch = self.inner.connection.open_channel().await.ok()?;
                    *probe = Some(ch.clone());
                    ch
                }
            };
            let declared = channel
                .queue_declare(
                    queue,
                    amqp_client::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                )
                .await
                .ok()?;
            Some(declared.consumer_count)
        };
        tokio::time::timeout(CONSUMER_COUNT_TIMEOUT, ask)
            .await
            .ok()
            .flatten()
    }

    /// The queue replies come back on (the callback queue's name, or `amq.rabbitmq.reply-to`).
    pub fn reply_to(&self) -> &str {
        &self.inner.reply_to
    }

    /// The default request queue.
    pub fn queue(&self) -> &str {
        &self.inner.config.queue
    }

    /// Replies dropped so far: unknown correlation id, already answered, or arrived after their
    /// call timed out or was cancelled.
    pub fn dropped_replies(&self) -> u64 {
        self.inner.pending.dropped()
    }

    /// Replies that came for a call after it had timed out or been dropped (part of
    /// [`dropped_replies`](Self::dropped_replies)).
    pub fn late_replies(&self) -> u64 {
        self.inner.pending.late()
    }

    /// Replies handed to their callers so far.
    pub fn answered_replies(&self) -> u64 {
        self.inner.pending.answered()
    }

    /// Calls waiting for their reply now.
    pub fn in_flight(&self) -> usize {
        self.inner.pending.in_flight()
    }

    /// The underlying connection.
    pub fn connection(&self) -> &Connection {
        &self.inner.connection
    }

    /// Closes the connection; calls in flight fail with [`RpcError::Closed`].
    pub async fn close(&self) -> Result<(), RpcError> {
        self.inner.pending.close(RpcError::Closed);
        self.inner.connection.close().await?;
        Ok(())
    }
}

/// The reply consumer's hold on the correlation map. However the consumer ends — with an error
/// handed to it, or dropped with its channel — every waiting and later call fails at once rather
/// than at its timeout ([`Pending::close`] keeps the first reason).
struct ReplySink(Arc<Pending>);

impl Drop for ReplySink {
    fn drop(&mut self) {
        self.0.close(RpcError::ConnectionLost(
            amqp_client::Error::ConnectionLost("the reply consumer ended".into()),
        ));
    }
}

/// The trace a call belongs to: the one given, else a child of the task's current one, else a
/// fresh trace (both clients).
pub(crate) fn call_trace(given: Option<rpc_wire::TraceParent>) -> rpc_wire::TraceParent {
    given
        .or_else(rpc_wire::trace::current)
        .map_or_else(rpc_wire::trace::new_trace, |parent| {
            parent.child(rpc_wire::trace::new_span_id())
        })
}

/// A request's properties (both clients): the caller's, plus `reply_to`, the correlation id,
/// the deadline as `expiration` and `x-deadline`, and the `traceparent` header.
pub(crate) fn request_properties(
    base: BasicProperties,
    reply_to: impl Into<amqp_codec::ShortString>,
    correlation_id: &[u8],
    deadline: Instant,
    trace: rpc_wire::TraceParent,
) -> BasicProperties {
    let left = deadline.saturating_duration_since(Instant::now());
    let deadline_ms = rpc_wire::deadline::unix_millis(std::time::SystemTime::now() + left);
    let mut properties = base
        .with_reply_to(reply_to)
        .with_correlation_id(correlation_id)
        .with_expiration(rpc_wire::deadline::expiration(left));
    match properties.headers.as_mut() {
        // The usual case: the two headers encoded in one go (one allocation).
        None => properties.headers = Some(rpc_wire::request_headers(deadline_ms, &trace)),
        Some(headers) => {
            headers.insert(rpc_wire::DEADLINE_HEADER, deadline_ms);
            headers.insert(rpc_wire::TRACEPARENT_HEADER, trace.to_string());
        }
    }
    properties
}

thread_local! {
    /// The async client's buffer for [`encode_request_properties`]: one per thread, borrowed only
    /// while a request is encoded and handed to the connection (no await in between).
    static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`request_properties`] for a call without properties of its own, encoded straight into `buf`
/// (cleared first) as `basic_publish_raw` takes them: the flags word, the headers table
/// (`x-deadline`, `traceparent`), `correlation_id`, `reply_to`, `expiration`. The same bytes the
/// built properties encode to (tested), without building, encoding and dropping a
/// `BasicProperties` and its table per call. `None` (nothing written) if `reply_to` or the
/// correlation id is too long for a short string, where the built path reports the error.
pub(crate) fn encode_request_properties(
    buf: &mut Vec<u8>,
    reply_to: &[u8],
    correlation_id: &[u8],
    deadline: Instant,
    trace: &rpc_wire::TraceParent,
) -> Option<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    let deadline_ms = rpc_wire::deadline::unix_millis(std::time::SystemTime::now() + left);
    encode_request_properties_at(buf, reply_to, correlation_id, left, deadline_ms, trace)
}

/// [`encode_request_properties`] with the time left and the deadline given.
fn encode_request_properties_at(
    buf: &mut Vec<u8>,
    reply_to: &[u8],
    correlation_id: &[u8],
    left: Duration,
    deadline_ms: i64,
    trace: &rpc_wire::TraceParent,
) -> Option<()> {
    use amqp_codec::properties::{CORRELATION_ID, EXPIRATION, HEADERS, REPLY_TO};
    let reply_to_len = u8::try_from(reply_to.len()).ok()?;
    let id_len = u8::try_from(correlation_id.len()).ok()?;
    let (digits, from) = rpc_wire::deadline::expiration_digits(left);
    buf.clear();
    buf.extend_from_slice(&(HEADERS | CORRELATION_ID | REPLY_TO | EXPIRATION).to_be_bytes());
    buf.extend_from_slice(&rpc_wire::request_headers_encoded(deadline_ms, trace));
    buf.push(id_len);
    buf.extend_from_slice(correlation_id);
    buf.push(reply_to_len);
    buf.extend_from_slice(reply_to);
    buf.push((digits.len() - from) as u8);
    buf.extend_from_slice(&digits[from..]);
    Some(())
}

/// Fails the calls whose requests the broker returned (`mandatory`, no queue to route to) with
/// [`RpcError::NoRoute`]. Replies do not pass here: the reader task hands them over directly.
async fn route_returns(mut returns: amqp_client::Returns, pending: Arc<Pending>) {
    while let Some(r) = returns.recv().await {
        returned(&pending, r);
    }
}

/// A request the broker returned: its call fails with [`RpcError::NoRoute`] (both clients).
pub(crate) fn returned(pending: &Pending, r: amqp_client::Returned) {
    let Some(id) = r.properties.correlation_id.as_ref() else {
        return;
    };
    let error = RpcError::NoRoute {
        queue: r.routing_key.to_string(),
        reply_code: r.reply_code,
        reply_text: r.reply_text.to_string(),
    };
    pending.complete(id.as_bytes(), Err(error));
}

/// A reply: handed to the call its correlation id names, or dropped and counted (both clients).
pub(crate) fn deliver(pending: &Pending, delivery: Delivery) {
    let Delivery {
        properties, body, ..
    } = delivery;
    // A cheap clone (a reference-counted slice of the read buffer), kept for the log line.
    let Some(id) = properties.correlation_id.clone() else {
        tracing::debug!("reply without correlation_id dropped");
        pending.drop_unmatched();
        return;
    };
    if !pending.complete(id.as_bytes(), Ok(Reply { body, properties })) {
        tracing::debug!(correlation_id = %DisplayId(id.as_bytes()), "reply for no waiting call dropped");
    }
}

/// An error reply (`x-error`) becomes [`RpcError::Server`], its message read from a JSON error
/// body or the text (both clients).
pub(crate) fn server_error(reply: Reply) -> Result<Reply, RpcError> {
    match error_code(&reply.properties) {
        Some(code) => Err(server_error_of(code, &reply)),
        None => Ok(reply),
    }
}

/// The error an error reply (`x-error` = `code`) becomes (both clients).
pub(crate) fn server_error_of(code: rpc_wire::ErrorCode, reply: &Reply) -> RpcError {
    RpcError::Server {
        code,
        message: crate::json::error_message(reply),
    }
}

#[cfg(test)]
mod encoded_request_tests {
    use super::*;

    #[test]
    fn encoded_request_properties_are_the_built_ones_byte_for_byte() {
        let trace = rpc_wire::TraceParent {
            trace_id: 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
            span_id: 0xb7ad_6b71_6920_3331,
            flags: 1,
        };
        let mut buf = Vec::new();
        for (reply_to, id, left_ms) in [
            (
                "amq.gen-p169XGGXAjsVdvgeJjMlOw",
                &b"c1e5f310-0996-45fb-a3d8-bf2081cd891c"[..],
                30_000,
            ),
            ("amq.rabbitmq.reply-to", &[0u8, 1, 2, 255][..], 1),
            ("q", &b""[..], 4_294_967_295),
        ] {
            let left = Duration::from_millis(left_ms);
            let deadline_ms = 1_700_000_000_123;
            let built = BasicProperties::default()
                .with_reply_to(reply_to)
                .with_correlation_id(id)
                .with_expiration(rpc_wire::deadline::expiration(left))
                .with_headers(rpc_wire::request_headers(deadline_ms, &trace));
            encode_request_properties_at(
                &mut buf,
                reply_to.as_bytes(),
                id,
                left,
                deadline_ms,
                &trace,
            )
            .unwrap();
            assert_eq!(buf, built.encoded().unwrap());
        }
        let long = vec![b'x'; 256];
        assert!(
            encode_request_properties_at(&mut buf, &long, b"id", Duration::ZERO, 0, &trace)
                .is_none()
        );
    }
}
