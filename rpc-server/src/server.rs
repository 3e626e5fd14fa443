//! The worker loop: declare, qos, consume; for each request run the handler, publish the reply to
//! `reply_to` with the request's `correlation_id`, then ack; on shutdown stop consuming, finish
//! what is in flight and close cleanly.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use tracing::Instrument;

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use amqp_client::{Channel, Connection, ConnectionConfig, Consumer, Delivery, QueueDeclareOptions};
use amqp_codec::BasicProperties;
use rpc_wire::{error_reply_properties, ErrorCode, RPC_QUEUE};
use rpc_wire::{is_direct_reply_to, DisplayId};

use crate::direct_reply::{DirectOutcome, DirectReplies};
use crate::handler::{Handler, HandlerFuture, ReplyError, Request, Response, SharedHandler};
use crate::metrics::{Outcome, QueueMetrics, ServerMetrics};

/// Default `basic.qos` prefetch: 1, as in the tutorial (fair dispatch between servers).
pub const DEFAULT_PREFETCH: u16 = 1;

/// Default largest request body handed to the handler; larger ones get a `too-large` reply.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Default time in-flight requests get to finish after a shutdown signal.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Bound on closing a channel or connection at shutdown (a dead peer must not hang it).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the server itself (not of a request: those become error replies).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Connecting, declaring, consuming or replying failed at the connection level.
    #[error(transparent)]
    Connection(#[from] amqp_client::Error),
    /// The consumer ended without a shutdown (the broker cancelled it or the connection died).
    #[error("stopped consuming {queue:?}: {source}")]
    ConsumerEnded {
        /// The queue.
        queue: String,
        /// Why.
        source: amqp_client::Error,
    },
}

/// Configures and starts an RPC server.
///
/// ```no_run
/// # async fn demo() -> Result<(), rpc_server::ServerError> {
/// use rpc_server::{FibService, RpcServer};
/// let server = RpcServer::builder()
///     .uri("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .prefetch(1)
///     .start(FibService::new())
///     .await?;
/// println!(" [x] Awaiting RPC requests");
/// server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RpcServerBuilder {
    uri: String,
    /// Overrides `uri` when set: several addresses (a cluster), tried in turn.
    connection: Option<ConnectionConfig>,
    queue: String,
    queue_options: QueueDeclareOptions,
    prefetch: u16,
    confirms: bool,
    max_body: usize,
    grace: Duration,
    isolate_direct_replies: bool,
    metrics: Option<ServerMetrics>,
}

impl Default for RpcServerBuilder {
    fn default() -> Self {
        RpcServerBuilder {
            uri: amqp_client::DEFAULT_URI.to_owned(),
            connection: None,
            queue: RPC_QUEUE.to_owned(),
            queue_options: QueueDeclareOptions::default(),
            prefetch: DEFAULT_PREFETCH,
            confirms: false,
            max_body: DEFAULT_MAX_BODY,
            grace: DEFAULT_GRACE,
            isolate_direct_replies: true,
            metrics: None,
        }
    }
}

