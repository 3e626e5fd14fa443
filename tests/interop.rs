//! Interop with the official RabbitMQ tutorial-six programs of other client libraries
//! (`tests/interop/`: amqplib on Node.js, the RabbitMQ Java client, Go's amqp091-go, Erlang's
//! amqp_client), in both directions, on the real broker. For each library:
//!
//! - `their_client_our_server`: its `rpc_client` gets exact answers from our `amqp-rpc serve`
//!   (amqplib's client receives by direct reply-to; the Erlang client sends 16-byte binary
//!   correlation ids), with the traffic captured by tshark and decoded by `amqp-rpc decode` and by
//!   tshark alike;
//! - `ten_of_their_clients_at_once`: 10 of its clients at once, each with its own n;
//! - `our_client_their_server`: its `rpc_server` answers `amqp-rpc call` (with a callback queue and
//!   with direct reply-to) and our library client, also captured and decoded both ways;
//! - `their_server_declared_rpc_queue_first` / `our_server_declared_rpc_queue_first`: both servers
//!   on `rpc_queue` at once, whichever declared it (the current amqplib, Java and Go tutorials
//!   declare it durable quorum, the Erlang one transient classic, ours transient unless `--quorum`).
//!
//! The tutorial programs hard-code `rpc_queue`, so the tests of this file run one at a time (a
//! lock) and delete `rpc_queue` before and after each. `scripts/interop.sh` installs and builds the
//! programs when missing (a test runs it too, so `cargo test` alone works on a fresh machine).

#[path = "interop/broker.rs"]
mod broker;
#[path = "interop/capture.rs"]
mod capture;
#[path = "interop/process.rs"]
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rpc_client::{FibonacciRpcClient, RpcClient};
use rpc_server::fib::fib_decimal;

use broker::{address, uri, RpcQueueReset};
use capture::{decode_against_tshark, Capture};
use process::{Proc, STEP};

const BIN: &str = env!("CARGO_BIN_EXE_amqp-rpc");
/// What `amqp-rpc serve` prints once it consumes.
const OUR_READY: &str = " [x] Awaiting RPC requests";
/// What every server here prints per request (after a timestamp, for Go's `log`).
const REQUEST: &str = " [.] fib(";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `scripts/interop.sh` builds: `interop/` in this build's target directory.
fn interop_dir() -> PathBuf {
    Path::new(BIN)
        .ancestors()
        .nth(2)
        .expect("the binary sits in TARGET/PROFILE/")
        .join("interop")
}

/// One library's tutorial programs and what tells them apart.
struct Lib {
    /// Directory under `tests/interop/` and the interop build directory.
    name: &'static str,
    /// The library, for messages.
    library: &'static str,
    /// The line its `rpc_server` prints once it consumes.
    server_ready: &'static str,
    /// Its `rpc_server` declares `rpc_queue` durable with `x-queue-type: quorum`.
    quorum: bool,
    /// Largest n whose fib its server computes exactly (Java's `int`, JavaScript's doubles).
    max_n: u64,
    /// Its client takes several n in one run (the Java tutorial loops over fib(0) .. fib(31)).
    many_per_run: bool,
    /// Its client sends 16-byte binary correlation ids (Erlang's `uuid:get_v4()`).
    binary_ids: bool,
    /// Its server echoes any correlation id byte for byte. amqplib and the Java client hand it to
    /// the program as a string decoded from UTF-8, so 16 random bytes come back altered.
    echoes_binary_ids: bool,
    /// How its client prints an answer.
    got: fn(&str) -> String,
}

fn got_plain(answer: &str) -> String {
    format!(" [.] Got {answer}")
}

fn got_quoted(answer: &str) -> String {
    format!(" [.] Got '{answer}'")
}

