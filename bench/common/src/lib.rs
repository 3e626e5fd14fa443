//! What every peer benchmark measures the same way: per-call latency in an HDR histogram, the process's own CPU
//! time (user + sys from `getrusage`), peak RSS (`VmHWM`), and one JSON object with the keys `amqp-rpc bench`
//! prints, so `compare.py` reads every implementation alike.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Default broker URI: the local RabbitMQ with the guest account, vhost `/`.
pub const DEFAULT_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The tutorial's request queue.
pub const RPC_QUEUE: &str = "rpc_queue";

/// `--name value` options and `--flag`s after a subcommand; enough for the handful of knobs the peers take.
pub struct Args {
    pub command: String,
    pairs: Vec<(String, Option<String>)>,
}

impl Args {
    /// Parses `std::env::args()`: the first argument is the subcommand.
    pub fn from_env() -> Args {
        let mut it = std::env::args().skip(1).peekable();
        let command = it.next().unwrap_or_default();
        let mut pairs = Vec::new();
        while let Some(arg) = it.next() {
            let Some(name) = arg.strip_prefix("--") else {
                die(&format!("unexpected argument {arg:?}"));
            };
            let value = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next(),
                _ => None,
            };
            pairs.push((name.to_owned(), value));
        }
        Args { command, pairs }
    }

    /// The value of `--name`, parsed, or `default` when absent.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.pairs.iter().find(|(n, _)| n == name) {
            None => default,
            Some((_, Some(v))) => v
                .parse()
                .unwrap_or_else(|_| die(&format!("--{name}: cannot parse {v:?}"))),
            Some((_, None)) => die(&format!("--{name} needs a value")),
        }
    }

    /// The broker URI (`--uri`, else `AMQP_URI`, else [`DEFAULT_URI`]).
    pub fn uri(&self) -> String {
        let env = std::env::var("AMQP_URI").unwrap_or_else(|_| DEFAULT_URI.to_owned());
        self.get("uri", env)
    }

    /// Whether `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }
}

/// Prints `msg` to stderr and exits with status 2.
pub fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

/// fib(n), iteratively; u128 holds fib(186), far beyond what the benchmark asks for.
pub fn fib(n: u32) -> u128 {
    let (mut a, mut b) = (0u128, 1u128);
    for _ in 0..n {
        let next = a.saturating_add(b);
        a = b;
        b = next;
    }
    a
}

/// This process's user + system CPU time so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Peak resident set size in bytes (`VmHWM` in /proc/self/status), 0 where unavailable.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A latency histogram in microseconds, 1 µs to 60 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records one latency.
pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    let us = (latency.as_micros() as u64).clamp(1, 60_000_000);
    h.record(us).expect("value within bounds");
}

/// Wall clock, CPU and the run's shape, taken when the measured part starts.
pub struct Meter {
    start: Instant,
    cpu: Duration,
}

impl Meter {
    pub fn start() -> Meter {
        Meter { start: Instant::now(), cpu: cpu_time() }
    }

    /// Prints the RPC report: JSON with `--json`, else a few readable lines.
    pub fn report_calls(&self, client: &str, calls: u64, inflight: usize, h: &Histogram<u64>, json: bool) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let cpu_us = (cpu_time() - self.cpu).as_secs_f64() * 1e6;
        let cpu_per_call = cpu_us / calls.max(1) as f64;
        let rate = calls as f64 / elapsed;
        let q = |p: f64| h.value_at_quantile(p);
        if json {
            println!(
                "{{\"client\":\"{client}\",\"calls\":{calls},\"inflight\":{inflight},\"elapsed_s\":{elapsed:.6},\
                 \"calls_per_sec\":{rate:.1},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\
                 \"max_us\":{},\"mean_us\":{:.1},\"cpu_us_per_call\":{cpu_per_call:.2},\"peak_rss_bytes\":{}}}",
                q(0.5),
                q(0.9),
                q(0.99),
                q(0.999),
                h.max(),
                h.mean(),
                peak_rss_bytes()
            );
        } else {
            println!("{client}: {calls} calls, {inflight} in flight, {elapsed:.2} s: {rate:.0} calls/s");
            println!(
                "latency µs: p50 {} p90 {} p99 {} p99.9 {} max {}",
                q(0.5),
                q(0.9),
                q(0.99),
                q(0.999),
                h.max()
            );
            println!("client CPU {cpu_per_call:.1} µs/call, peak RSS {} MiB", peak_rss_bytes() >> 20);
        }
    }

    /// Prints the raw publish+consume report.
    pub fn report_raw(&self, client: &str, msgs: u64, json: bool) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let cpu_us = (cpu_time() - self.cpu).as_secs_f64() * 1e6;
        let rate = msgs as f64 / elapsed;
        let cpu_per_msg = cpu_us / msgs.max(1) as f64;
        if json {
            println!(
                "{{\"client\":\"{client}\",\"msgs\":{msgs},\"elapsed_s\":{elapsed:.6},\"msgs_per_sec\":{rate:.1},\
                 \"cpu_us_per_msg\":{cpu_per_msg:.2},\"peak_rss_bytes\":{}}}",
                peak_rss_bytes()
            );
        } else {
            println!("{client} raw: {msgs} msgs in {elapsed:.2} s: {rate:.0} msgs/s, CPU {cpu_per_msg:.1} µs/msg");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_matches_the_sequence() {
        let first: Vec<u128> = (0..10).map(fib).collect();
        assert_eq!(first, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
    }
}