impl RpcServerBuilder {
    /// The broker's AMQP URI (default `amqp://guest:guest@127.0.0.1:5672/%2f`).
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = uri.into();
        self
    }

    /// Connect with `config` instead of the URI: e.g. all the nodes of a cluster
    /// ([`ConnectionConfig::parse_many`]), tried in turn on every (re)connect.
    pub fn connection_config(mut self, config: ConnectionConfig) -> Self {
        self.connection = Some(config);
        self
    }

    /// The request queue (default `rpc_queue`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// How the request queue is declared (default: as the tutorial, non-durable, no arguments).
    /// A quorum queue, replicated over a cluster: `durable` and `x-queue-type = "quorum"`.
    pub fn queue_options(mut self, options: QueueDeclareOptions) -> Self {
        self.queue_options = options;
        self
    }

    /// `basic.qos` prefetch count: how many requests this server holds unacked, and so computes
    /// concurrently (default 1). 0 is taken as 1: an unbounded prefetch would let one server
    /// hoard the queue.
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// Put the reply channel in confirm mode and ack a request only after the broker confirmed
    /// its reply (default off: a reply to a client's exclusive queue is not persisted anyway).
    pub fn publisher_confirms(mut self, on: bool) -> Self {
        self.confirms = on;
        self
    }

    /// Largest request body passed to the handler (default 1 MiB).
    pub fn max_body(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }

    /// How long in-flight requests may take to finish after shutdown is asked (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Publish replies to direct reply-to addresses on a separate, confirmed connection (default
    /// on). Off, they go on the consuming channel like every other reply: one broker round trip
    /// less per such call, but a forged `reply_to` can then make RabbitMQ close the server's
    /// connection (see the crate README).
    pub fn isolate_direct_replies(mut self, on: bool) -> Self {
        self.isolate_direct_replies = on;
        self
    }

    /// Count requests, their outcomes, durations and reconnects in `metrics` (see
    /// [`crate::metrics`]; register them once with [`ServerMetrics::register`]).
    pub fn metrics(mut self, metrics: ServerMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The metrics the builder counts in, if any.
    pub(crate) fn server_metrics(&self) -> Option<&ServerMetrics> {
        self.metrics.as_ref()
    }

    /// The metrics of this builder's queue, if any.
    pub(crate) fn queue_metrics(&self) -> Option<Arc<QueueMetrics>> {
        self.metrics
            .as_ref()
            .map(|m| Arc::new(m.for_queue(&self.queue)))
    }

    /// Connects, declares the queue as the tutorial does (non-durable, non-exclusive, not
    /// auto-delete, no arguments: the same declaration as pika's `queue_declare('rpc_queue')`, so
    /// both servers can share it), sets the prefetch and starts consuming with manual acks.
    pub async fn start(self, handler: impl Handler) -> Result<RpcServer, ServerError> {
        let (connection, channel, consumer) = self.link().await?;
        let config = match &self.connection {
            Some(config) => config.clone(),
            None => ConnectionConfig::parse(&self.uri)?,
        };
        let direct = Arc::new(DirectReplies::new(config));
        let handler: SharedHandler = Arc::new(handler);
        let stats = Arc::new(Stats::default());
        let worker = Arc::new(Worker {
            channel: channel.clone(),
            handler: Arc::clone(&handler),
            stats: Arc::clone(&stats),
            direct: self.isolate_direct_replies.then(|| Arc::clone(&direct)),
            confirms: self.confirms,
            max_body: self.max_body,
            metrics: self.queue_metrics(),
        });
        Ok(RpcServer {
            direct,
            config: self,
            connection,
            channel,
            consumer,
            stats,
            shutdown: CancellationToken::new(),
            unresponsive: false,
            worker,
        })
    }

    /// Declares the request queue as configured and returns the channel to consume it on. If
    /// the queue already exists with other properties (another tutorial declared `rpc_queue`
    /// durable, or as a quorum queue, or with a TTL), the broker refuses the declaration with 406
    /// PRECONDITION_FAILED and closes the channel: the queue is then taken as it is, checked by
    /// a passive declare on a fresh channel, and one line says what was found. A server that
    /// only consumes has no reason to insist on its own declaration.
    async fn declare_queue(&self, connection: &Connection) -> Result<Channel, amqp_client::Error> {
        let channel = connection.open_channel().await?;
        let refusal = match channel
            .queue_declare(&self.queue, self.queue_options.clone())
            .await
        {
            Ok(_) => return Ok(channel),
            Err(amqp_client::Error::ChannelClosed {
                code: amqp_client::error::PRECONDITION_FAILED,
                text,
                ..
            }) => text,
            Err(e) => return Err(e),
        };
        let channel = connection.open_channel().await?;
        let found = channel
            .queue_declare(
                &self.queue,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
            )
            .await?;
        tracing::warn!(
            queue = %self.queue,
            messages = found.message_count,
            consumers = found.consumer_count,
            "the queue exists with other properties than this server's ({}); consuming it as it is",
            amqp_codec::Escaped(refusal.as_bytes()),
        );
        Ok(channel)
    }

    async fn link(&self) -> Result<(Connection, Channel, Consumer), amqp_client::Error> {
        let connection = match &self.connection {
            Some(config) => Connection::connect_with(config.clone()).await?,
            None => Connection::connect(&self.uri).await?,
        };
        let channel = self.declare_queue(&connection).await?;
        channel
            .basic_qos(self.prefetch, amqp_client::BasicQosOptions::default())
            .await?;
        if self.confirms {
            channel.confirm_select().await?;
        }
        let consumer = channel
            .basic_consume(&self.queue, Default::default())
            .await?;
        tracing::info!(queue = %self.queue, prefetch = self.prefetch, "consuming");
        Ok((connection, channel, consumer))
    }
}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct Stats {
    answered: AtomicU64,
    errors: AtomicU64,
    unanswerable: AtomicU64,
    expired: AtomicU64,
}

