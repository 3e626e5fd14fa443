//! The worker's Prometheus metrics (OpenMetrics text through `prometheus-client`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `amqp_rpc_server_requests_total` | counter | `queue`, `outcome`: `ok`, an `x-error` code (`bad-request`, `too-large`, `handler-error`, `internal-error`), `expired`, `unanswerable` |
//! | `amqp_rpc_server_request_duration_seconds` | histogram | `queue` (delivery to reply published; expired and unanswerable requests excluded) |
//! | `amqp_rpc_server_in_flight` | gauge | `queue` (requests being handled now) |
//! | `amqp_rpc_server_reconnects_total` | counter | (connections opened after the first by `serve_reconnecting`) |
//!
//! Off unless a registry is given ([`crate::RpcServerBuilder::metrics`]): a server without it
//! pays one `Option` check per request. With it, the counters of the usual outcomes are resolved
//! once, so a request costs a few atomic additions and one histogram observation.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use rpc_wire::ErrorCode;

/// Labels of the per-request metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The request queue.
    pub queue: String,
    /// How the request ended.
    pub outcome: String,
}

/// Labels of the per-queue metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The request queue.
    pub queue: String,
}

/// Latency buckets: 50 µs doubling to ~26 s (20 buckets), for fib(1) on loopback up to the
/// slowest handler a deadline lets run.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_05, 2.0, 20)
}

/// The server-side families, registered once per registry; every server started with the
/// registry shares them (one label set per queue).
#[derive(Debug, Clone)]
pub struct ServerMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<QueueLabels, Histogram>,
    in_flight: Family<QueueLabels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    reconnects: Counter<u64, AtomicU64>,
}

impl ServerMetrics {
    /// Registers the server's metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = ServerMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            in_flight: Family::default(),
            reconnects: Counter::default(),
        };
        registry.register(
            "amqp_rpc_server_requests",
            "Requests handled, by queue and outcome (ok, an x-error code, expired, unanswerable)",
            m.requests.clone(),
        );
        registry.register(
            "amqp_rpc_server_request_duration_seconds",
            "Time from a request's delivery to its reply being published",
            m.duration.clone(),
        );
        registry.register(
            "amqp_rpc_server_in_flight",
            "Requests being handled now",
            m.in_flight.clone(),
        );
        registry.register(
            "amqp_rpc_server_reconnects",
            "Connections opened again after a lost one",
            m.reconnects.clone(),
        );
        m
    }

    /// The handles for one queue, resolved once.
    pub(crate) fn for_queue(&self, queue: &str) -> QueueMetrics {
        let outcome = |o: &str| {
            self.requests
                .get_or_create(&RequestLabels {
                    queue: queue.to_owned(),
                    outcome: o.to_owned(),
                })
                .clone()
        };
        let labels = QueueLabels {
            queue: queue.to_owned(),
        };
        QueueMetrics {
            queue: queue.to_owned(),
            ok: outcome("ok"),
            expired: outcome("expired"),
            unanswerable: outcome("unanswerable"),
            bad_request: outcome(ErrorCode::BadRequest.as_str()),
            too_large: outcome(ErrorCode::TooLarge.as_str()),
            handler_error: outcome(ErrorCode::HandlerError.as_str()),
            internal: outcome(ErrorCode::Internal.as_str()),
            requests: self.requests.clone(),
            duration: self.duration.get_or_create(&labels).clone(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
        }
    }

    /// A connection was opened again after a lost one.
    pub(crate) fn reconnected(&self) {
        self.reconnects.inc();
    }
}

/// How one request ended, for the `outcome` label.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Ok,
    Error(ErrorCode),
    Expired,
    Unanswerable,
}

/// One queue's metric handles.
#[derive(Debug, Clone)]
pub(crate) struct QueueMetrics {
    queue: String,
    ok: Counter,
    expired: Counter,
    unanswerable: Counter,
    bad_request: Counter,
    too_large: Counter,
    handler_error: Counter,
    internal: Counter,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl QueueMetrics {
    pub(crate) fn started(&self) {
        self.in_flight.inc();
    }

    pub(crate) fn finished(&self, outcome: Outcome, took: Option<Duration>) {
        self.in_flight.dec();
        match outcome {
            Outcome::Ok => self.ok.inc(),
            Outcome::Expired => self.expired.inc(),
            Outcome::Unanswerable => self.unanswerable.inc(),
            Outcome::Error(ErrorCode::BadRequest) => self.bad_request.inc(),
            Outcome::Error(ErrorCode::TooLarge) => self.too_large.inc(),
            Outcome::Error(ErrorCode::HandlerError) => self.handler_error.inc(),
            Outcome::Error(ErrorCode::Internal) => self.internal.inc(),
            Outcome::Error(ref other) => self
                .requests
                .get_or_create(&RequestLabels {
                    queue: self.queue.clone(),
                    outcome: other.as_str().to_owned(),
                })
                .inc(),
        };
        if let Some(took) = took {
            self.duration.observe(took.as_secs_f64());
        }
    }
}
