//! `amqp-rpc bench --rate R --duration D`: the open-loop benchmark.
//!
//! A closed loop (C calls in flight, the next sent when one finishes) stops sending while the server
//! stalls, so the calls a real client would have made during the stall are never made and never
//! measured: the percentiles look fine because the stall was *omitted* ("coordinated omission",
//! Gil Tene). Here call `i` is due at `t0 + i/R` whatever the replies do, and its latency is counted
//! from that **scheduled** time, not from when it was actually sent: a call held up by the client or
//! by a stalled server shows its whole wait in the percentiles.
//!
//! One task runs the schedule and owns every call in flight (a [`FuturesUnordered`]): it sends each
//! call when it falls due and never waits for a reply before sending the next. A call ends with its
//! reply or at its deadline (`--timeout`), so at rate R no more than about `R × timeout` calls are
//! outstanding; the bench holds that bound ([`max_outstanding`]) and counts a call that had to wait
//! for room as *held back*. A call sent more than [`LATE_SEND`] after its time counts as *sent late*:
//! then the client, not the server, could not keep the schedule, and the figures say so.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;

use rpc_client::{RpcClient, RpcError};

use super::{
    connect_client, latency_histogram, on_runtime, peak_rss_bytes, progress_bar, record,
    start_server, stop_server, BenchArgs, BoxError, CpuTimes, Meter,
};
use crate::duration::parse_duration;

/// A call sent later than this after its scheduled time counts as sent late. tokio's timer has a
/// 1 ms tick, so a call on time is sent up to ~1 ms after its time; 5 ms means the client was busy.
pub const LATE_SEND: Duration = Duration::from_millis(5);

/// Slack over the timeout in the outstanding bound: a call given up at its deadline leaves the set
/// when its timer fires and the scheduler task runs, a few ms later at most.
const DEADLINE_SLACK: Duration = Duration::from_millis(100);

/// Hard cap on calls outstanding, whatever `R × timeout` says: 100,000 calls in flight is the load
/// the client is built and measured for (each holds a ~1.5 KB future and a pending entry).
pub const MAX_OUTSTANDING: usize = 100_000;

/// Plots with more calls than this draw a density map instead of one dot per call: the plot area
/// cut into 3×3 px cells, each filled darker the more calls it holds (8 shades, log scale), which
/// keeps a 60,000-call plot to a few hundred KB.
pub const DOT_LIMIT: usize = 20_000;

/// The open-loop arguments of `amqp-rpc bench`.
#[derive(Debug, Clone, Default, Args)]
pub struct OpenLoopArgs {
    /// Open loop: send R calls per second on schedule whatever the replies do, latency counted from
    /// each call's scheduled time (needs --duration).
    #[arg(
        long,
        value_name = "R",
        requires = "duration",
        conflicts_with_all = ["calls", "inflight", "raw"],
        value_parser = parse_rate,
    )]
    pub rate: Option<f64>,
    /// How long the open-loop schedule runs (`30s`, `500ms`, `2m`); R × D calls are sent.
    #[arg(long, value_name = "D", requires = "rate", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Open loop: draw latency over time (one dot per call, p50/p99/max lines) into this SVG file.
    #[arg(long, value_name = "FILE.svg", requires = "rate")]
    pub plot: Option<PathBuf>,
}

/// Highest `--rate`: one call per µs is beyond any broker this runs against.
const MAX_RATE: f64 = 1_000_000.0;

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a rate in calls per second (e.g. 1000 or 0.5)"))?;
    if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE {
        Ok(rate)
    } else {
        Err(format!(
            "{s:?}: the rate must be more than 0 and at most {MAX_RATE} calls/s"
        ))
    }
}

/// When each call is due.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    rate: f64,
    calls: u64,
}

impl Schedule {
    fn new(rate: f64, duration: Duration) -> Result<Schedule, String> {
        let calls = (rate * duration.as_secs_f64()).floor();
        if calls < 1.0 {
            return Err(format!(
                "--rate {rate} for --duration {duration:?} schedules no call (R × D < 1)"
            ));
        }
        Ok(Schedule {
            rate,
            calls: calls as u64,
        })
    }