impl Stats {
    /// Requests answered with a result.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
    /// Requests answered with an error reply.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
    /// Requests acked without a reply (no `reply_to`).
    pub fn unanswerable(&self) -> u64 {
        self.unanswerable.load(Ordering::Relaxed)
    }
    /// Requests acked without a reply because their deadline (`x-deadline`) passed, before they
    /// started or while they ran.
    pub fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }
}

/// A server that is consuming; [`RpcServer::run_until`] serves until a shutdown signal.
pub struct RpcServer {
    config: RpcServerBuilder,
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
    stats: Arc<Stats>,
    direct: Arc<DirectReplies>,
    shutdown: CancellationToken,
    /// The broker stopped answering during shutdown: skip the polite steps.
    unresponsive: bool,
    /// What every request needs, shared (one reference count per request).
    worker: Arc<Worker>,
}

/// What handling a request needs: the channel, the handler, where to count.
struct Worker {
    channel: Channel,
    handler: SharedHandler,
    stats: Arc<Stats>,
    /// Where replies to direct reply-to addresses go (`None`: on `channel` like the others).
    direct: Option<Arc<DirectReplies>>,
    confirms: bool,
    max_body: usize,
    metrics: Option<Arc<QueueMetrics>>,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl RpcServer {
    /// A builder with the tutorial's defaults.
    pub fn builder() -> RpcServerBuilder {
        RpcServerBuilder::default()
    }

    /// The queue being consumed.
    pub fn queue(&self) -> &str {
        &self.config.queue
    }

    /// The broker address this server is connected to.
    pub fn peer(&self) -> &str {
        self.connection.peer()
    }

    /// The server's counters (shared; they keep counting while it runs).
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// A token that stops the server when cancelled (like the future given to `run_until`).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until `signal` completes (or [`Self::shutdown_token`] is cancelled), then shuts
    /// down gracefully: cancels the consumer so no new request arrives, returns requests that
    /// were delivered but not started to the queue (`basic.reject` with requeue), lets in-flight
    /// requests finish (up to the grace period), and closes the channel and the connection.
    ///
    /// Requests still unacked when the connection closes go back to the queue for another
    /// server: nothing in flight is lost.
    ///
    /// When the consumer ends on its own (the connection died, the broker restarted, the queue
    /// was deleted) it returns [`ServerError::ConsumerEnded`]; requests in flight then cannot be
    /// acked and the broker requeues them.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let shutdown = self.shutdown.clone();
        tokio::pin!(signal);
        let lost = loop {
            tokio::select! {
                biased;
                _ = &mut signal => break None,
                _ = shutdown.cancelled() => break None,
                Some(_) = in_flight.join_next() => {}
                delivery = self.consumer.recv_boxed() => match delivery {
                    Ok(delivery) => {
                        let mut request =
                            Box::pin(serve_one(Arc::clone(&self.worker), delivery));
                        // Most requests (every fib below the blocking threshold) are answered,
                        // replied to and acked in their first poll: run that here, and spawn a
                        // task only for a request that has to wait. Measured at C=64: no task
                        // per request saves the server ~1 µs of its ~7 µs per call (the task's
                        // 2 KB future was copied into its cell and its stages, and scheduled).
                        if poll_once(request.as_mut()).await.is_pending() {
                            in_flight.spawn(request);
                        }
                    }
                    Err(source) => break Some(source),
                },
            }
        };
        match lost {
            None => {
                self.stop_consuming(in_flight.len()).await;
                self.finish(&mut in_flight).await;
                Ok(())
            }
            Some(source) => {
                tracing::warn!(queue = %self.config.queue, error = %source, "stopped receiving requests");
                // Nothing in flight can be acked any more; the broker requeues it.
                in_flight.abort_all();
                self.finish(&mut in_flight).await;
                Err(ServerError::ConsumerEnded {
                    queue: self.config.queue.clone(),
                    source,
                })
            }
        }
    }

