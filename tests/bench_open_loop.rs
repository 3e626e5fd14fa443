//! The open-loop benchmark against the real broker: why it exists.
//!
//! A server that stalls for 1 s once, under 1,000 calls/s for 3 s: the open loop keeps sending on
//! schedule and counts each call from its scheduled time, so the ~1,000 calls due during the stall
//! carry it and the p99 is at least 0.5 s. The closed loop over the same stall stops sending while
//! its few calls in flight wait: those few see the stall (its max is ≥ 1 s) but its p99 stays far
//! below — coordinated omission, shown.
//!
//! The assertions do not depend on the machine's speed: a slow client only makes the open loop's
//! latencies larger, and the closed loop's p99 is one of its ordinary calls (only `C` = 8 of its
//! 3,000 calls, fewer than the 1 % the p99 leaves out, are caught in the stall).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amqp_client::QueueDeclareOptions;
use amqp_rpc::bench::{self, open_loop, BenchArgs};
use rpc_server::{ReplyError, Request, RpcServer};
use support::{unique, within, QueueGuard, BROKER_URI};

/// The stall: the handler of this request (counted from 1) holds every other request up this long.
const STALL_AT: u64 = 1_000;
const STALL: Duration = Duration::from_secs(1);

/// Whole-test bound: each run is ~3 s of calls plus the stall; this leaves room for a loaded machine.
const LIMIT: Duration = Duration::from_secs(120);

fn require_broker() {
    let addr: std::net::SocketAddr = "127.0.0.1:5672".parse().expect("address");
    if let Err(e) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "RabbitMQ is not reachable at {addr} ({e}); this test needs the real broker: \
             run `bash scripts/broker.sh` first"
        );
    }
}

/// A fib(n) server on `queue` whose request number [`STALL_AT`] holds every request for
/// [`STALL`]: the stalling handler takes the gate's write half, the others pass through its read
/// half (tokio's lock is fair, so they queue behind it, and the prefetch's other requests with
/// them). Returns the server's stop token, its task and whether the stall happened.
async fn stalling_server(
    queue: &str,
) -> (
    rpc_server::CancellationToken,
    tokio::task::JoinHandle<Result<(), rpc_server::ServerError>>,
    Arc<AtomicBool>,
) {
    let handled = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    let stalled = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&stalled);
    let server = RpcServer::builder()
        .uri(BROKER_URI)
        .queue(queue)
        .prefetch(64)
        .queue_options(QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        })
        .start(move |req: Request| {
            let (handled, gate, stalled) = (
                Arc::clone(&handled),
                Arc::clone(&gate),
                Arc::clone(&stalled),
            );
            async move {
                if handled.fetch_add(1, Ordering::SeqCst) + 1 == STALL_AT {
                    let _closed = gate.write().await;
                    stalled.store(true, Ordering::SeqCst);
                    tokio::time::sleep(STALL).await;
                } else {
                    drop(gate.read().await);
                }
                let n: u64 = std::str::from_utf8(&req.body)?.trim().parse()?;
                Ok::<_, ReplyError>(rpc_server::fib::fib_decimal(n))
            }
        })
        .await
        .expect("the stalling server starts");
    let stop = server.shutdown_token();
    let task = tokio::spawn(server.run_until(std::future::pending()));
    (stop, task, seen)
}

async fn stop(
    stop: rpc_server::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), rpc_server::ServerError>>,
) {
    stop.cancel();
    within("the server's shutdown", Duration::from_secs(30), task)
        .await
        .expect("server task")
        .expect("server ran");
}

