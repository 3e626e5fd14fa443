//! `amqp-rpc serve`: tutorial six's `rpc_server.py`, exact and robust — declare `rpc_queue`,
//! prefetch, consume, answer `fib(n)` to `reply_to` with the request's `correlation_id`, ack.
//! Ctrl-C or SIGTERM: stop consuming, finish in-flight requests, close cleanly.
//!
//! A lost connection (broker restarted or killed, heartbeat timeout, cluster node stopped) is not
//! the end: it reconnects with capped exponential backoff and jitter — to the first of its
//! `--uri`s that answers — declares its queue, consumes and serves again, logging each attempt.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use amqp_client::{ConnectionConfig, FieldTable, QueueDeclareOptions};
use rpc_client::{Backoff, DEFAULT_URI, RPC_QUEUE};
use rpc_server::{CancellationToken, FibService, ReplyError, Request, RpcServer};

/// Arguments of `amqp-rpc serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Broker URI; repeat it for the nodes of a cluster (tried in turn on every connect).
    #[arg(long, default_value = DEFAULT_URI)]
    pub uri: Vec<String>,
    /// Requests held (and computed) at once; 1 gives the tutorial's fair dispatch.
    #[arg(long, default_value_t = 1)]
    pub prefetch: u16,
    /// Request queue.
    #[arg(long, default_value = RPC_QUEUE)]
    pub queue: String,
    /// Largest n answered; larger ones get a `too-large` error reply.
    #[arg(long, value_name = "N", default_value_t = rpc_wire::fibonacci::DEFAULT_MAX_N)]
    pub max_n: u64,
    /// Ack a request only after the broker confirmed its reply (publisher confirms).
    #[arg(long)]
    pub confirms: bool,
    /// Publish replies to direct reply-to addresses on the consuming channel (one round trip
    /// less) instead of a separate confirmed connection that a forged reply_to cannot kill.
    #[arg(long)]
    pub direct_replies_inline: bool,
    /// Seconds in-flight requests get to finish after Ctrl-C/SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub grace: u64,
    /// Declare the queue as a quorum queue (durable, replicated over a cluster's nodes) when it
    /// does not exist yet. An existing queue is consumed as it is, whatever its declaration.
    #[arg(long)]
    pub quorum: bool,
    /// Declare the queue durable (a classic queue that survives a broker restart) when it does
    /// not exist yet. An existing queue is consumed as it is.
    #[arg(long, conflicts_with = "quorum")]
    pub durable: bool,
    /// First wait before reconnecting after the connection is lost (doubles on each failed
    /// attempt, with jitter).
    #[arg(long, default_value = "100ms", value_parser = crate::call::parse_duration)]
    pub reconnect_initial: Duration,
    /// Longest wait between reconnect attempts.
    #[arg(long, default_value = "10s", value_parser = crate::call::parse_duration)]
    pub reconnect_max: Duration,
    /// Work this long on each request before answering (a slow service, for fault tests).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay_ms: u64,
    /// Serve Prometheus metrics (OpenMetrics text) at `GET http://ADDR/metrics`: requests by
    /// outcome, their duration, requests in flight, reconnects.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Log lines as text (default) or as JSON objects, one per line (each request's lines carry
    /// its `trace_id`).
    #[arg(long, value_enum, default_value_t = crate::call::LogFormat::Text)]
    pub log_format: crate::call::LogFormat,
    /// Stop (gracefully) when stdin reaches end of file: a test that starts this server with a
    /// pipe on stdin takes it down with it however the test ends, even when killed.
    #[arg(long, hide = true)]
    pub stop_on_stdin_eof: bool,
    /// Record this process's connections as a pcapng capture (plaintext, also over TLS).
    #[arg(long, value_name = "FILE.pcapng")]
    pub record: Option<std::path::PathBuf>,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: &ServeArgs) -> ExitCode {
    crate::call::init_logging_as("warn", args.log_format);
    // One thread: a request is received, answered and acked without a cross-thread wake-up.
    // Measured with `amqp-rpc bench` (3 000 sequential fib(1) calls, loaded 2-core machine):
    // p50 172 µs on one thread against 234-261 µs on tokio's multi-thread runtime. fib above
    // 20 000 runs on the blocking pool, so a large request does not stall the others.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return crate::call::fail(format!("cannot start the runtime: {e}")),
    };
    let tap = match crate::record::own_connections(args.record.as_deref()) {
        Ok(tap) => tap,
        Err(e) => return crate::call::fail(e),
    };
    let code = match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::call::fail(e),
    };
    crate::record::report(tap.as_ref());
    code
}

async fn serve(args: &ServeArgs) -> Result<(), String> {
    let config = ConnectionConfig::parse_many(&args.uri).map_err(|e| e.to_string())?;
    let mut builder = RpcServer::builder()
        .connection_config(config)
        .queue(&args.queue)
        .prefetch(args.prefetch)
        .publisher_confirms(args.confirms)
        .grace(Duration::from_secs(args.grace))
        .isolate_direct_replies(!args.direct_replies_inline);
    if let Some(addr) = args.metrics {
        let mut registry = prometheus_client::registry::Registry::default();
        builder = builder.metrics(rpc_server::metrics::ServerMetrics::register(&mut registry));
        let registry = std::sync::Arc::new(std::sync::Mutex::new(registry));
        let bound = crate::metrics::serve(addr, registry)
            .await
            .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
        tracing::info!(%bound, "metrics at http://{bound}/metrics");
    }
    if args.quorum {
        builder = builder.queue_options(quorum_queue());
    } else if args.durable {
        builder = builder.queue_options(QueueDeclareOptions {
            durable: true,
            ..Default::default()
        });
    }
    let service = FibService::new().max_n(args.max_n).print_requests(true);
    let delay = Duration::from_millis(args.delay_ms);
    let handler = move |request: Request| {
        let service = service.clone();
        async move {
            let answer = service.respond(&request).await?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, ReplyError>(answer)
        }
    };
    let backoff = Backoff {
        initial: args.reconnect_initial,
        max: args.reconnect_max,
        jitter: 0.5,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    if args.stop_on_stdin_eof {
        // A plain thread, not tokio's stdin: a read pending on the runtime's blocking pool
        // would hold up the runtime's shutdown. It does not log: when the parent is gone so are
        // the pipes of stdout and stderr, and a failed write to stderr panics.
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
            shutdown.cancel();
        });
    }
    builder
        .serve_reconnecting(handler, backoff, shutdown, || {
            println!(" [x] Awaiting RPC requests")
        })
        .await
        .map_err(|e| crate::call::explain_connect(&e.to_string()))?;
    tracing::info!("server stopped");
    Ok(())
}

/// A quorum queue: durable (quorum queues always are) with `x-queue-type = "quorum"`.
fn quorum_queue() -> QueueDeclareOptions {
    let mut arguments = FieldTable::new();
    arguments.insert("x-queue-type", "quorum");
    QueueDeclareOptions {
        durable: true,
        arguments,
        ..Default::default()
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