    /// Cancels the consumer and gives back deliveries that raced the cancel.
    async fn stop_consuming(&mut self, in_flight: usize) {
        tracing::info!(in_flight, "shutting down: cancelling the consumer");
        // Bounded: a broker that stops answering must not hold the shutdown (the connection is
        // closed next either way, and that ends the consumer too).
        let cancel = self.channel.basic_cancel(self.consumer.tag());
        match tokio::time::timeout(CLOSE_TIMEOUT, cancel).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "basic.cancel failed"),
            Err(_) => {
                tracing::warn!(
                    timeout = ?CLOSE_TIMEOUT,
                    "no basic.cancel-ok from the broker; closing anyway"
                );
                self.unresponsive = true;
            }
        }
        // Deliveries that raced the cancel: give them back at once rather than holding them
        // until the channel closes.
        while let Some(Ok(d)) = self.consumer.try_recv() {
            if let Err(e) = self.channel.basic_reject(
                d.delivery_tag,
                amqp_client::BasicRejectOptions { requeue: true },
            ) {
                tracing::warn!(error = %e, "basic.reject failed");
            }
        }
    }

    /// Lets in-flight requests finish (up to the grace period), then closes channel and
    /// connection.
    async fn finish(&mut self, in_flight: &mut JoinSet<()>) {
        let drain = async { while in_flight.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.grace, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                grace = ?self.config.grace,
                "in-flight requests did not finish in time; they return to the queue"
            );
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.direct.close()).await;
        // A broker that did not answer basic.cancel will not answer channel.close either: go
        // straight to the connection's close (itself bounded by the core's close timeout).
        if !self.unresponsive {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.channel.close()).await;
        }
        match tokio::time::timeout(CLOSE_TIMEOUT, self.connection.close()).await {
            Ok(Err(e)) => tracing::debug!(error = %e, "connection close"),
            Err(_) => tracing::debug!("connection close timed out"),
            Ok(Ok(())) => {}
        }
    }
}

