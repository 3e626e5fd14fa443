//! `amqp-rpc serve`, `call` and `demo` as a person runs them: the tutorial's lines on stdout, one
//! clear error line on stderr and a non-zero exit for each of the tutorial's open questions.
//! Every test uses its own queue; child processes are killed when their guard drops.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_amqp-rpc");
const STEP: Duration = Duration::from_secs(30);

fn require_broker() {
    let addr: SocketAddr = "127.0.0.1:5672".parse().expect("address");
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "RabbitMQ is not reachable at {addr} ({e}); these tests need the real broker: \
             run `bash scripts/broker.sh` first"
        );
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), uuid_ish())
}

fn uuid_ish() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Runs `amqp-rpc args…` to completion (bounded).
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn amqp-rpc");
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("amqp-rpc {args:?} did not finish within {STEP:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Deletes the queue a test's server declared, when dropped (also on failure).
struct QueueGuard(String);

impl Drop for QueueGuard {
    fn drop(&mut self) {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                let conn = amqp_client::Connection::connect(rpc_client::DEFAULT_URI)
                    .await
                    .ok()?;
                let ch = conn.open_channel().await.ok()?;
                let _ = ch
                    .queue_delete(&self.0, amqp_client::QueueDeleteOptions::default())
                    .await;
                let _ = conn.close().await;
                Some(())
            })
            .await;
        });
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `amqp-rpc serve`, killed on drop; deletes nothing (its queue is unique).
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(queue: &str) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--queue", queue])
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn amqp-rpc serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server { child, lines };
        server.expect(" [x] Awaiting RPC requests");
        server
    }

    fn expect(&mut self, want: &str) {
        match self.lines.recv_timeout(STEP) {
            Ok(line) => assert_eq!(line, want),
            Err(_) => panic!("serve printed no {want:?} within {STEP:?}"),
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STEP;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "serve exited with {status} on SIGTERM");
                return;
            }
            assert!(Instant::now() < deadline, "serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_and_call_print_the_tutorials_lines() {
    require_broker();
    let queue = unique("cli-rpc");
    let _guard = QueueGuard(queue.clone());
    let mut server = Server::start(&queue);
    let out = run(&["call", "30", "--queue", &queue]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        " [x] Requesting fib(30)\n [.] Got 832040\n"
    );
    server.expect(" [.] fib(30)");

    // Bad input: the server's error, one line, non-zero exit; the server goes on.
    let out = run(&["call", "-5", "--queue", &queue]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: server error (bad-request): n = -5 is negative: fib(n) is only served for n >= 0\n"
    );
    let out = run(&["call", "100001", "--queue", &queue, "--direct-reply-to"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: server error (too-large)"));
    let out = run(&["call", "90", "--queue", &queue]);
    assert!(text(&out.stdout).contains(" [.] Got 2880067194370816120"));
    server.stop();

    // The queue is still declared but nobody consumes it: the timeout says so.
    let out = run(&["call", "3", "--queue", &queue, "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no server answered within 300ms") && err.contains("0 consumers"),
        "{err}"
    );
}

#[test]
fn call_without_a_server_fails_at_once_in_one_line() {
    require_broker();
    let started = Instant::now();
    let out = run(&["call", "30", "--queue", &unique("cli-nobody")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: no server:"), "{err}");
    assert!(err.contains("312 NO_ROUTE"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn call_to_a_closed_port_says_how_to_start_the_broker() {
    let out = run(&["call", "1", "--uri", "amqp://guest:guest@127.0.0.1:1/%2f"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("refused") && err.contains("scripts/broker.sh"),
        "{err}"
    );
}

#[test]
fn demo_runs_a_server_and_a_client_in_one_process() {
    require_broker();
    let queue = unique("cli-demo");
    let _guard = QueueGuard(queue.clone());
    let out = run(&["demo", "--queue", &queue]);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    for want in [
        " [x] Awaiting RPC requests",
        " [x] Requesting fib(30)",
        " [.] fib(30)",
        " [.] Got 832040",
        "fib(90) = 2880067194370816120",
        "fib(10000) has 2090 digits",
        "server error (bad-request)",
        "server error (too-large)",
        "312 NO_ROUTE",
        "# server stopped",
    ] {
        assert!(
            stdout.contains(want),
            "demo output lacks {want:?}:\n{stdout}"
        );
    }
}

#[test]
fn bench_blocking_reports_the_same_keys_and_refuses_calls_in_flight() {
    require_broker();
    let queue = unique("cli-bench-blocking");
    let _guard = QueueGuard(queue.clone());
    let server = Server::start(&queue);
    let out = run(&[
        "bench",
        "--blocking",
        "-n",
        "200",
        "--fib",
        "10",
        "--json",
        "--queue",
        &queue,
    ]);
    assert!(out.status.success(), "{out:?}");
    let blocking: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    assert_eq!(blocking["calls"], 200);
    assert_eq!(blocking["inflight"], 1);
    assert_eq!(blocking["client"], "amqp-rpc --blocking");
    assert!(
        blocking["p50_us"].as_u64().is_some_and(|p| p > 0),
        "{blocking}"
    );
    // The async client's report has exactly the same keys, so compare.py reads both alike.
    let out = run(&["bench", "-n", "20", "--json", "--queue", &queue]);
    assert!(out.status.success(), "{out:?}");
    let async_: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&blocking), keys(&async_));
    server.stop();

    // One thread, one call at a time: more in flight is refused with a clear message.
    let out = run(&["bench", "--blocking", "-c", "8", "--queue", &queue]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--blocking") && err.contains("one call in flight"),
        "{err}"
    );
}

/// `call N --json` asks in JSON and prints the JSON reply; a JSON error is one error line.
#[test]
fn call_json_prints_the_json_reply() {
    require_broker();
    let queue = unique("cli-json");
    let _guard = QueueGuard(queue.clone());
    let mut server = Server::start(&queue);
    let out = run(&["call", "30", "--json", "--queue", &queue]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        " [x] Requesting fib(30)\n [.] Got {\"n\":30,\"fib\":\"832040\"}\n"
    );
    server.expect(" [.] fib(30)");
    let out = run(&["call", r#"{"n": "x"}"#, "--json", "--queue", &queue]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: server error (bad-request): request body is not the JSON expected"),
        "{err}"
    );
    server.stop();
}

/// `serve --log-format json` writes one JSON object per line, and each request's lines (at
/// `RUST_LOG=debug`) carry its trace id under `trace_id`.
#[test]
fn serve_logs_json_with_the_trace_id() {
    require_broker();
    let queue = unique("cli-logs");
    let _guard = QueueGuard(queue.clone());
    let mut child = Command::new(BIN)
        .args(["serve", "--queue", &queue, "--log-format", "json"])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = BufReader::new(stdout).lines();
    assert_eq!(
        out.next().and_then(Result::ok).as_deref(),
        Some(" [x] Awaiting RPC requests")
    );
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    // A request carrying a traceparent, sent by the library client with a chosen trace.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = rpc_client::RpcClient::builder()
            .queue(&queue)
            .connect()
            .await
            .expect("client");
        let options = rpc_client::CallOptions {
            trace: rpc_wire::TraceParent::parse(
                format!("00-{trace}-00f067aa0ba902b7-01").as_bytes(),
            ),
            ..Default::default()
        };
        let reply = client.call_raw_with(&queue, "7", options).await.unwrap();
        assert_eq!(reply.body, "13");
    });
    let deadline = Instant::now() + STEP;
    let mut with_trace = 0;
    let mut seen = Vec::new();
    while with_trace == 0 {
        let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) else {
            assert!(
                Instant::now() < deadline,
                "no log line with the trace id: {seen:#?}"
            );
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if value.get("trace_id").and_then(|t| t.as_str()) == Some(trace) {
            with_trace += 1;
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
}
