//! `amqp-rpc bench`: drives N tutorial-six calls of fib(K) with C in flight and reports throughput, an HDR
//! latency histogram, the client's CPU time per call and its peak RSS; `--raw` instead measures what the broker
//! itself sustains (publish + consume through one queue). `bench/compare.py` runs it against the peers.
//! `--rate R --duration D` runs it open loop instead ([`open_loop`]): calls sent on schedule, latency
//! counted from each call's scheduled time, so a stall cannot hide; `--plot` draws it.
//!
//! Tests drive both modes as library functions: [`calls`] (closed loop) and [`open_loop::measure`],
//! with arguments parsed as on the command line ([`BenchArgs::try_parse_from`]).
//!
//! `--blocking` runs the blocking client instead (`rpc_client::blocking`, on `amqp-client`'s blocking shell): one
//! thread making sequential calls, no runtime, the caller's thread writing the request and reading the reply.
//!
//! The async client runs on a current-thread tokio runtime: the connection's reader task (which matches replies to
//! their calls), its writer task and the callers then share one thread, so a reply wakes its caller without a
//! cross-thread wake-up,
//! and the other core stays free for the broker (on a 2-core machine every cycle the client saves is the broker's).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use amqp_client::{BasicConsumeOptions, BasicProperties, Connection, QueueDeclareOptions};
use rpc_client::{CorrelationIds, RpcClient, RpcError, DEFAULT_URI, RPC_QUEUE};
use rpc_server::{CancellationToken, FibService, RpcServer, ServerError};

pub mod open_loop;
mod plot;

/// Arguments of `amqp-rpc bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Number of calls (with --raw: messages).
    #[arg(short = 'n', long = "calls", default_value_t = 10_000)]
    pub calls: u64,
    /// Calls in flight at once.
    #[arg(short = 'c', long = "inflight", default_value_t = 1)]
    pub inflight: usize,
    /// Each call asks for fib(K).
    #[arg(long = "fib", value_name = "K", default_value_t = 1)]
    pub fib: u64,
    /// Prefetch of the in-process server (--with-server).
    #[arg(long, value_name = "P", default_value_t = 64)]
    pub prefetch: u16,
    /// Start an RPC server in this process (same runtime) instead of using a running one.
    #[arg(long)]
    pub with_server: bool,
    /// Receive replies by RabbitMQ's direct reply-to instead of a declared callback queue.
    #[arg(long)]
    pub direct_reply_to: bool,
    /// Correlation ids as the uuid's 16 raw bytes instead of its 36-character text.
    #[arg(long)]
    pub binary_ids: bool,
    /// Measure the broker's ceiling: publish and consume 16-byte messages through one queue, msgs/s.
    #[arg(long)]
    pub raw: bool,
    /// Use the blocking client (the blocking shell, no runtime): one thread, sequential calls, so
    /// `--inflight` must be 1. Run the server beside it (`amqp-rpc serve`).
    #[arg(long, conflicts_with_all = ["raw", "with_server", "rate"])]
    pub blocking: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Request queue.
    #[arg(long, default_value = RPC_QUEUE)]
    pub queue: String,
    /// Broker URI.
    #[arg(long, default_value = DEFAULT_URI)]
    pub uri: String,
    /// Broker URI of the in-process server (--with-server), when it differs from the client's
    /// (`--uri` through `amqp-rpc proxy`, the server straight to the broker).
    #[arg(long, requires = "with_server")]
    pub server_uri: Option<String>,
    /// Record this process's connections as a pcapng capture (plaintext, also over TLS).
    #[arg(long, value_name = "FILE.pcapng")]
    pub record: Option<std::path::PathBuf>,
    /// Each call's deadline (`30s`, `500ms`, `2m`): the request carries it, and a call without a
    /// reply by then fails (closed loop: the run stops; open loop: it is counted as `timeout`).
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse_duration)]
    pub timeout: Duration,
    /// Open loop (`--rate`, `--duration`, `--plot`).
    #[command(flatten)]
    pub open_loop: open_loop::OpenLoopArgs,
}

