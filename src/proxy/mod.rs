//! `amqp-rpc proxy`: a TCP (or TLS) proxy in front of a broker that shows, live, every AMQP
//! frame passing through it — in any of `decode`'s views — and can record them as a pcapng
//! capture, terminate or originate TLS (so an `amqps://` connection can be watched without its
//! keys), and inject faults (delays, cuts, stalls) to test a client's recovery.
//!
//! The bytes are forwarded as they come ([`forward`]); the dissection happens beside them: a
//! [`Tap`](crate::record::Tap) numbers (and records) each read as a TCP segment, and the live
//! [`view`] thread dissects and prints it. A slow printer never slows the forwarding: the view's
//! queue is bounded and drops (and counts) what does not fit.

pub mod faults;
pub mod forward;
pub mod tls;
pub mod view;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::decode::{ColorChoice, DecodeArgs, FlowStyle, DEFAULT_FRAME_LIMIT};
use crate::record::{Tap, Watch};
use faults::{Action, Faults};
use forward::{Proxy, Stats};

/// Arguments of `amqp-rpc proxy`.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the one chosen is printed on
    /// stderr).
    #[arg(long, default_value = "127.0.0.1:5673")]
    pub listen: String,
    /// The broker, `host:port`.
    #[arg(long, default_value = "127.0.0.1:5672")]
    pub upstream: String,
    /// Print nothing (to record, or to measure the proxy's own cost).
    #[arg(long)]
    pub quiet: bool,
    /// JSON Lines: one object per frame, as `decode --json` (with `--rpc`: one per call).
    #[arg(long, conflicts_with_all = ["summary", "flow", "quiet"])]
    pub json: bool,
    /// The RPC calls, paired across connections as `decode --rpc` pairs them, each printed as
    /// soon as it is finished (reply delivered, request acked); the summary when the proxy stops.
    #[arg(long, conflicts_with_all = ["summary", "flow", "quiet"])]
    pub rpc: bool,
    /// One line per frame, then counts by method (when the proxy stops), as `decode --summary`.
    #[arg(long, conflicts_with_all = ["flow", "quiet"])]
    pub summary: bool,
    /// The conversation as a sequence diagram, drawn when the proxy stops (`--flow`,
    /// `--flow=mermaid`).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "text", require_equals = true, conflicts_with = "quiet")]
    pub flow: Option<FlowStyle>,
    /// Write what passes as a pcapng capture (plaintext, with synthesized Ethernet/IP/TCP
    /// headers; the broker's end is the upstream address).
    #[arg(long, value_name = "FILE.pcapng")]
    pub record: Option<PathBuf>,
    /// Terminate TLS from clients (`amqps://` to the proxy) with this certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Speak TLS to the broker.
    #[arg(long)]
    pub upstream_tls: bool,
    /// CA certificates (PEM) to check the broker's certificate with, instead of the system
    /// roots.
    #[arg(long, value_name = "PEM", requires = "upstream_tls")]
    pub upstream_ca: Option<PathBuf>,
    /// The name the broker's certificate must carry (default: the `--upstream` host).
    #[arg(long, value_name = "NAME", requires = "upstream_tls")]
    pub upstream_name: Option<String>,
    /// Hold every byte back this long before forwarding it, both ways (`50ms`, `1s`).
    #[arg(long, value_name = "DURATION", value_parser = crate::call::parse_duration)]
    pub delay: Option<Duration>,
    /// Delay client → broker only (overrides `--delay` that way).
    #[arg(long, value_name = "DURATION", value_parser = crate::call::parse_duration)]
    pub delay_up: Option<Duration>,
    /// Delay broker → client only (overrides `--delay` that way).
    #[arg(long, value_name = "DURATION", value_parser = crate::call::parse_duration)]
    pub delay_down: Option<Duration>,
    /// Reset both sockets of a connection once N AMQP frames (both ways together, protocol
    /// header included) have passed.
    #[arg(long, value_name = "N", conflicts_with = "stall_after", value_parser = clap::value_parser!(u64).range(1..))]
    pub cut_after: Option<u64>,
    /// Stop forwarding a connection (both ways, sockets left open) once N AMQP frames have
    /// passed.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_after: Option<u64>,
    /// Largest frame the view accepts, in bytes (bigger ones are shown as malformed; they are
    /// forwarded all the same).
    #[arg(long, default_value_t = DEFAULT_FRAME_LIMIT)]
    pub frame_max: u32,
    /// Colour: auto (on a terminal), always or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Stop (gracefully) when stdin reaches end of file: a test that starts the proxy with a
    /// pipe on stdin takes it down with it however the test ends.
    #[arg(long, hide = true)]
    pub stop_on_stdin_eof: bool,
}

impl ProxyArgs {
    fn faults(&self) -> Faults {
        let both = self.delay.unwrap_or_default();
        Faults {
            delay_up: self.delay_up.unwrap_or(both),
            delay_down: self.delay_down.unwrap_or(both),
            after: match (self.cut_after, self.stall_after) {
                (Some(n), _) => Some((n, Action::Cut)),
                (None, Some(n)) => Some((n, Action::Stall)),
                (None, None) => None,
            },
        }
    }

    /// `decode`'s arguments for the view asked for.
    fn view(&self) -> DecodeArgs {
        let mut args = DecodeArgs::new(None);
        args.json = self.json;
        args.rpc = self.rpc;
        args.summary = self.summary;
        args.flow = self.flow;
        args.frame_max = self.frame_max;
        args.color = self.color;
        args
    }