const NODE: Lib = Lib {
    name: "node",
    library: "amqplib 0.10.9 (Node.js)",
    server_ready: " [x] Awaiting RPC requests",
    quorum: true,
    max_n: 78,
    many_per_run: false,
    binary_ids: false,
    echoes_binary_ids: false,
    got: got_plain,
};
const JAVA: Lib = Lib {
    name: "java",
    library: "RabbitMQ Java client 5.0.0 (Debian)",
    server_ready: " [x] Awaiting RPC requests",
    quorum: true,
    max_n: 46,
    many_per_run: true,
    binary_ids: false,
    echoes_binary_ids: false,
    got: got_quoted,
};
const GO: Lib = Lib {
    name: "go",
    library: "amqp091-go 1.5.0 (Debian)",
    server_ready: " [*] Awaiting RPC requests",
    quorum: true,
    max_n: 92,
    many_per_run: false,
    binary_ids: false,
    echoes_binary_ids: true,
    got: got_plain,
};
const ERLANG: Lib = Lib {
    name: "erlang",
    library: "amqp_client (shipped in rabbitmq-server)",
    server_ready: " [*] Waiting for messages",
    quorum: false,
    max_n: 1000,
    many_per_run: false,
    binary_ids: true,
    echoes_binary_ids: true,
    got: got_plain,
};

/// The tests of this file one at a time: the tutorial programs all use `rpc_queue`.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs and builds the library's programs and tshark with `scripts/interop.sh` (quick when
/// done already), once per test process.
fn ensure_installed(lib: &Lib) {
    static DONE: Mutex<BTreeSet<&str>> = Mutex::new(BTreeSet::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.contains(lib.name) {
        return;
    }
    // A first install may download packages: a wider bound than a scenario step.
    let (status, lines) = Proc::spawn(
        "scripts/interop.sh",
        Command::new("bash")
            .arg(repo().join("scripts/interop.sh"))
            .args([lib.name, "tshark"])
            .env("INTEROP_DIR", interop_dir()),
    )
    .finish(Instant::now() + Duration::from_secs(900));
    assert!(
        status.success(),
        "could not install or build the {} tutorial programs ({}) with `bash scripts/interop.sh {}`: \
         {status}; its output: {lines:#?}",
        lib.name,
        lib.library,
        lib.name
    );
    done.insert(lib.name);
}

/// One of the library's programs (`rpc_client`, `rpc_server`), pointed at this test's broker address.
fn theirs(lib: &Lib, program: &str) -> Command {
    let mut c = Command::new(interop_dir().join(lib.name).join(program));
    c.env("AMQP_HOST", address()).env("AMQP_PORT", "5672");
    c
}

fn ours(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).args(["--uri", &uri()]).env("RUST_LOG", "warn");
    c
}

fn their_server(lib: &Lib) -> Proc {
    let mut server = Proc::spawn(
        &format!("{} rpc_server", lib.name),
        &mut theirs(lib, "rpc_server"),
    );
    server.expect_line(lib.server_ready);
    server
}

fn our_server(args: &[&str]) -> Proc {
    let mut server = Proc::spawn(&format!("amqp-rpc {args:?}"), &mut ours(args));
    server.expect_line(OUR_READY);
    server
}

/// Starts their client for `ns` (one n a run, or all in one run if it takes several).
fn start_clients(lib: &Lib, ns: &[u64]) -> Vec<(Vec<u64>, Proc)> {
    let runs: Vec<Vec<u64>> = if lib.many_per_run {
        vec![ns.to_vec()]
    } else {
        ns.iter().map(|&n| vec![n]).collect()
    };
    runs.into_iter()
        .map(|run| {
            let args: Vec<String> = run.iter().map(u64::to_string).collect();
            let name = format!("{} rpc_client {}", lib.name, args.join(" "));
            let proc = Proc::spawn(&name, theirs(lib, "rpc_client").args(&args));
            (run, proc)
        })
        .collect()
}

/// Waits for the clients and checks each printed the exact answer to each of its requests.
fn check_clients(lib: &Lib, clients: Vec<(Vec<u64>, Proc)>, within: Duration) {
    let deadline = Instant::now() + within;
    for (ns, client) in clients {
        let name = client.name.clone();
        let (status, lines) = client.finish(deadline);
        for n in ns {
            let want = (lib.got)(&fib_decimal(n));
            assert!(
                lines
                    .iter()
                    .any(|l| l.ends_with(&format!(" [x] Requesting fib({n})"))),
                "{name}: no request line for fib({n}); output {lines:#?}"
            );
            assert!(
                lines.iter().any(|l| l.ends_with(&want)),
                "{name} ({}): expected {want:?} (fib({n})) from the server; {status}, output {lines:#?}",
                lib.library
            );
        }
    }
}