fn args(line: &[&str]) -> BenchArgs {
    BenchArgs::try_parse_from(line.iter().copied()).expect("bench arguments parse")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_stall_moves_the_open_loop_p99_but_not_the_closed_loop_one() {
    require_broker();
    support::init_logging();

    // Open loop: 1,000 calls/s for 3 s, the stall at the 1,000th request (about 1 s in).
    let queue = unique("bench-open-loop");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    let (token, task, stalled) = stalling_server(&queue).await;
    // `--plot` makes the run keep one sample per call (`measure` itself writes no file; the CLI does).
    let plot = std::env::temp_dir().join(format!("{queue}.svg"));
    let open_args = args(&[
        "--rate",
        "1000",
        "--duration",
        "3s",
        "--timeout",
        "10s",
        "--queue",
        &queue,
        "--uri",
        BROKER_URI,
        "--plot",
        plot.to_str().expect("utf-8 temp path"),
    ]);
    let open = within("the open-loop run", LIMIT, open_loop::measure(&open_args))
        .await
        .expect("the open-loop run completes");
    stop(token, task).await;
    assert!(stalled.load(Ordering::SeqCst), "the server never stalled");

    let open_p99 = open.latency_at_quantile(0.99).expect("calls were answered");
    let open_p50 = open.latency_at_quantile(0.5).expect("calls were answered");
    eprintln!("{}", open.to_text(false));
    assert_eq!(open.scheduled, 3_000);
    assert_eq!(
        (open.answered, open.failed()),
        (3_000, 0),
        "every call is answered within its 10 s deadline: {:?}",
        open.errors
    );
    assert!(
        open_p99 >= Duration::from_millis(500),
        "the open loop's p99 is {open_p99:?}: the 1 s stall must show (≥ 0.5 s)"
    );
    assert!(open.max_latency() >= Some(STALL));
    let json = open.to_json(false);
    assert_eq!(json["intended_rate"], 1000.0);
    assert!(json["achieved_rate"].as_f64().is_some_and(|r| r > 0.0));
    assert_eq!(json["p99_us"], open_p99.as_micros() as u64);
    assert_eq!(open.samples.len(), 3_000, "one plot sample per call");
    let svg = open.svg();
    assert!(svg.contains("p99") && svg.contains("open loop: 1000 calls/s"));

    // Closed loop over the same stall: 3,000 calls, 8 in flight, the stall at the 1,000th.
    let queue = unique("bench-closed-loop");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    let (token, task, stalled) = stalling_server(&queue).await;
    let closed_args = args(&[
        "--calls",
        "3000",
        "--inflight",
        "8",
        "--timeout",
        "10s",
        "--queue",
        &queue,
        "--uri",
        BROKER_URI,
    ]);
    let closed = within("the closed-loop run", LIMIT, bench::calls(&closed_args))
        .await
        .expect("the closed-loop run completes");
    stop(token, task).await;
    assert!(stalled.load(Ordering::SeqCst), "the server never stalled");

    let closed_p99 = closed.latency_at_quantile(0.99).expect("latencies");
    let closed_max = closed.latency_at_quantile(1.0).expect("latencies");
    eprintln!(
        "open loop: p50 {open_p50:?} p99 {open_p99:?}; closed loop: p99 {closed_p99:?} max {closed_max:?}"
    );
    assert_eq!(closed.ops(), 3_000);
    assert!(
        closed_max >= Duration::from_millis(900),
        "the closed loop's calls in flight wait out the stall (max {closed_max:?})"
    );
    assert!(
        closed_p99 < Duration::from_millis(500) && closed_p99 < open_p99 / 2,
        "the closed loop hides the stall from its p99: {closed_p99:?} (open loop {open_p99:?})"
    );
}

#[test]
fn the_open_loop_arguments_are_checked() {
    // Without --duration, with --inflight (closed-loop only), a bad rate: clear errors, no run.
    for line in [
        &["--rate", "1000"][..],
        &["--rate", "1000", "--duration", "3s", "--inflight", "8"],
        &["--rate", "0", "--duration", "3s"],
        &["--duration", "3s"],
        &["--plot", "x.svg"],
    ] {
        assert!(
            BenchArgs::try_parse_from(line.iter().copied()).is_err(),
            "{line:?} accepted"
        );
    }
    let ok = args(&["--rate", "250.5", "--duration", "2m", "--timeout", "500ms"]);
    assert_eq!(ok.open_loop.rate, Some(250.5));
    assert_eq!(ok.open_loop.duration, Some(Duration::from_secs(120)));
    assert_eq!(ok.timeout, Duration::from_millis(500));
}