    /// The host of `--upstream`, for the TLS name check.
    fn upstream_host(&self) -> String {
        let u = self.upstream.as_str();
        if let Some(rest) = u.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest).to_string();
        }
        u.rsplit_once(':').map_or(u, |(host, _)| host).to_string()
    }
}

/// Runs the proxy until Ctrl-C or SIGTERM.
pub fn run(args: &ProxyArgs) -> ExitCode {
    crate::call::init_logging("warn");
    // One thread: a read is forwarded by the task that made it, with no cross-thread wake-up
    // (the view prints on a thread of its own).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return crate::call::fail(format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(proxy(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::call::fail(e),
    }
}

async fn proxy(args: &ProxyArgs) -> Result<(), String> {
    let acceptor = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let connector = if args.upstream_tls {
        let name = args
            .upstream_name
            .clone()
            .unwrap_or_else(|| args.upstream_host());
        Some(tls::connector(args.upstream_ca.as_deref(), &name)?)
    } else {
        None
    };
    let colour = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let (queue, view) = if args.quiet {
        (None, None)
    } else {
        let (queue, view) = view::start(args.view(), colour);
        (Some(queue), Some(view))
    };
    let tap = if args.record.is_some() || queue.is_some() {
        let watch = queue.clone().map(|q| Box::new(q) as Box<dyn Watch>);
        Some(Arc::new(Tap::new(args.record.as_deref(), watch)?))
    } else {
        None
    };
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let proxy = Proxy {
        upstream: args.upstream.clone(),
        acceptor,
        connector,
        faults: args.faults(),
        tap,
        shutdown: CancellationToken::new(),
        stats: Stats::default(),
    };
    let shutdown = proxy.shutdown.clone();
    eprintln!(
        "amqp-rpc proxy: listening on {local}{}, forwarding to {}{}",
        if proxy.acceptor.is_some() {
            " (TLS)"
        } else {
            ""
        },
        args.upstream,
        if proxy.connector.is_some() {
            " (TLS)"
        } else {
            ""
        },
    );
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            crate::serve::shutdown_signal().await;
            stop.cancel();
        }
    });
    if args.stop_on_stdin_eof {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
            stop.cancel();
        });
    }
    let tracker = tokio_util::task::TaskTracker::new();
    let proxy = Arc::new(proxy);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((client, addr)) => {
                tracker.spawn(forward::serve(Arc::clone(&proxy), client, addr));
            }
            // Out of file descriptors, a connection reset before accept: the others go on.
            Err(e) => {
                eprintln!("amqp-rpc proxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    shutdown.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    let mut outcome = Ok(());
    if let Some(queue) = &queue {
        queue.stop();
    }
    if let Some(view) = view {
        if let Err(e) = view.join() {
            outcome = Err(format!("printing failed: {e}"));
        }
    }
    report(&proxy.stats, queue.as_deref());
    crate::record::report(proxy.tap.as_ref().filter(|_| args.record.is_some()));
    outcome
}

fn report(stats: &Stats, queue: Option<&view::ViewQueue>) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "amqp-rpc proxy: {} connection(s) ({} failed to reach the broker), {} bytes up, {} bytes down",
        get(&stats.accepted),
        get(&stats.failed),
        get(&stats.up),
        get(&stats.down)
    );
    if let Some((segments, bytes)) = queue.map(view::ViewQueue::dropped) {
        if segments > 0 {
            eprintln!(
                "amqp-rpc proxy: the live view fell behind and skipped {bytes} bytes in {segments} reads (all were forwarded)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProxyArgs,
    }

    fn parse(args: &[&str]) -> Result<ProxyArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("proxy").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn one_delay_for_both_ways_and_one_per_direction_over_it() {
        let f = parse(&["--delay", "50ms"]).unwrap().faults();
        assert_eq!(
            (f.delay_up, f.delay_down),
            (Duration::from_millis(50), Duration::from_millis(50))
        );
        let f = parse(&["--delay", "50ms", "--delay-down", "10ms"])
            .unwrap()
            .faults();
        assert_eq!(
            (f.delay_up, f.delay_down),
            (Duration::from_millis(50), Duration::from_millis(10))
        );
        let f = parse(&["--delay-up", "1s"]).unwrap().faults();
        assert_eq!(
            (f.delay_up, f.delay_down),
            (Duration::from_secs(1), Duration::ZERO)
        );
    }

    #[test]
    fn faults_and_views_that_cannot_go_together_are_refused() {
        assert_eq!(
            parse(&["--cut-after", "3"]).unwrap().faults().after,
            Some((3, Action::Cut))
        );
        assert_eq!(
            parse(&["--stall-after", "3"]).unwrap().faults().after,
            Some((3, Action::Stall))
        );
        assert!(parse(&["--cut-after", "3", "--stall-after", "4"]).is_err());
        assert!(parse(&["--cut-after", "0"]).is_err());
        assert!(parse(&["--quiet", "--json"]).is_err());
        assert!(
            parse(&["--tls-cert", "a.pem"]).is_err(),
            "a certificate needs its key"
        );
        assert!(
            parse(&["--upstream-ca", "ca.pem"]).is_err(),
            "a CA needs --upstream-tls"
        );
    }

    #[test]
    fn the_upstream_host_is_what_tls_checks() {
        let host = |u: &str| parse(&["--upstream", u]).unwrap().upstream_host();
        assert_eq!(host("localhost:5671"), "localhost");
        assert_eq!(host("[::1]:5671"), "::1");
        assert_eq!(host("127.0.0.1:5671"), "127.0.0.1");
    }
}