/// Handles one delivery: validate, run the handler, reply, ack. Never fails: every problem is a
/// log line, an error reply where a reply is possible, and an ack (never a requeue, which would
/// loop the same bad request forever).
///
/// A request with an `x-deadline` that has passed is never started, and one whose handler runs
/// past it is cancelled (the handler's future is dropped): acked, counted as expired, no reply —
/// the caller has given up. A request with a `traceparent` is handled in a span that records its
/// trace id, and its reply carries the trace on (same trace id, this server's span id).
async fn serve_one(worker: Arc<Worker>, delivery: Box<Delivery>) {
    let Worker {
        channel,
        handler,
        stats,
        direct,
        confirms,
        max_body,
        metrics,
    } = &*worker;
    let (confirms, max_body) = (*confirms, *max_body);
    let started_at = metrics.as_ref().map(|m| {
        m.started();
        Instant::now()
    });
    let finished = |outcome: Outcome| {
        if let Some(m) = metrics {
            let took = match outcome {
                Outcome::Ok | Outcome::Error(_) => started_at.map(|t| t.elapsed()),
                Outcome::Expired | Outcome::Unanswerable => None,
            };
            m.finished(outcome, took);
        }
    };
    let tag = delivery.delivery_tag;
    let request = Request {
        body: delivery.body,
        properties: delivery.properties,
        redelivered: delivery.redelivered,
    };
    // Both are echoed byte for byte: a short string is octets, not text, and a reply whose id
    // differs by one byte matches no call.
    let correlation_id = request.properties.correlation_id.clone();
    let shown_id = correlation_id
        .as_ref()
        .map_or(DisplayId(b"-"), |id| DisplayId(id.as_bytes()));
    let Some(reply_to) = request
        .properties
        .reply_to
        .clone()
        .filter(|r| !r.is_empty())
    else {
        tracing::warn!(
            correlation_id = %shown_id,
            "request without reply_to: nowhere to answer; acked and dropped"
        );
        stats.unanswerable.fetch_add(1, Ordering::Relaxed);
        finished(Outcome::Unanswerable);
        ack(channel, tag);
        return;
    };
    let json = rpc_wire::json::is_json(
        request
            .properties
            .content_type
            .as_ref()
            .map(|c| c.as_bytes()),
    );
    // The caller's trace, continued under a span of this server's (`None`: the request named no
    // trace, and the reply names none either).
    let trace = rpc_wire::traceparent_of(&request.properties)
        .map(|parent| parent.child(rpc_wire::trace::new_span_id()));
    let deadline = match rpc_wire::deadline_of(&request.properties) {
        None => None,
        Some(ms) => match rpc_wire::deadline::time_left(ms, SystemTime::now()) {
            // Kept as time left: the runtime's clock is read only if a timer is ever needed.
            Some(left) => Some(left),
            None => {
                tracing::warn!(
                    correlation_id = %shown_id,
                    deadline_ms = ms,
                    "request expired before it started (x-deadline passed): acked, not answered"
                );
                stats.expired.fetch_add(1, Ordering::Relaxed);
                finished(Outcome::Expired);
                ack(channel, tag);
                return;
            }
        },
    };
    let span = tracing::debug_span!("rpc.request", trace_id = tracing::field::Empty);
    if let Some(t) = &trace {
        if !span.is_disabled() {
            span.record("trace_id", tracing::field::display(t.trace_id_hex()));
        }
    }
    let outcome = if correlation_id.is_none() {
        Err(ReplyError::new(
            ErrorCode::BadRequest,
            "request has no correlation_id: the reply could not be matched to it",
        ))
    } else if request.body.len() > max_body {
        Err(ReplyError::new(
            ErrorCode::TooLarge,
            format!(
                "request body of {} bytes is over this server's limit of {max_body} bytes",
                request.body.len()
            ),
        ))
    } else {
        if let Some(t) = &trace {
            // At least one line per request at debug, with the trace id under its own key.
            tracing::debug!(parent: &span, trace_id = %format_args!("{:032x}", t.trace_id), correlation_id = %shown_id, "request");
        }
        // A panicking handler costs one error reply, not the worker. Caught in place rather
        // than by spawning a task per request: no cross-thread hand-off on the hot path.
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(request)));
        let result = match call {
            Ok(fut) => {
                let run = CatchPanic(fut).instrument(span.clone());
                // Nested calls the handler makes continue this trace.
                let run = async {
                    match trace {
                        Some(t) => rpc_wire::trace::scope(t, run).await,
                        None => run.await,
                    }
                };
                match deadline {
                    None => run.await,
                    // The handler is polled first: one that answers at once never arms a timer.
                    Some(left) => match (ByDeadline {
                        inner: run,
                        left,
                        timer: None,
                    })
                    .await
                    {
                        Ok(r) => r,
                        Err(()) => {
                            tracing::warn!(
                                parent: &span,
                                correlation_id = %shown_id,
                                "request cancelled at its deadline (x-deadline): acked, not answered"
                            );
                            stats.expired.fetch_add(1, Ordering::Relaxed);
                            finished(Outcome::Expired);
                            ack(channel, tag);
                            return;
                        }
                    },
                }
            }
            Err(payload) => Err(payload),
        };
        result.unwrap_or_else(|payload| {
            Err(ReplyError::new(
                ErrorCode::Internal,
                format!("the handler panicked: {}", panic_message(&*payload)),
            ))
        })
    };
    let kind = match &outcome {
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::Error(e.code.clone()),
    };
    // The usual answer (no content type, a reply queue, no confirms): its properties are
    // written straight into a buffer (the bytes the built ones encode to, without building,
    // encoding and dropping them per request).
    let outcome = match outcome {
        Ok(response)
            if response.content_type.is_none()
                && !confirms
                && !(direct.is_some() && is_direct_reply_to(reply_to.as_bytes())) =>
        {
            stats.answered.fetch_add(1, Ordering::Relaxed);
            let id = correlation_id.as_ref().map_or(&[][..], |c| c.as_bytes());
            let mut encoded = [0u8; REPLY_PROPERTIES_MAX];
            let len = encode_reply_properties(&mut encoded, id, trace.as_ref());
            let sent = channel
                .basic_publish_raw(
                    "",
                    reply_to.as_bytes(),
                    amqp_client::BasicPublishOptions::default(),
                    &encoded[..len],
                    &response.body,
                )
                .await;
            match sent {
                Ok(()) => ack(channel, tag),
                Err(e) => tracing::error!(
                    error = %e,
                    reply_to = %DisplayId(reply_to.as_bytes()),
                    "could not publish the reply; the request stays unacked"
                ),
            }
            finished(Outcome::Ok);
            return;
        }
        other => other,
    };
    let (mut properties, body) = match outcome {
        Ok(response) => {
            stats.answered.fetch_add(1, Ordering::Relaxed);
            let mut props = BasicProperties {
                correlation_id,
                ..BasicProperties::default()
            };
            if let Some(ct) = response.content_type {
                props.content_type = Some(ct.into());
            }
            (props, response.body)
        }
        Err(e) => {
            tracing::warn!(
                parent: &span,
                code = %e.code,
                correlation_id = %shown_id,
                reply_to = %DisplayId(reply_to.as_bytes()),
                "bad request: {}",
                e.message
            );
            stats.errors.fetch_add(1, Ordering::Relaxed);
            let mut props = error_reply_properties(correlation_id.as_ref(), &e.code);
            let body = if json {
                // A JSON caller gets the error in JSON too; `x-error` says it all the same.
                props.content_type = Some(rpc_wire::CONTENT_TYPE_JSON.into());
                Bytes::from(rpc_wire::json::ErrorBody::to_json(
                    e.code.as_str(),
                    &e.message,
                ))
            } else {
                Bytes::from(e.message.into_owned())
            };
            (props, body)
        }
    };
    if let Some(t) = trace {
        match properties.headers.as_mut() {
            None => properties.headers = Some(rpc_wire::trace_headers(&t)),
            Some(headers) => headers.insert(rpc_wire::TRACEPARENT_HEADER, t.to_string()),
        }
    }
    let properties = properties;
    if let Some(direct) = direct
        .as_ref()
        .filter(|_| is_direct_reply_to(reply_to.as_bytes()))
    {
        // Boxed: the direct reply-to path's future would otherwise make every request's task 5.5 KB
        // instead of 2.1 KB (a copy into the task and an allocation per request).
        Box::pin(reply_direct(
            channel,
            direct,
            tag,
            reply_to.as_bytes(),
            &properties,
            &body,
        ))
        .await;
        finished(kind);
        return;
    }
    match publish_reply(channel, reply_to.as_bytes(), &properties, &body, confirms).await {
        Ok(()) => ack(channel, tag),
        // Not acked: the request goes back to the queue when the channel closes, and another
        // (or this, restarted) server answers it. Duplicate answers are dropped by the client.
        Err(e) => tracing::error!(
            error = %e,
            reply_to = %DisplayId(reply_to.as_bytes()),
            "could not publish the reply; the request stays unacked"
        ),
    }
    finished(kind);
}