fn their_clients(lib: &Lib, ns: &[u64]) {
    check_clients(lib, start_clients(lib, ns), STEP);
}

/// `ns` calls at once from our library client, each answer checked.
fn our_library_calls(ns: &[u64]) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let all = async {
        let client = FibonacciRpcClient::from(
            RpcClient::builder()
                .uri(uri())
                .timeout(STEP)
                .connect()
                .await
                .expect("our library client connects"),
        );
        let calls: Vec<_> = ns
            .iter()
            .map(|&n| {
                let c = client.clone();
                tokio::spawn(async move { (n, c.call(n).await) })
            })
            .collect();
        for call in calls {
            let (n, answer) = call.await.expect("task");
            let answer = answer.unwrap_or_else(|e| panic!("our library client, fib({n}): {e}"));
            assert_eq!(answer.to_string(), fib_decimal(n), "fib({n})");
        }
        let _ = client.rpc().close().await;
    };
    rt.block_on(async {
        // Each call has its own timeout (STEP); this bounds the connect and close too.
        tokio::time::timeout(2 * STEP, all)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "our library client's {} calls took over {:?}",
                    ns.len(),
                    2 * STEP
                )
            })
    });
}

/// `amqp-rpc call ARGS`: its exact output.
fn our_call(args: &[&str], n: u64) {
    let mut all = vec!["call"];
    let n_text = n.to_string();
    all.push(&n_text);
    all.extend_from_slice(args);
    let (status, lines) = process::run(&format!("amqp-rpc {all:?}"), &mut ours(&all));
    assert!(status.success(), "amqp-rpc {all:?}: {status}; {lines:#?}");
    assert_eq!(
        lines,
        [
            format!(" [x] Requesting fib({n})"),
            format!(" [.] Got {}", fib_decimal(n))
        ],
        "amqp-rpc {all:?}"
    );
}

fn capture_path(lib: &Lib, what: &str) -> PathBuf {
    let dir = interop_dir().join("captures");
    std::fs::create_dir_all(&dir).expect("captures directory");
    dir.join(format!("{}-{what}.pcapng", lib.name))
}

/// Held by a running scenario. Fields drop in order: `rpc_queue` is deleted before the next
/// scenario may start, never under it.
struct Scenario {
    _reset: RpcQueueReset,
    _serial: MutexGuard<'static, ()>,
}

/// Waits for the other scenarios, installs the library's programs, starts from no `rpc_queue`.
/// Declare it before any child process, so those are killed (dropped) before it is.
fn setup(lib: &Lib) -> Scenario {
    let serial = serial();
    ensure_installed(lib);
    broker::require();
    broker::reset_rpc_queue();
    Scenario {
        _reset: RpcQueueReset,
        _serial: serial,
    }
}

