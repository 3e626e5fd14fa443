//! Interop with tutorial six's own programs (pika), in both directions, on the real broker:
//! our `amqp-rpc serve` answers `tests/pika/rpc_client.py`, our `amqp-rpc call` (and library
//! client) gets answers from `tests/pika/rpc_server.py`, and both servers share `rpc_queue`.
//!
//! The tutorial's programs hard-code `rpc_queue`, so the scenarios run one after another in a
//! single test function. Every child process is killed when its guard drops, also on failure.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use amqp_client::QueueDeclareOptions;
use rpc_client::{FibonacciRpcClient, RpcClient};
use rpc_server::fib::fib_decimal;

const BIN: &str = env!("CARGO_BIN_EXE_amqp-rpc");
const QUEUE: &str = "rpc_queue";
/// Bound on anything one step of a scenario waits for.
const STEP: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require_broker() {
    let addr: SocketAddr = "127.0.0.1:5672".parse().expect("address");
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "RabbitMQ is not reachable at {addr} ({e}); the interop tests need the real broker: \
             run `bash scripts/broker.sh` first"
        );
    }
}

/// pika must be importable; `scripts/broker.sh` installs it when it is missing.
fn require_pika() {
    let importable = || {
        Command::new("python3")
            .args(["-c", "import pika"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if importable() {
        return;
    }
    let _ = Command::new("bash")
        .arg(repo().join("scripts/broker.sh"))
        .status();
    assert!(
        importable(),
        "python3 cannot import pika and `bash scripts/broker.sh` did not install it"
    );
}

/// A child process with its stdout lines on a channel; killed on drop.
struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &str, command: &mut Command) -> Proc {
        let mut child = command
            .current_dir(repo())
            .env("AMQP_HOST", "127.0.0.1")
            .env("AMQP_PORT", "5672")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line containing `needle`.
    fn expect_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no line containing {needle:?} within {STEP:?}; saw {:?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Every stdout line so far (without waiting).
    fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// SIGTERM, then wait for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + STEP;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} ignored SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion within `STEP`, killing it on overrun.
fn run_bounded(name: &str, command: &mut Command) -> Output {
    let mut child = command
        .current_dir(repo())
        .env("AMQP_HOST", "127.0.0.1")
        .env("AMQP_PORT", "5672")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{name} did not finish within {STEP:?}; stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn python(script: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(Path::new("tests/pika").join(script));
    c
}

fn ours(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env("RUST_LOG", "warn");
    c
}

/// `rpc_queue` with no consumer and no stale requests, so that the server under test is the one
/// that answers.
fn quiet_rpc_queue(rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        tokio::time::timeout(STEP, async {
            let conn = amqp_client::Connection::connect(rpc_client::DEFAULT_URI)
                .await
                .expect("connect");
            let ch = conn.open_channel().await.expect("channel");
            // The tutorial's declaration: whichever server declares first, the other matches.
            let mut declared = ch
                .queue_declare(QUEUE, QueueDeclareOptions::default())
                .await
                .expect("declare rpc_queue");
            let deadline = Instant::now() + Duration::from_secs(10);
            while declared.consumer_count > 0 {
                assert!(
                    Instant::now() < deadline,
                    "rpc_queue has {} consumer(s) from another program; stop it (e.g. a running \
                     `amqp-rpc serve` or rpc_server.py) and rerun",
                    declared.consumer_count
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                declared = ch
                    .queue_declare(QUEUE, QueueDeclareOptions::default())
                    .await
                    .expect("declare rpc_queue");
            }
            ch.queue_purge(QUEUE).await.expect("purge rpc_queue");
            let _ = conn.close().await;
        })
        .await
        .expect("broker setup timed out");
    });
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pika_and_ours_stand_in_for_each_other() {
    require_broker();
    require_pika();
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    // 1. Our server answers the tutorial's client, including a large n (Python parses big ints).
    quiet_rpc_queue(&rt);
    let mut server = Proc::spawn("amqp-rpc serve", &mut ours(&["serve"]));
    server.expect_line(" [x] Awaiting RPC requests");
    let out = run_bounded("rpc_client.py", &mut python("rpc_client.py"));
    assert!(out.status.success(), "rpc_client.py failed: {out:?}");
    let text = stdout(&out);
    assert!(text.contains(" [x] Requesting fib(30)"), "{text}");
    assert!(text.contains(" [.] Got 832040"), "{text}");
    server.expect_line(" [.] fib(30)");
    for n in [0u64, 1, 93, 100_000] {
        let out = run_bounded(
            "rpc_client.py N",
            python("rpc_client.py").arg(n.to_string()),
        );
        assert!(out.status.success(), "rpc_client.py {n} failed: {out:?}");
        let want = format!(" [.] Got {}", fib_decimal(n));
        assert!(
            stdout(&out).lines().any(|l| l == want),
            "pika's client asking fib({n}) from our server"
        );
        server.expect_line(&format!(" [.] fib({n})"));
    }
    // A graceful stop on SIGTERM.
    let status = server.terminate();
    assert!(status.success(), "amqp-rpc serve exited with {status}");

    // 2. The tutorial's server answers our CLI and our library client.
    quiet_rpc_queue(&rt);
    let mut pika_server = Proc::spawn("rpc_server.py", &mut python("rpc_server.py"));
    pika_server.expect_line(" [x] Awaiting RPC requests");
    let out = run_bounded("amqp-rpc call 30", &mut ours(&["call", "30"]));
    assert!(out.status.success(), "amqp-rpc call failed: {out:?}");
    assert_eq!(stdout(&out), " [x] Requesting fib(30)\n [.] Got 832040\n");
    pika_server.expect_line(" [.] fib(30)");
    let out = run_bounded("amqp-rpc call 1000", &mut ours(&["call", "1000"]));
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains(&format!(" [.] Got {}", fib_decimal(1000))));
    let out = run_bounded(
        "amqp-rpc call --direct-reply-to",
        &mut ours(&["call", "25", "--direct-reply-to"]),
    );
    assert!(stdout(&out).contains(" [.] Got 75025"), "{out:?}");
    // Many calls in flight from one of our clients; pika's server (prefetch 1) takes them in turn.
    rt.block_on(async {
        let client = FibonacciRpcClient::from(
            RpcClient::builder()
                .timeout(STEP)
                .connect()
                .await
                .expect("connect"),
        );
        let calls: Vec<_> = (0..20u64)
            .map(|n| {
                let c = client.clone();
                tokio::spawn(async move { (n, c.call(n).await) })
            })
            .collect();
        for call in calls {
            let (n, answer) = call.await.expect("task");
            assert_eq!(answer.expect("answer").to_string(), fib_decimal(n));
        }
        let _ = client.rpc().close().await;
    });

    // 3. Both servers on rpc_queue at once: the same declaration, both get work.
    let mut our_server = Proc::spawn("amqp-rpc serve", &mut ours(&["serve"]));
    our_server.expect_line(" [x] Awaiting RPC requests");
    pika_server.drain();
    let already = pika_server.seen.len();
    rt.block_on(async {
        let client = FibonacciRpcClient::from(
            RpcClient::builder()
                .timeout(STEP)
                .connect()
                .await
                .expect("connect"),
        );
        let calls: Vec<_> = (0..40u64)
            .map(|i| {
                let c = client.clone();
                tokio::spawn(async move { c.call(200 + i).await })
            })
            .collect();
        for call in calls {
            call.await.expect("task").expect("answer");
        }
        let _ = client.rpc().close().await;
    });
    std::thread::sleep(Duration::from_millis(200));
    let by_pika = pika_server.drain()[already..]
        .iter()
        .filter(|l| l.contains(" [.] fib("))
        .count();
    let by_ours = our_server
        .drain()
        .iter()
        .filter(|l| l.contains(" [.] fib("))
        .count();
    assert_eq!(by_pika + by_ours, 40, "pika {by_pika}, ours {by_ours}");
    assert!(
        by_pika > 0 && by_ours > 0,
        "both servers get work: pika {by_pika}, ours {by_ours}"
    );
    assert!(our_server.terminate().success());
    assert!(pika_server.terminate().success());
}
