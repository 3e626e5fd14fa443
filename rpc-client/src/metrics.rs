//! The caller's Prometheus metrics (OpenMetrics text through `prometheus-client`), registered
//! in the same kind of registry as the worker's, so one exporter serves both.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `amqp_rpc_client_calls_total` | counter | `queue`, `outcome`: `ok`, an `x-error` code, `timeout`, `no-route`, `blocked`, `connection-lost`, `closed`, `other` |
//! | `amqp_rpc_client_call_duration_seconds` | histogram | `queue` (answered calls: publish to reply) |
//! | `amqp_rpc_client_in_flight` | gauge | (calls waiting for their reply now) |
//! | `amqp_rpc_client_late_replies_total` | counter | (replies for calls that had timed out or were dropped) |
//! | `amqp_rpc_client_unknown_replies_total` | counter | (replies matching no call: duplicates, strangers) |

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::RpcError;

/// Labels of the per-call counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The request queue.
    pub queue: String,
    /// How the call ended.
    pub outcome: String,
}

/// Labels of the latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The request queue.
    pub queue: String,
}

/// The client-side families; cheap to clone (every handle is shared).
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    calls: Family<CallLabels, Counter>,
    duration: Family<QueueLabels, Histogram>,
    in_flight: Gauge<i64, AtomicI64>,
    late: Counter<u64, AtomicU64>,
    unknown: Counter<u64, AtomicU64>,
}

impl ClientMetrics {
    /// Registers the client's metrics in `registry`; give the handle to
    /// [`crate::RpcClientBuilder::metrics`] (any number of clients may share it).
    pub fn register(registry: &mut Registry) -> Self {
        let m = ClientMetrics {
            calls: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
            }),
            in_flight: Gauge::default(),
            late: Counter::default(),
            unknown: Counter::default(),
        };
        registry.register(
            "amqp_rpc_client_calls",
            "RPC calls made, by queue and outcome",
            m.calls.clone(),
        );
        registry.register(
            "amqp_rpc_client_call_duration_seconds",
            "Time from a request's publish to its reply, for answered calls",
            m.duration.clone(),
        );
        registry.register(
            "amqp_rpc_client_in_flight",
            "Calls waiting for their reply now",
            m.in_flight.clone(),
        );
        registry.register(
            "amqp_rpc_client_late_replies",
            "Replies that came after their call had timed out or been dropped",
            m.late.clone(),
        );
        registry.register(
            "amqp_rpc_client_unknown_replies",
            "Replies that matched no call (duplicates, unknown correlation ids)",
            m.unknown.clone(),
        );
        m
    }

    pub(crate) fn started(&self) {
        self.in_flight.inc();
    }

    pub(crate) fn finished(&self, queue: &str, outcome: &Result<(), &RpcError>, took: Duration) {
        self.in_flight.dec();
        let label = match outcome {
            Ok(()) => "ok",
            Err(RpcError::Server { code, .. }) => code.as_str(),
            Err(RpcError::Timeout { .. } | RpcError::SetupTimeout { .. }) => "timeout",
            Err(RpcError::NoRoute { .. }) => "no-route",
            Err(RpcError::Blocked { .. }) => "blocked",
            Err(RpcError::ConnectionLost(_) | RpcError::Connection(_)) => "connection-lost",
            Err(RpcError::Closed) => "closed",
            Err(_) => "other",
        };
        self.calls
            .get_or_create(&CallLabels {
                queue: queue.to_owned(),
                outcome: label.to_owned(),
            })
            .inc();
        if outcome.is_ok() {
            self.duration
                .get_or_create(&QueueLabels {
                    queue: queue.to_owned(),
                })
                .observe(took.as_secs_f64());
        }
    }

    pub(crate) fn dropped_reply(&self, late: bool) {
        if late {
            self.late.inc();
        } else {
            self.unknown.inc();
        }
    }
}