    /// Call `i`'s time, as an offset from the start.
    fn offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }
}

/// Calls allowed outstanding at `rate` with `timeout`: `R × (timeout + slack)`, at least 1, at
/// most [`MAX_OUTSTANDING`].
pub fn max_outstanding(rate: f64, timeout: Duration) -> usize {
    let implied = (rate * (timeout + DEADLINE_SLACK).as_secs_f64()).ceil();
    (implied as usize).clamp(1, MAX_OUTSTANDING)
}

/// One call as the plot draws it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Scheduled send time, seconds from the start.
    pub at: f32,
    /// Seconds from the scheduled send time to the reply (or to the failure).
    pub latency: f32,
    /// The call failed (timeout, error reply, …).
    pub failed: bool,
    /// The call was sent more than [`LATE_SEND`] after its scheduled time.
    pub late: bool,
}

/// What an open-loop run measured.
#[derive(Debug)]
pub struct OpenLoopReport {
    /// Calls per second asked for (`--rate`).
    pub intended_rate: f64,
    /// How long the schedule ran (`--duration`).
    pub duration: Duration,
    /// Each call's deadline (`--timeout`).
    pub timeout: Duration,
    /// Calls the schedule had (R × D).
    pub scheduled: u64,
    /// Calls that were answered with the right reply.
    pub answered: u64,
    /// Failed calls by kind: `timeout`, `no-route`, `bad-reply`, `connection-lost`,
    /// `server:<x-error code>`, ….
    pub errors: BTreeMap<String, u64>,
    /// Calls sent more than [`LATE_SEND`] after their scheduled time.
    pub sent_late: u64,
    /// Calls that were due while [`OpenLoopReport::max_outstanding`] calls were outstanding and
    /// waited for room (they are also sent late unless the wait was short).
    pub held_back: u64,
    /// The longest time from a call's scheduled time to its send.
    pub max_send_lag: Duration,
    /// The bound on calls outstanding (see [`max_outstanding`]).
    pub max_outstanding: usize,
    /// The most calls that were outstanding at once.
    pub peak_outstanding: usize,
    /// From the first scheduled send to the last call's end.
    pub elapsed: Duration,
    /// Latency of the answered calls from their scheduled send time, in µs.
    pub histogram: Histogram<u64>,
    /// Every call (only when a plot was asked for).
    pub samples: Vec<Sample>,
    cpu: CpuTimes,
    peak_rss_bytes: u64,
    /// The run's other parameters, as the plot names them.
    label: String,
}