/// Replies to a direct reply-to address on the separate reply connection (see
/// [`crate::direct_reply`]), then acks.
async fn reply_direct(
    channel: &Channel,
    direct: &DirectReplies,
    tag: u64,
    reply_to: &[u8],
    properties: &BasicProperties,
    body: &[u8],
) {
    let mut outcome = direct.publish(reply_to, properties, body).await;
    if let DirectOutcome::Refused(_) = outcome {
        // Another reply on the same connection may have been the one the broker refused:
        // one more try on a fresh connection tells them apart.
        outcome = direct.publish(reply_to, properties, body).await;
    }
    match outcome {
        DirectOutcome::Delivered => ack(channel, tag),
        DirectOutcome::Refused(e) => {
            tracing::warn!(
                error = %e,
                reply_to = %DisplayId(reply_to),
                "the broker refused the reply to this direct reply-to address (forged or stale); \
                 request acked without a reply"
            );
            ack(channel, tag);
        }
        DirectOutcome::Unavailable(e) => tracing::error!(
            error = %e,
            reply_to = %DisplayId(reply_to),
            "no reply connection; the request stays unacked"
        ),
    }
}

/// Polls `future` once with the caller's context: `Ready(())` if it finished, `Pending` if it
/// has to wait (a later spawn polls it again with the task's own waker, so the caller's waker,
/// registered here, can only cause one spurious wake-up).
async fn poll_once<F: Future + ?Sized>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