/// Their client against our server, captured; then the capture decoded both ways.
fn their_client_to_our_server(lib: &Lib) {
    let _scenario = setup(lib);
    let capture = Capture::start(&address(), capture_path(lib, "their-client"));
    let mut server = our_server(&["serve"]);
    let ns: Vec<u64> = [30, 0, 1, 2, 10, lib.max_n.min(40)].into();
    let (first_status, first) = process::run(
        &format!("{} rpc_client 30", lib.name),
        theirs(lib, "rpc_client").arg("30"),
    );
    let status = server.terminate();
    let path = capture.stop();

    // Both decoders see the same frames, whatever the answer was.
    let agreed = decode_against_tshark(&path);
    let publishes = agreed.methods.get("Basic.Publish").copied().unwrap_or(0);
    let delivers = agreed.methods.get("Basic.Deliver").copied().unwrap_or(0);
    assert!(
        agreed.streams >= 2 && publishes >= 2 && delivers >= 2,
        "{}: expected our server's and their client's connections with a request and a reply each \
         way; tshark and amqp-rpc decode agree on {agreed:?}",
        path.display()
    );
    if lib.binary_ids {
        assert!(
            !agreed.correlation_ids.is_empty()
                && agreed.correlation_ids.iter().all(|id| id.len() == 16),
            "{}: the {} client's correlation ids are 16 raw bytes; decoded: {:?}",
            path.display(),
            lib.name,
            agreed.correlation_ids
        );
    }

    let want = (lib.got)(&fib_decimal(30));
    assert!(
        first.iter().any(|l| l.ends_with(&want)),
        "{} rpc_client 30 ({}) against amqp-rpc serve: expected {want:?}; {first_status}, its \
         output {first:#?}; our server's output {:#?} (capture: {})",
        lib.name,
        lib.library,
        server.seen,
        path.display()
    );
    assert!(status.success(), "amqp-rpc serve exited with {status}");
    // On the wire: the request's correlation id, published by their client and delivered to our
    // server, came back byte for byte in the reply our server published and the broker delivered.
    let mut seen: BTreeMap<&[u8], usize> = BTreeMap::new();
    for id in &agreed.correlation_ids {
        *seen.entry(id).or_default() += 1;
    }
    assert!(
        seen.len() == 1 && seen.values().all(|&n| n == 4),
        "{}: one correlation id, in 4 content headers (request and reply, each published and \
         delivered); seen {seen:?}",
        path.display()
    );

    // More n, without a capture.
    let mut server = our_server(&["serve"]);
    their_clients(lib, &ns[1..]);
    if lib.many_per_run {
        // The tutorial as written: fib(0) .. fib(31) in one run.
        let (status, lines) =
            process::run("rpc_client (no arguments)", &mut theirs(lib, "rpc_client"));
        assert!(status.success(), "{status}: {lines:#?}");
        for n in 0..32 {
            assert!(
                lines
                    .iter()
                    .any(|l| l.ends_with(&(lib.got)(&fib_decimal(n)))),
                "fib({n}) missing from {lines:#?}"
            );
        }
    }
    assert!(server.terminate().success());
}

fn ten_of_their_clients_at_once(lib: &Lib) {
    let _scenario = setup(lib);
    let mut server = our_server(&["serve"]);
    let ns: Vec<u64> = (0..10u64).map(|i| lib.max_n.min(40) - i).collect();
    let clients: Vec<_> = ns
        .iter()
        .flat_map(|&n| {
            // Ten processes, also for a client that could take them all in one run.
            let one = Lib {
                many_per_run: false,
                ..*lib
            };
            start_clients(&one, &[n])
        })
        .collect();
    assert_eq!(clients.len(), 10);
    // Ten runtimes starting at once on a small machine (ten Erlang VMs, ten JVMs) take a while.
    check_clients(lib, clients, 3 * STEP);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        server.count(REQUEST),
        10,
        "our server's output: {:#?}",
        server.seen
    );
    assert!(server.terminate().success());
}