impl BenchArgs {
    /// Parses `bench`'s arguments as the command line would (without the program and subcommand
    /// names), e.g. `["--rate", "1000", "--duration", "3s", "--queue", "q"]`.
    pub fn try_parse_from<I, T>(args: I) -> Result<BenchArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Bench {
            #[command(flatten)]
            args: BenchArgs,
        }
        let argv = std::iter::once(std::ffi::OsString::from("bench"))
            .chain(args.into_iter().map(Into::into));
        <Bench as clap::Parser>::try_parse_from(argv).map(|b| b.args)
    }
}

/// Messages published ahead of the consumer in `--raw`: enough to keep the broker busy, bounded so memory is.
const RAW_WINDOW: u64 = 4096;

/// Runs the benchmark; prints the report on stdout.
pub fn run(args: &BenchArgs) -> ExitCode {
    let tap = match crate::record::own_connections(args.record.as_deref()) {
        Ok(tap) => tap,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let code = run_measured(args);
    crate::record::report(tap.as_ref());
    code
}

fn run_measured(args: &BenchArgs) -> ExitCode {
    if args.open_loop.rate.is_some() {
        return open_loop::run(args);
    }
    if args.calls == 0 || args.inflight == 0 {
        eprintln!("error: --calls and --inflight must be at least 1");
        return ExitCode::from(2);
    }
    if args.blocking {
        if args.inflight != 1 {
            eprintln!(
                "error: --blocking makes sequential calls on one thread (one call in flight): drop --inflight {} \
                 or use the async client for calls in flight",
                args.inflight
            );
            return ExitCode::from(2);
        }
        return finish(blocking_calls(args), args.json);
    }
    let owned = args.clone();
    let outcome = on_runtime(async move {
        if owned.raw {
            raw(&owned).await
        } else {
            calls(&owned).await
        }
    });
    finish(outcome, args.json)
}

fn finish(outcome: Result<Report, BoxError>, json: bool) -> ExitCode {
    match outcome {
        Ok(report) => {
            print_report(&report, json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `measured` on a current-thread runtime of its own, as a spawned task.
///
/// The measured loop runs in a spawned task, not in `block_on`'s own future: the current-thread
/// scheduler polls the driver without blocking (an extra epoll_wait) before it polls a woken
/// `block_on` future, while a woken task just runs (strace: 2.7 -> 1.7 epoll_wait per sequential
/// call).
fn on_runtime<T: Send + 'static>(
    measured: impl std::future::Future<Output = Result<T, BoxError>> + Send + 'static,
) -> Result<T, BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let task = runtime.spawn(measured);
    runtime.block_on(task)?
}

/// What one closed-loop (or `--raw`) run measured.
#[derive(Debug)]
pub struct Report {
    ops: u64,
    inflight: usize,
    blocking: bool,
    direct_reply_to: bool,
    elapsed: Duration,
    cpu: CpuTimes,
    histogram: Option<Histogram<u64>>,
    peak_rss_bytes: u64,
}

impl Report {
    /// Operations done: calls (with `--raw`: messages).
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// The calls' latency at quantile `q` (0..=1); `None` for `--raw`, which has no latencies.
    pub fn latency_at_quantile(&self, q: f64) -> Option<Duration> {
        self.histogram
            .as_ref()
            .map(|h| Duration::from_micros(h.value_at_quantile(q)))
    }
}

/// Any failure of a run.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The server `--with-server` runs in this process, and how to stop it.
type LocalServer = Option<(
    CancellationToken,
    tokio::task::JoinHandle<Result<(), ServerError>>,
)>;

/// Starts the in-process Fibonacci server when `--with-server` asks for one.
async fn start_server(args: &BenchArgs) -> Result<LocalServer, BoxError> {
    if !args.with_server {
        return Ok(None);
    }
    let server = RpcServer::builder()
        .uri(args.server_uri.as_deref().unwrap_or(&args.uri))
        .queue(args.queue.as_str())
        .prefetch(args.prefetch)
        .start(FibService::new())
        .await?;
    let stop = server.shutdown_token();
    Ok(Some((
        stop,
        tokio::spawn(server.run_until(std::future::pending())),
    )))
}

async fn stop_server(server: LocalServer) -> Result<(), BoxError> {
    if let Some((stop, task)) = server {
        stop.cancel();
        task.await??;
    }
    Ok(())
}

/// The client the run measures; each call's deadline is `--timeout`.
async fn connect_client(args: &BenchArgs) -> Result<RpcClient, BoxError> {
    Ok(RpcClient::builder()
        .uri(args.uri.as_str())
        .queue(args.queue.as_str())
        .timeout(args.timeout)
        .direct_reply_to(args.direct_reply_to)
        .correlation_ids(if args.binary_ids {
            CorrelationIds::UuidBinary
        } else {
            CorrelationIds::UuidText
        })
        .connect()
        .await?)
}

/// The closed-loop benchmark: `--calls` calls of fib(K), `--inflight` at a time, each sent when one
/// finishes; latency counted from each call's send. Starts the in-process server if `--with-server`.
/// Stops at the first failed call.
pub async fn calls(args: &BenchArgs) -> Result<Report, BoxError> {
    let server = start_server(args).await?;
    let client = connect_client(args).await?;
    let body = Bytes::from(args.fib.to_string());
    let expected = Bytes::from(rpc_server::fib::fib_decimal(args.fib));

    let progress = progress_bar(args.calls, "calls");
    let mut histogram = latency_histogram();
    let meter = Meter::start();
    let mut in_flight = FuturesUnordered::new();
    let mut started = 0u64;
    let mut done = 0u64;
    while started < args.calls && in_flight.len() < args.inflight {
        in_flight.push(one_call(&client, body.clone(), &expected));
        started += 1;
    }
    while let Some(latency) = in_flight.next().await {
        record(&mut histogram, latency?);
        done += 1;
        if started < args.calls {
            in_flight.push(one_call(&client, body.clone(), &expected));
            started += 1;
        }
        if done % 256 == 0 {
            progress.set_position(done);
        }
    }
    let (elapsed, cpu) = meter.stop();
    progress.finish_and_clear();

    let _ = client.close().await;
    stop_server(server).await?;
    Ok(Report {
        ops: done,
        inflight: args.inflight,
        blocking: false,
        direct_reply_to: args.direct_reply_to,
        elapsed,
        cpu,
        histogram: Some(histogram),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// One call; its latency, or an error if it failed or the answer was not fib(K).
async fn one_call(client: &RpcClient, body: Bytes, expected: &Bytes) -> Result<Duration, BoxError> {
    let t = Instant::now();
    let reply = client.call(body).await?;
    let latency = t.elapsed();
    if reply != *expected {
        return Err(RpcError::BadReply(format!("expected {expected:?}, got {reply:?}")).into());
    }
    Ok(latency)
}

/// `--blocking`: the blocking client on this thread, one call after another; nothing else runs.
fn blocking_calls(args: &BenchArgs) -> Result<Report, BoxError> {
    let client = rpc_client::blocking::RpcClient::connect(
        RpcClient::builder()
            .uri(args.uri.as_str())
            .queue(args.queue.as_str())
            .timeout(args.timeout)
            .direct_reply_to(args.direct_reply_to)
            .correlation_ids(if args.binary_ids {
                CorrelationIds::UuidBinary
            } else {
                CorrelationIds::UuidText
            }),
    )?;
    let body = Bytes::from(args.fib.to_string());
    let expected = Bytes::from(rpc_server::fib::fib_decimal(args.fib));

    let progress = progress_bar(args.calls, "calls");
    let mut histogram = latency_histogram();
    let meter = Meter::start();
    for done in 1..=args.calls {
        let t = Instant::now();
        let reply = client.call(body.clone())?;
        let latency = t.elapsed();
        if reply != expected {
            return Err(RpcError::BadReply(format!("expected {expected:?}, got {reply:?}")).into());
        }
        record(&mut histogram, latency);
        if done % 256 == 0 {
            progress.set_position(done);
        }
    }
    let (elapsed, cpu) = meter.stop();
    progress.finish_and_clear();
    client.close()?;
    Ok(Report {
        ops: args.calls,
        inflight: 1,
        blocking: true,
        direct_reply_to: args.direct_reply_to,
        elapsed,
        cpu,
        histogram: Some(histogram),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// `--raw`: one connection, a publishing channel and a consuming channel on one exclusive queue (auto-ack);
/// publishing stays at most [`RAW_WINDOW`] messages ahead of consuming.
async fn raw(args: &BenchArgs) -> Result<Report, BoxError> {
    let conn = Connection::connect(&args.uri).await?;
    let consume = conn.open_channel().await?;
    let publish = conn.open_channel().await?;
    let queue = consume
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .await?
        .queue;
    let mut consumer = consume
        .basic_consume(
            &queue,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await?;
    let properties = BasicProperties::default();
    let payload = [b'x'; 16];

    let progress = progress_bar(args.calls, "msgs");
    let meter = Meter::start();
    let (mut published, mut received) = (0u64, 0u64);
    while received < args.calls {
        while published < args.calls && published - received < RAW_WINDOW {
            publish
                .basic_publish(
                    "",
                    &queue,
                    amqp_client::BasicPublishOptions::default(),
                    &properties,
                    &payload,
                )
                .await?;
            published += 1;
        }
        consumer.recv().await?;
        received += 1;
        while let Some(delivery) = consumer.try_recv() {
            delivery?;
            received += 1;
        }
        if received % 1024 < 64 {
            progress.set_position(received);
        }
    }
    let (elapsed, cpu) = meter.stop();
    progress.finish_and_clear();
    let _ = conn.close().await;
    Ok(Report {
        ops: received,
        inflight: RAW_WINDOW as usize,
        blocking: false,
        direct_reply_to: false,
        elapsed,
        cpu,
        histogram: None,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

fn print_report(r: &Report, as_json: bool) {
    let secs = r.elapsed.as_secs_f64();
    let rate = r.ops as f64 / secs;
    let per_op = |d: Duration| d.as_secs_f64() * 1e6 / r.ops.max(1) as f64;
    let cpu_us = per_op(r.cpu.total);
    let (user_us, sys_us) = (per_op(r.cpu.user), per_op(r.cpu.system));
    match (&r.histogram, as_json) {
        (None, true) => println!(
            "{}",
            json!({
                "client": "amqp-rpc", "msgs": r.ops, "elapsed_s": secs, "msgs_per_sec": rate,
                "cpu_us_per_msg": cpu_us, "cpu_user_us_per_msg": user_us, "cpu_sys_us_per_msg": sys_us,
                "peak_rss_bytes": r.peak_rss_bytes,
            })
        ),
        (None, false) => {
            println!(
                "raw publish+consume: {} msgs in {secs:.2} s: {rate:.0} msgs/s",
                r.ops
            );
            println!("client CPU {cpu_us:.2} µs/msg (user {user_us:.2}, sys {sys_us:.2})");
            println!("peak RSS {:.1} MiB", r.peak_rss_bytes as f64 / 1048576.0);
        }
        (Some(h), true) => println!(
            "{}",
            json!({
                "client": if r.blocking { "amqp-rpc --blocking" } else { "amqp-rpc" },
                "calls": r.ops, "inflight": r.inflight,
                "direct_reply_to": r.direct_reply_to, "elapsed_s": secs, "calls_per_sec": rate,
                "p50_us": h.value_at_quantile(0.5), "p90_us": h.value_at_quantile(0.9),
                "p99_us": h.value_at_quantile(0.99), "p999_us": h.value_at_quantile(0.999),
                "max_us": h.max(), "mean_us": h.mean(),
                "cpu_us_per_call": cpu_us, "cpu_user_us_per_call": user_us, "cpu_sys_us_per_call": sys_us,
                "peak_rss_bytes": r.peak_rss_bytes,
            })
        ),
        (Some(h), false) => {
            let reply = if r.direct_reply_to {
                "direct reply-to"
            } else {
                "callback queue"
            };
            let shell = if r.blocking { ", blocking client" } else { "" };
            println!(
                "{} calls, {} in flight, {reply}{shell}: {secs:.2} s, {rate:.0} calls/s",
                r.ops, r.inflight
            );
            println!(
                "latency µs: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
            println!("client CPU {cpu_us:.2} µs/call (user {user_us:.2}, sys {sys_us:.2})");
            println!("peak RSS {:.1} MiB", r.peak_rss_bytes as f64 / 1048576.0);
        }
    }
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn progress_bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(4));
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Latencies in µs, 1 µs to 60 s at 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

fn record(h: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 60_000_000);
    h.saturating_record(us);
}

/// CPU time this process used.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    /// user + system, from `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` (nanosecond resolution).
    total: Duration,
    /// The split from /proc/self/stat (clock-tick resolution).
    user: Duration,
    system: Duration,
}

impl CpuTimes {
    fn now() -> CpuTimes {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        let total = Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
        let (user, system) = proc_stat_times().unwrap_or_default();
        CpuTimes {
            total,
            user,
            system,
        }
    }

    fn since(self, start: CpuTimes) -> CpuTimes {
        CpuTimes {
            total: self.total.saturating_sub(start.total),
            user: self.user.saturating_sub(start.user),
            system: self.system.saturating_sub(start.system),
        }
    }
}

/// utime and stime of this process from /proc/self/stat (fields 14 and 15, in clock ticks).
fn proc_stat_times() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; the fields after its closing parenthesis do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let tick = |v: &str| {
        v.parse::<u64>()
            .ok()
            .map(|t| Duration::from_nanos(t * 1_000_000_000 / hz))
    };
    Some((tick(fields.next()?)?, tick(fields.next()?)?))
}

/// Peak resident set size (`VmHWM` in /proc/self/status), 0 where unavailable.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Wall clock and CPU time from the start of the measured part.
struct Meter {
    wall: Instant,
    cpu: CpuTimes,
}

impl Meter {
    fn start() -> Meter {
        Meter {
            wall: Instant::now(),
            cpu: CpuTimes::now(),
        }
    }

    fn stop(self) -> (Duration, CpuTimes) {
        (self.wall.elapsed(), CpuTimes::now().since(self.cpu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_times_parses_this_process() {
        assert!(proc_stat_times().is_some());
    }

    #[test]
    fn latencies_clamp_into_the_histogram() {
        let mut h = latency_histogram();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(3600));
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
    }

    #[test]
    fn peak_rss_is_reported() {
        assert!(peak_rss_bytes() > 0);
    }
}

#[cfg(test)]
mod size_probe {
    use super::*;

    fn future_size<F, R>(_: F) -> usize
    where
        F: FnOnce(&'static RpcClient, Bytes) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// 10,000 calls in flight hold 10,000 of these futures: the 64 MB target needs them small (2.8 KB before
    /// the rare timeout path was boxed and the request properties scoped, 1.5 KB after).
    #[test]
    fn a_call_in_flight_stays_small() {
        let size = future_size(|c: &'static RpcClient, b: Bytes| c.call(b));
        assert!(size <= 2048, "RpcClient::call future is {size} bytes");
    }
}