pin_project_lite::pin_project! {
    /// A future that must finish by `at`: `Err(())` if it has not. Unlike `tokio::time::timeout`,
    /// the timer is created only when the future first has to wait, so the many handlers that
    /// answer in their first poll never touch the runtime's timer (measured: creating and
    /// dropping a `Sleep` per request was ~1% of a server's CPU at 64 calls in flight).
    struct ByDeadline<F> {
        #[pin]
        inner: F,
        // The time left when the request arrived (the first poll follows at once).
        left: Duration,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: Future> Future for ByDeadline<F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.inner.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        let left = *this.left;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(left)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Polls a handler's future, turning a panic into `Err(payload)`.
struct CatchPanic(HandlerFuture);

impl Future for CatchPanic {
    type Output = Result<Result<Response, ReplyError>, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future is not polled again after a panic (Ready is returned), so no broken state
        // can be observed: asserting unwind safety is sound.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Room for a reply's properties written by [`encode_reply_properties`]: the flags word, the
/// `traceparent` table and a correlation id of at most 255 bytes.
const REPLY_PROPERTIES_MAX: usize = 2 + 76 + 1 + 255;

/// A reply's properties (no content type) as `basic_publish_raw` takes them: `headers` with the
/// `traceparent` when there is a trace, then `correlation_id` (the request's, byte for byte; an
/// answered request always has one). The same bytes the built properties encode to (tested).
/// Returns the length written.
fn encode_reply_properties(
    out: &mut [u8; REPLY_PROPERTIES_MAX],
    correlation_id: &[u8],
    trace: Option<&rpc_wire::TraceParent>,
) -> usize {
    use amqp_codec::properties::{CORRELATION_ID, HEADERS};
    let mut flags = CORRELATION_ID;
    let mut at = 2;
    if let Some(t) = trace {
        flags |= HEADERS;
        let table = rpc_wire::trace_headers_encoded(t);
        out[at..at + table.len()].copy_from_slice(&table);
        at += table.len();
    }
    // A short string: at most 255 bytes, as the request's id was when it was decoded.
    let id = &correlation_id[..correlation_id.len().min(255)];
    out[at] = id.len() as u8;
    out[at + 1..at + 1 + id.len()].copy_from_slice(id);
    at += 1 + id.len();
    out[..2].copy_from_slice(&flags.to_be_bytes());
    at
}

async fn publish_reply(
    channel: &Channel,
    reply_to: &[u8],
    properties: &BasicProperties,
    body: &Bytes,
    confirms: bool,
) -> Result<(), amqp_client::Error> {
    // Default exchange, routing key = reply_to, not mandatory: a caller that went away (its
    // exclusive queue deleted) is not this server's error, and a return would only be noise.
    if !confirms {
        return channel
            .basic_publish(
                "",
                reply_to,
                amqp_client::BasicPublishOptions::default(),
                properties,
                body,
            )
            .await;
    }
    let confirmation = channel
        .basic_publish_confirmed(
            "",
            reply_to,
            amqp_client::BasicPublishOptions::default(),
            properties,
            body,
        )
        .await?;
    match confirmation.wait().await? {
        amqp_client::Confirm::Ack => Ok(()),
        amqp_client::Confirm::Nack => Err(amqp_client::Error::Protocol(
            "broker nacked the reply".into(),
        )),
    }
}

fn ack(channel: &Channel, tag: u64) {
    if let Err(e) = channel.basic_ack(tag, amqp_client::BasicAckOptions::default()) {
        tracing::error!(error = %e, delivery_tag = tag, "basic.ack failed");
    }
}

#[cfg(test)]
mod encoded_reply_tests {
    use super::*;

    #[test]
    fn encoded_reply_properties_are_the_built_ones_byte_for_byte() {
        let trace = rpc_wire::TraceParent {
            trace_id: 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
            span_id: 0xb7ad_6b71_6920_3331,
            flags: 1,
        };
        let long = [b'x'; 255];
        for id in [
            &b"c1e5f310-0996-45fb-a3d8-bf2081cd891c"[..],
            &[0u8, 255][..],
            &b""[..],
            &long[..],
        ] {
            for t in [Some(&trace), None] {
                let mut built = BasicProperties::default().with_correlation_id(id);
                if let Some(t) = t {
                    built.headers = Some(rpc_wire::trace_headers(t));
                }
                let mut out = [0u8; REPLY_PROPERTIES_MAX];
                let len = encode_reply_properties(&mut out, id, t);
                assert_eq!(&out[..len], &built.encoded().unwrap()[..]);
            }
        }
    }
}