impl OpenLoopReport {
    /// Answered calls per second, from the first scheduled send to the last call's end.
    pub fn achieved_rate(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Failed calls, all kinds.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The answered calls' latency at quantile `q` (0..=1), from their scheduled send time; `None`
    /// when no call was answered.
    pub fn latency_at_quantile(&self, q: f64) -> Option<Duration> {
        (!self.histogram.is_empty())
            .then(|| Duration::from_micros(self.histogram.value_at_quantile(q)))
    }

    /// The slowest answered call's latency, `None` when no call was answered.
    pub fn max_latency(&self) -> Option<Duration> {
        (!self.histogram.is_empty()).then(|| Duration::from_micros(self.histogram.max()))
    }

    /// Latency over time as a self-contained SVG (needs the samples: run with `plot` set).
    pub fn svg(&self) -> String {
        let quantile = |q| self.latency_at_quantile(q).map(|d| d.as_secs_f64());
        let mut lines = Vec::new();
        for (name, value, colour) in [
            ("p50", quantile(0.5), "#1a9850"),
            ("p99", quantile(0.99), "#e08214"),
            (
                "max",
                self.max_latency().map(|d| d.as_secs_f64()),
                "#b2182b",
            ),
        ] {
            if let Some(v) = value {
                lines.push(super::plot::Line {
                    name,
                    seconds: v,
                    colour,
                });
            }
        }
        let results = format!(
            "achieved {:.0} calls/s · {} answered, {} failed{} · {} sent late, {} held back · p50 {} · p99 {} · max {}",
            self.achieved_rate(),
            self.answered,
            self.failed(),
            error_list(&self.errors).map_or(String::new(), |e| format!(" ({e})")),
            self.sent_late,
            self.held_back,
            fmt_latency(quantile(0.5)),
            fmt_latency(quantile(0.99)),
            fmt_latency(self.max_latency().map(|d| d.as_secs_f64())),
        );
        super::plot::LatencyPlot {
            title: &format!(
                "amqp-rpc bench, open loop: {} calls/s for {:.1} s",
                self.intended_rate,
                self.duration.as_secs_f64()
            ),
            parameters: &self.label,
            results: &results,
            x_max: self.duration.as_secs_f64(),
            samples: &self.samples,
            lines: &lines,
            dot_limit: DOT_LIMIT,
        }
        .render()
    }

    /// The report as one JSON object: the closed-loop keys (`calls_per_sec`, `p50_us`, `p99_us`, …)
    /// plus `intended_rate` and `achieved_rate` (calls/s) and the open-loop figures.
    pub fn to_json(&self, direct_reply_to: bool) -> serde_json::Value {
        let secs = self.elapsed.as_secs_f64();
        let calls = self.answered + self.failed();
        let per_call = |d: Duration| d.as_secs_f64() * 1e6 / calls.max(1) as f64;
        let q = |q: f64| self.latency_at_quantile(q).map(|d| d.as_micros() as u64);
        json!({
            "client": "amqp-rpc", "mode": "open-loop",
            "intended_rate": self.intended_rate, "achieved_rate": self.achieved_rate(),
            "duration_s": self.duration.as_secs_f64(), "timeout_s": self.timeout.as_secs_f64(),
            "scheduled": self.scheduled, "calls": calls, "answered": self.answered,
            "errors_total": self.failed(), "errors": self.errors,
            "sent_late": self.sent_late, "held_back": self.held_back,
            "max_send_lag_us": self.max_send_lag.as_micros() as u64,
            "max_outstanding": self.max_outstanding, "inflight": self.peak_outstanding,
            "direct_reply_to": direct_reply_to, "elapsed_s": secs,
            "calls_per_sec": self.achieved_rate(),
            "p50_us": q(0.5), "p90_us": q(0.9), "p99_us": q(0.99), "p999_us": q(0.999),
            "max_us": self.max_latency().map(|d| d.as_micros() as u64),
            "mean_us": (!self.histogram.is_empty()).then(|| self.histogram.mean()),
            "cpu_us_per_call": per_call(self.cpu.total),
            "cpu_user_us_per_call": per_call(self.cpu.user),
            "cpu_sys_us_per_call": per_call(self.cpu.system),
            "peak_rss_bytes": self.peak_rss_bytes,
        })
    }

    /// The report as text, as `amqp-rpc bench --rate` prints it.
    pub fn to_text(&self, direct_reply_to: bool) -> String {
        let reply = if direct_reply_to {
            "direct reply-to"
        } else {
            "callback queue"
        };
        let calls = self.answered + self.failed();
        let per_call = |d: Duration| d.as_secs_f64() * 1e6 / calls.max(1) as f64;
        let us = |d: Option<Duration>| d.map_or("-".to_owned(), |d| d.as_micros().to_string());
        let mut out = format!(
            "open loop: {} calls/s intended for {:.2} s ({} calls), {reply}, timeout {:?}\n",
            self.intended_rate,
            self.duration.as_secs_f64(),
            self.scheduled,
            self.timeout,
        );
        out += &format!(
            "achieved {:.0} calls/s: {} answered in {:.2} s, {} failed{}\n",
            self.achieved_rate(),
            self.answered,
            self.elapsed.as_secs_f64(),
            self.failed(),
            error_list(&self.errors).map_or(String::new(), |e| format!(" ({e})")),
        );
        out += &format!(
            "sent late (> {} ms after schedule): {}; held back by the {}-call bound: {}; max send lag {:.1} ms; peak outstanding {}\n",
            LATE_SEND.as_millis(),
            self.sent_late,
            self.max_outstanding,
            self.held_back,
            self.max_send_lag.as_secs_f64() * 1e3,
            self.peak_outstanding,
        );
        out += &format!(
            "latency µs from scheduled send: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n",
            us(self.latency_at_quantile(0.5)),
            us(self.latency_at_quantile(0.9)),
            us(self.latency_at_quantile(0.99)),
            us(self.latency_at_quantile(0.999)),
            us(self.max_latency()),
        );
        out += &format!(
            "client CPU {:.2} µs/call (user {:.2}, sys {:.2})\n",
            per_call(self.cpu.total),
            per_call(self.cpu.user),
            per_call(self.cpu.system),
        );
        out += &format!("peak RSS {:.1} MiB", self.peak_rss_bytes as f64 / 1048576.0);
        out
    }
}

/// `timeout 12, server:handler-error 3`, or `None` without errors.
fn error_list(errors: &BTreeMap<String, u64>) -> Option<String> {
    (!errors.is_empty()).then(|| {
        errors
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// `812 µs`, `1.20 ms`, `950 ms`, `1.00 s`; `-` for none.
pub(super) fn fmt_latency(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 1e-3 => format!("{:.0} µs", s * 1e6),
        Some(s) if s < 10e-3 => format!("{:.2} ms", s * 1e3),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1e3),
        Some(s) => format!("{s:.2} s"),
    }
}

/// How one call ended.
struct Outcome {
    scheduled: Instant,
    sent: Instant,
    done: Instant,
    result: Result<(), String>,
}

/// The kind of a failed call, as the report counts it.
fn error_kind(e: &RpcError) -> String {
    match e {
        RpcError::Timeout { .. } => "timeout".into(),
        RpcError::NoRoute { .. } => "no-route".into(),
        RpcError::Server { code, .. } => format!("server:{}", code.as_str()),
        RpcError::BadRequest(_) => "bad-request".into(),
        RpcError::BadReply(_) | RpcError::UnexpectedReply { .. } => "bad-reply".into(),
        RpcError::ConnectionLost(_) => "connection-lost".into(),
        RpcError::Connection(_) => "connection".into(),
        RpcError::SetupTimeout { .. } => "setup-timeout".into(),
        RpcError::Blocked { .. } => "blocked".into(),
        RpcError::Closed => "closed".into(),
        _ => "other".into(),
    }
}

/// One call, sent now (its first poll), ended by its reply or at its deadline.
///
/// The bench gives the call up at `sent + timeout` itself (the deadline the request carries is
/// the same): the client's own timeout would then ask the broker how many consumers the queue has,
/// a round trip a measurement does not need. The deadline is polled first, so it always wins.
async fn one_call(
    client: &RpcClient,
    body: Bytes,
    expected: &Bytes,
    timeout: Duration,
    scheduled: Instant,
) -> Outcome {
    let sent = Instant::now();
    let result = tokio::select! {
        biased;
        () = tokio::time::sleep_until((sent + timeout).into()) => Err("timeout".to_owned()),
        reply = client.call(body) => match reply {
            Ok(reply) if reply == *expected => Ok(()),
            Ok(_) => Err("bad-reply".to_owned()),
            Err(e) => Err(error_kind(&e)),
        },
    };
    Outcome {
        scheduled,
        sent,
        done: Instant::now(),
        result,
    }
}

/// What the scheduler learns from the calls as they end.
struct Tally {
    t0: Instant,
    histogram: Histogram<u64>,
    answered: u64,
    errors: BTreeMap<String, u64>,
    sent_late: u64,
    max_send_lag: Duration,
    last_done: Instant,
    samples: Option<Vec<Sample>>,
}

impl Tally {
    fn record(&mut self, o: Outcome) {
        let lag = o.sent.saturating_duration_since(o.scheduled);
        let late = lag > LATE_SEND;
        if late {
            self.sent_late += 1;
        }
        self.max_send_lag = self.max_send_lag.max(lag);
        self.last_done = self.last_done.max(o.done);
        // Coordinated omission: from the time the call was due, not from when it went out.
        let latency = o.done.saturating_duration_since(o.scheduled);
        let failed = o.result.is_err();
        match o.result {
            Ok(()) => {
                self.answered += 1;
                record(&mut self.histogram, latency);
            }
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
        if let Some(samples) = &mut self.samples {
            samples.push(Sample {
                at: o.scheduled.saturating_duration_since(self.t0).as_secs_f32(),
                latency: latency.as_secs_f32(),
                failed,
                late,
            });
        }
    }
}

/// `amqp-rpc bench --rate R --duration D`: measures, prints the report (text or `--json`) and
/// writes the `--plot`.
pub fn run(args: &BenchArgs) -> ExitCode {
    let owned = args.clone();
    let report = match on_runtime(async move { measure(&owned).await }) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.open_loop.plot {
        if let Err(e) = std::fs::write(path, report.svg()) {
            eprintln!("error: cannot write the plot to {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        println!("{}", report.to_json(args.direct_reply_to));
    } else {
        println!("{}", report.to_text(args.direct_reply_to));
        if let Some(path) = &args.open_loop.plot {
            println!("plot: {}", path.display());
        }
    }
    ExitCode::SUCCESS
}

/// Drives the open-loop benchmark `args` describes (`args.open_loop.rate` and `.duration` set):
/// starts the in-process server if `args.with_server`, connects, runs the schedule, and returns the
/// figures. Collects one [`Sample`] per call when `args.open_loop.plot` is set.
pub async fn measure(args: &BenchArgs) -> Result<OpenLoopReport, BoxError> {
    let (Some(rate), Some(duration)) = (args.open_loop.rate, args.open_loop.duration) else {
        return Err("the open loop needs --rate and --duration".into());
    };
    if args.timeout.is_zero() {
        return Err("--timeout must be more than 0".into());
    }
    let schedule = Schedule::new(rate, duration)?;
    let server = start_server(args).await?;
    let client = connect_client(args).await?;
    let report = drive(&client, schedule, args, duration).await;
    let _ = client.close().await;
    stop_server(server).await?;
    Ok(report)
}

async fn drive(
    client: &RpcClient,
    schedule: Schedule,
    args: &BenchArgs,
    duration: Duration,
) -> OpenLoopReport {
    let body = Bytes::from(args.fib.to_string());
    let expected = Bytes::from(rpc_server::fib::fib_decimal(args.fib));
    let timeout = args.timeout;
    let bound = max_outstanding(schedule.rate, timeout);
    let progress = progress_bar(schedule.calls, "calls");

    let meter = Meter::start();
    let t0 = Instant::now();
    let mut tally = Tally {
        t0,
        histogram: latency_histogram(),
        answered: 0,
        errors: BTreeMap::new(),
        sent_late: 0,
        max_send_lag: Duration::ZERO,
        last_done: t0,
        samples: args
            .open_loop
            .plot
            .is_some()
            .then(|| Vec::with_capacity(schedule.calls.min(1_000_000) as usize)),
    };
    let mut in_flight = FuturesUnordered::new();
    let (mut next, mut held_back, mut peak) = (0u64, 0u64, 0usize);
    // The last time a call was due and the bound left no room: calls due by then were held back.
    let mut full_at: Option<Instant> = None;
    let timer = tokio::time::sleep_until(t0.into());
    tokio::pin!(timer);
    loop {
        let now = Instant::now();
        while next < schedule.calls {
            let due = t0 + schedule.offset(next);
            if due > now {
                break;
            }
            if in_flight.len() >= bound {
                full_at = Some(now);
                break;
            }
            if full_at.is_some_and(|t| due <= t) {
                held_back += 1;
            }
            // Pushed, then sent by the set's poll below, in this same turn of the loop.
            in_flight.push(one_call(client, body.clone(), &expected, timeout, due));
            next += 1;
        }
        peak = peak.max(in_flight.len());
        if next == schedule.calls && in_flight.is_empty() {
            break;
        }
        let waiting_for_time = next < schedule.calls && in_flight.len() < bound;
        if waiting_for_time {
            timer.as_mut().reset((t0 + schedule.offset(next)).into());
        }
        // Never both disabled: without a timer to wait for, calls are in flight (the bound is
        // full or the schedule is done and the set is not empty).
        tokio::select! {
            biased;
            () = &mut timer, if waiting_for_time => {}
            Some(outcome) = in_flight.next() => {
                tally.record(outcome);
                let ended = tally.answered + tally.errors.values().sum::<u64>();
                if ended % 256 == 0 {
                    progress.set_position(ended);
                }
            }
        }
    }
    let (_, cpu) = meter.stop();
    progress.finish_and_clear();

    let label = format!(
        "fib({}) · queue {} · timeout {:?} · {} · latency counted from each call's scheduled send",
        args.fib,
        args.queue,
        timeout,
        if args.direct_reply_to {
            "direct reply-to"
        } else {
            "callback queue"
        },
    );
    OpenLoopReport {
        intended_rate: schedule.rate,
        duration,
        timeout,
        scheduled: schedule.calls,
        answered: tally.answered,
        errors: tally.errors,
        sent_late: tally.sent_late,
        held_back,
        max_send_lag: tally.max_send_lag,
        max_outstanding: bound,
        peak_outstanding: peak,
        elapsed: tally.last_done.saturating_duration_since(t0),
        histogram: tally.histogram,
        samples: tally.samples.unwrap_or_default(),
        cpu,
        peak_rss_bytes: peak_rss_bytes(),
        label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_has_r_times_d_calls_evenly_spaced() {
        let s = Schedule::new(1000.0, Duration::from_secs(3)).expect("valid");
        assert_eq!(s.calls, 3000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1500), Duration::from_millis(1500));
        assert!(Schedule::new(0.5, Duration::from_secs(1)).is_err());
        assert_eq!(
            Schedule::new(0.5, Duration::from_secs(4)).map(|s| s.calls),
            Ok(2)
        );
    }

    #[test]
    fn the_bound_follows_the_timeout() {
        assert_eq!(max_outstanding(1000.0, Duration::from_secs(5)), 5100);
        assert_eq!(max_outstanding(0.1, Duration::from_secs(1)), 1);
        assert_eq!(
            max_outstanding(1_000_000.0, Duration::from_secs(30)),
            MAX_OUTSTANDING
        );
    }

    #[test]
    fn rates_are_checked() {
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-3", "NaN", "inf", "fast", "2000000"] {
            assert!(parse_rate(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn latency_is_counted_from_the_scheduled_time() {
        let t0 = Instant::now();
        let mut tally = Tally {
            t0,
            histogram: latency_histogram(),
            answered: 0,
            errors: BTreeMap::new(),
            sent_late: 0,
            max_send_lag: Duration::ZERO,
            last_done: t0,
            samples: Some(Vec::new()),
        };
        // Due at t0, sent 300 ms late (the client was stuck), answered 1 ms after sending.
        tally.record(Outcome {
            scheduled: t0,
            sent: t0 + Duration::from_millis(300),
            done: t0 + Duration::from_millis(301),
            result: Ok(()),
        });
        tally.record(Outcome {
            scheduled: t0 + Duration::from_millis(1),
            sent: t0 + Duration::from_millis(1),
            done: t0 + Duration::from_millis(2001),
            result: Err("timeout".into()),
        });
        assert_eq!(tally.answered, 1);
        assert_eq!(tally.sent_late, 1);
        assert_eq!(tally.max_send_lag, Duration::from_millis(300));
        assert_eq!(tally.errors.get("timeout"), Some(&1));
        assert!(tally.histogram.value_at_quantile(1.0) >= 300_000);
        let samples = tally.samples.expect("collected");
        assert!(samples[0].late && !samples[0].failed);
        assert!(samples[1].failed && !samples[1].late && samples[1].latency > 1.9);
    }

    #[test]
    fn latencies_read_as_people_write_them() {
        assert_eq!(fmt_latency(Some(812e-6)), "812 µs");
        assert_eq!(fmt_latency(Some(1.2e-3)), "1.20 ms");
        assert_eq!(fmt_latency(Some(0.95)), "950 ms");
        assert_eq!(fmt_latency(Some(1.0)), "1.00 s");
        assert_eq!(fmt_latency(None), "-");
    }
}