/// Our CLI and library client against their server, captured; the capture decoded both ways.
fn our_client_to_their_server(lib: &Lib) {
    let _scenario = setup(lib);
    let capture = Capture::start(&address(), capture_path(lib, "their-server"));
    let mut server = their_server(lib);
    our_call(&[], 30);
    our_call(&["--direct-reply-to"], 25);
    let ns: Vec<u64> = (0..10u64).map(|i| lib.max_n.min(40) - 3 * i).collect();
    our_library_calls(&ns);
    // 16-byte binary correlation ids, as the Erlang tutorial client sends.
    if lib.echoes_binary_ids {
        our_call(&["--binary-ids"], 20);
    } else {
        let args = ["call", "20", "--binary-ids", "--timeout", "3s"];
        let (status, lines) = process::run("amqp-rpc call --binary-ids", &mut ours(&args));
        assert!(
            !status.success() && lines.iter().any(|l| l.contains("no server answered")),
            "{}'s server altering a binary correlation id: our client must not take the reply; \
             {status}, {lines:#?}",
            lib.library
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        server.count(REQUEST),
        13,
        "{} rpc_server's output: {:#?}",
        lib.name,
        server.seen
    );
    server.terminate();
    let path = capture.stop();
    let agreed = decode_against_tshark(&path);
    // Their server's connection, our three calls' and our library client's.
    assert!(
        agreed.streams >= 5 && agreed.correlation_ids.len() >= 4 * 13,
        "{}: expected 5 connections and 13 requests with their replies; tshark and amqp-rpc \
         decode agree on {agreed:?}",
        path.display()
    );
    // The binary id's request and its reply, as both decoders read them off the wire.
    let binary: Vec<&Vec<u8>> = agreed
        .correlation_ids
        .iter()
        .filter(|id| std::str::from_utf8(id).is_err())
        .collect();
    if lib.echoes_binary_ids {
        assert!(
            binary.len() == 4 && binary.iter().all(|id| id.len() == 16 && *id == binary[0]),
            "{}: one 16-byte id, published and delivered each way; seen {binary:?}",
            path.display()
        );
    } else {
        // Request published and delivered (16 bytes); the reply's id is its UTF-8 decoding with
        // U+FFFD (EF BF BD) for the invalid bytes, re-encoded.
        let altered: Vec<&Vec<u8>> = agreed
            .correlation_ids
            .iter()
            .filter(|id| id.windows(3).any(|w| w == [0xef, 0xbf, 0xbd]))
            .collect();
        assert!(
            binary.len() == 2 && binary.iter().all(|id| id.len() == 16) && altered.len() == 2,
            "{}: the 16-byte request id in 2 headers, the altered reply id in 2; binary {binary:?}, \
             altered {altered:?}",
            path.display()
        );
    }
}

/// Their server declares `rpc_queue` (quorum for amqplib, Java, Go), then our plain `serve`
/// (which would declare it transient) joins it; then their server stops and their client is
/// answered by ours alone.
fn their_server_declared_rpc_queue_first(lib: &Lib) {
    let _scenario = setup(lib);
    let mut them = their_server(lib);
    let mut us = our_server(&["serve"]);
    let ns: Vec<u64> = (0..20u64).map(|i| lib.max_n.min(40) - i).collect();
    our_library_calls(&ns);
    std::thread::sleep(Duration::from_millis(100));
    // A quorum rpc_queue refuses our transient declaration (406 inequivalent arg 'durable'); our
    // server says so once (on stderr, before it consumed) and consumes the queue as it is.
    assert_eq!(
        us.count("consuming it as it is"),
        usize::from(lib.quorum),
        "our server's output: {:#?}",
        us.seen
    );
    let (by_them, by_us) = (them.count(REQUEST), us.count(REQUEST));
    assert_eq!(by_them + by_us, 20, "{} {by_them}, ours {by_us}", lib.name);
    assert!(
        by_them > 0 && by_us > 0,
        "both servers get work: {} {by_them}, ours {by_us}",
        lib.name
    );
    them.terminate();
    their_clients(lib, &[30]);
    assert_eq!(us.count(REQUEST), by_us + 1, "our server answers alone");
    assert!(us.terminate().success());
}

/// Our `serve` declares `rpc_queue` (with `--quorum` where their server needs it), their server
/// joins; both answer our library client, and their client is answered.
fn our_server_declared_rpc_queue_first(lib: &Lib) {
    let _scenario = setup(lib);
    let args: &[&str] = if lib.quorum {
        &["serve", "--quorum"]
    } else {
        &["serve"]
    };
    let mut us = our_server(args);
    let mut them = their_server(lib);
    their_clients(lib, &[30]);
    let ns: Vec<u64> = (0..20u64).map(|i| lib.max_n.min(40) - i).collect();
    our_library_calls(&ns);
    std::thread::sleep(Duration::from_millis(100));
    let (by_them, by_us) = (them.count(REQUEST), us.count(REQUEST));
    assert_eq!(by_them + by_us, 21, "{} {by_them}, ours {by_us}", lib.name);
    assert!(
        by_them > 0 && by_us > 0,
        "both servers get work: {} {by_them}, ours {by_us}",
        lib.name
    );
    them.terminate();
    assert!(us.terminate().success());
}

macro_rules! interop_tests {
    ($($module:ident => $lib:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[test]
            fn their_client_our_server() {
                their_client_to_our_server(&$lib);
            }

            #[test]
            fn ten_of_their_clients_at_once() {
                super::ten_of_their_clients_at_once(&$lib);
            }

            #[test]
            fn our_client_their_server() {
                our_client_to_their_server(&$lib);
            }

            #[test]
            fn their_server_declared_rpc_queue_first() {
                super::their_server_declared_rpc_queue_first(&$lib);
            }

            #[test]
            fn our_server_declared_rpc_queue_first() {
                super::our_server_declared_rpc_queue_first(&$lib);
            }
        }
    )*};
}

interop_tests!(node => NODE, java => JAVA, go => GO, erlang => ERLANG);
