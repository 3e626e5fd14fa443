//! `amqp-rpc proxy` on the real broker and on scripted peers:
//!
//! - it carries our `serve`/`call` and pika's tutorial programs unchanged (the answers are
//!   right), over plain TCP and with TLS on both sides;
//! - its live view prints exactly what `decode` prints of its `--record` capture, and tshark
//!   dissects that capture frame for frame as `decode` does, with no TCP warning but the reset
//!   RabbitMQ itself sends when a client closes;
//! - bytes pass byte for byte (malformed ones too), a half-close stays a half-close, a stuck
//!   connection holds up no other, a printer that cannot keep up never slows the forwarding;
//! - the faults do what they say: `--delay-up/--delay-down` delay, `--cut-after` resets,
//!   `--stall-after` stalls with the sockets open;
//! - `--record` on `call`, `serve`, `bench` and `demo` writes captures `decode` and tshark read.
//!
//! Every wait is bounded; the proxies and servers started here are killed when their guards
//! drop. Only the pika test uses `rpc_queue` (the tutorial hard-codes it), in one test function.

#[allow(dead_code)]
#[path = "interop/broker.rs"]
mod broker;
#[allow(dead_code)]
#[path = "interop/capture.rs"]
mod capture;
#[allow(dead_code)]
#[path = "interop/process.rs"]
mod process;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use process::{Proc, STEP};
use support::unique;

const BIN: &str = env!("CARGO_BIN_EXE_amqp-rpc");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tls_dir() -> PathBuf {
    let dir =
        PathBuf::from(std::env::var("AMQP_TLS_DIR").unwrap_or_else(|_| "/tmp/amqp-rpc-tls".into()));
    assert!(
        dir.join("ca.pem").is_file(),
        "no test certificates in {}: run `bash scripts/broker.sh && bash scripts/broker-tls.sh`",
        dir.display()
    );
    dir
}

/// A scratch file for this test: removed first, kept after (to look at when a test fails).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(BIN)
        .ancestors()
        .nth(2)
        .expect("TARGET/PROFILE/amqp-rpc")
        .join("proxy-tests");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// A running `amqp-rpc proxy`: its address, its stdout (the view) and stderr. Killed on drop.
struct ProxyProc {
    child: Child,
    addr: SocketAddr,
    _stdin: ChildStdin,
    stdout: Option<ChildStdout>,
    reader: Option<JoinHandle<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ProxyProc {
    /// `amqp-rpc proxy --listen 127.0.0.1:0 ARGS`; its view read as it comes unless
    /// `hold_stdout` (then nobody reads it until [`ProxyProc::stop`]: a printer that is stuck).
    fn start(args: &[&str], hold_stdout: bool) -> ProxyProc {
        let mut child = Command::new(BIN)
            .args(["proxy", "--listen", "127.0.0.1:0", "--stop-on-stdin-eof"])
            .args(["--color", "never"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn amqp-rpc proxy");
        let stdin = child.stdin.take().expect("stdin");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let stderr = Arc::clone(&stderr);
            let pipe = child.stderr.take().expect("stderr");
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line.clone());
                    stderr.lock().unwrap().push(line);
                }
            });
        }
        let addr = loop {
            match rx.recv_timeout(STEP) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr = rest.split([' ', ',']).next().unwrap_or_default();
                        break addr.parse().expect("the listening address");
                    }
                }
                Err(_) => panic!(
                    "amqp-rpc proxy {args:?} did not say where it listens within {STEP:?}: {:?}",
                    stderr.lock().unwrap()
                ),
            }
        };
        let mut proxy = ProxyProc {
            child,
            addr,
            _stdin: stdin,
            stdout: None,
            reader: None,
            stderr,
        };
        let stdout = proxy.child.stdout.take().expect("stdout");
        if hold_stdout {
            proxy.stdout = Some(stdout);
        } else {
            proxy.reader = Some(read_all(stdout));
        }
        proxy
    }

    fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// SIGTERM, then its view (stdout) and stderr once it has exited.
    fn stop(mut self) -> (String, String) {
        if let Some(stdout) = self.stdout.take() {
            self.reader = Some(read_all(stdout));
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STEP;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "amqp-rpc proxy did not stop within {STEP:?} of SIGTERM: {:?}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = self
            .reader
            .take()
            .map(|r| r.join().expect("stdout reader"))
            .unwrap_or_default();
        // The stderr reader ends at EOF, right after the exit.
        std::thread::sleep(Duration::from_millis(100));
        let err = self.stderr.lock().unwrap().join("\n");
        assert!(
            status.success(),
            "amqp-rpc proxy exited with {status}: {err}"
        );
        (String::from_utf8_lossy(&out).into_owned(), err)
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_all(mut pipe: ChildStdout) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// `amqp-rpc ARGS` run to completion within `STEP`: its output lines (stdout and stderr).
fn run_ours(args: &[&str]) -> Vec<String> {
    let (status, lines) = process::run(
        &format!("amqp-rpc {}", args.join(" ")),
        Command::new(BIN).args(args).env("RUST_LOG", "warn"),
    );
    assert!(status.success(), "amqp-rpc {args:?} failed: {lines:#?}");
    lines
}

/// `amqp-rpc serve` as a child: ready when it says so.
fn serve(args: &[&str]) -> Proc {
    let mut server = Proc::spawn(
        "amqp-rpc serve",
        Command::new(BIN)
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "warn"),
    );
    server.expect_line(" [x] Awaiting RPC requests");
    server
}

/// `decode ARGS FILE` output.
fn decode(file: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("decode")
        .args(args)
        .args(["--color", "never"])
        .arg(file)
        .output()
        .expect("run amqp-rpc decode");
    assert!(
        out.status.success(),
        "decode {args:?} {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSON line {l:?}: {e}")))
        .collect()
}

/// The live view and `decode` of the recording print the same frames, line for line.
fn assert_live_view_is_the_recording(live: &str, recording: &Path, view: &[&str]) {
    let decoded = decode(recording, view);
    let (live, decoded): (Vec<&str>, Vec<&str>) =
        (live.lines().collect(), decoded.lines().collect());
    assert!(!live.is_empty(), "the live view printed nothing");
    for (i, (a, b)) in live.iter().zip(&decoded).enumerate() {
        assert_eq!(
            a, b,
            "line {i} of the live view and of decode {view:?} differ"
        );
    }
    assert_eq!(
        live.len(),
        decoded.len(),
        "lines in the live view and in decode"
    );
}

/// tshark's warnings and errors (expert info) in a capture: `(frame, message)`.
fn tshark_warnings(capture: &Path, port: u16) -> Vec<(u64, String)> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(capture).arg("-n");
    if port != 5672 {
        cmd.args(["-d", &format!("tcp.port=={port},amqp")]);
    }
    // Severity: chat 0x200000, note 0x400000, warning 0x600000, error 0x800000.
    cmd.args([
        "-Y",
        "_ws.expert.severity >= 0x600000",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
    ]);
    let (status, lines) = process::run("tshark expert", &mut cmd);
    assert!(status.success(), "tshark failed: {lines:#?}");
    lines
        .iter()
        .filter(|l| !l.starts_with("Running as user"))
        .map(|l| {
            let (frame, message) = l.split_once('\t').unwrap_or((l, ""));
            (frame.parse().unwrap_or(0), message.to_string())
        })
        .collect()
}

/// tshark finds nothing wrong in the synthesized TCP: the only warning allowed is a reset that
/// ends a stream (RabbitMQ closes with SO_LINGER 0, so a direct capture shows the same RST),
/// never a lost segment, a window problem or a retransmission.
fn assert_tcp_is_clean(capture: &Path, port: u16) {
    let warnings = tshark_warnings(capture, port);
    let bad: Vec<_> = warnings
        .iter()
        .filter(|(_, m)| !m.starts_with("Connection reset (RST)"))
        .collect();
    assert!(
        bad.is_empty(),
        "tshark warns about {}: {bad:?}",
        capture.display()
    );
}

/// The frames `decode --json` finds in a capture, by type/method label.
fn methods(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r["type"].as_str() {
            Some("method") => Some(format!(
                "{}.{}",
                r["class"].as_str().unwrap_or("?"),
                r["method"].as_str().unwrap_or("?")
            )),
            _ => None,
        })
        .collect()
}

fn body_texts(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["type"] == "body")
        .map(|r| {
            let hex = r["payload_hex"].as_str().unwrap_or_default();
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
}

#[test]
fn our_server_and_client_through_the_proxy_live_view_recording_and_tshark_agree() {
    broker::require();
    let queue = unique("proxy-plain");
    let _cleanup = support::QueueGuard::new(support::BROKER_URI, &queue);
    let record = scratch("plain.pcapng");
    let upstream = format!("{}:5672", broker::address());
    let proxy = ProxyProc::start(
        &[
            "--upstream",
            &upstream,
            "--json",
            "--record",
            record.to_str().unwrap(),
        ],
        false,
    );
    let mut server = serve(&["--uri", &proxy.uri(), "--queue", &queue]);
    let lines = run_ours(&["call", "--uri", &proxy.uri(), "--queue", &queue, "25"]);
    assert!(lines.iter().any(|l| l == " [.] Got 75025"), "{lines:#?}");
    server.expect_line(" [.] fib(25)");
    assert!(server.terminate().success());
    let (live, err) = proxy.stop();
    assert!(err.contains("recorded 2 connection(s)"), "{err}");

    assert_live_view_is_the_recording(&live, &record, &["--json"]);
    let records = json_lines(&live);
    let seen = methods(&records);
    for m in [
        "basic.publish",
        "basic.deliver",
        "basic.ack",
        "connection.close-ok",
    ] {
        assert!(seen.contains(&m.to_string()), "{m} missing from {seen:?}");
    }
    assert!(body_texts(&records).contains(&"75025".to_string()));
    let agreed = capture::decode_against_tshark(&record);
    assert_eq!(agreed.streams, 2, "the server's connection and the call's");
    assert_eq!(agreed.methods.get("Basic.Publish"), Some(&2));
    assert_eq!(
        agreed.correlation_ids.len(),
        4,
        "request and reply, each sent and delivered"
    );
    assert_tcp_is_clean(&record, 5672);
    // The other views print the recording as decode does too.
    let summary = decode(&record, &["--summary"]);
    assert!(summary.contains("Basic.Deliver"), "{summary}");
}

/// `--rpc` live: each call printed once it is finished, as `decode --rpc` of the recording
/// reports it (the same JSON object, in the order calls finished rather than by number).
#[test]
fn the_rpc_view_pairs_calls_live_as_decode_does_from_the_recording() {
    broker::require();
    let queue = unique("proxy-rpc");
    let _cleanup = support::QueueGuard::new(support::BROKER_URI, &queue);
    let record = scratch("rpc.pcapng");
    let proxy = ProxyProc::start(
        &["--rpc", "--json", "--record", record.to_str().unwrap()],
        false,
    );
    let uri = proxy.uri();
    let mut server = serve(&["--uri", &uri, "--queue", &queue]);
    for (n, answer, extra) in [
        ("10", "55", None),
        ("20", "6765", Some("--direct-reply-to")),
    ] {
        let mut args = vec!["call", "--uri", &uri, "--queue", &queue, n];
        args.extend(extra);
        let lines = run_ours(&args);
        assert!(
            lines.iter().any(|l| l == &format!(" [.] Got {answer}")),
            "{lines:#?}"
        );
    }
    assert!(server.terminate().success());
    let (live, _) = proxy.stop();
    let by_call = |text: &str| {
        let mut calls = json_lines(text);
        calls.sort_by_key(|c| c["call"].as_u64());
        calls
    };
    let (live, decoded) = (
        by_call(&live),
        by_call(&decode(&record, &["--rpc", "--json"])),
    );
    assert_eq!(live.len(), 2, "{live:#?}");
    assert_eq!(
        live, decoded,
        "the live calls and decode --rpc of the recording"
    );
    for call in &live {
        assert_eq!(call["outcome"], "answered", "{call}");
        assert!(call["latency_ms"]["total"].as_f64().is_some(), "{call}");
        assert!(call["ack"].is_object(), "the server's ack paired: {call}");
    }
    assert_eq!(live[1]["reply_to"], "amq.rabbitmq.reply-to");
}

#[test]
fn tls_on_both_sides_shows_and_records_plaintext() {
    broker::require();
    let tls = tls_dir();
    let pem = |name: &str| tls.join(name).display().to_string();
    let queue = unique("proxy-tls");
    let _cleanup = support::QueueGuard::new(support::BROKER_URI, &queue);
    let record = scratch("tls.pcapng");
    let proxy = ProxyProc::start(
        &[
            "--tls-cert",
            &pem("server.pem"),
            "--tls-key",
            &pem("server.key"),
            "--upstream",
            "127.0.0.1:5671",
            "--upstream-tls",
            "--upstream-ca",
            &pem("ca.pem"),
            "--summary",
            "--record",
            record.to_str().unwrap(),
        ],
        false,
    );
    let amqps = format!(
        "amqps://guest:guest@localhost:{}/%2f?cacertfile={}",
        proxy.addr.port(),
        pem("ca.pem")
    );
    let mut server = serve(&["--uri", &amqps, "--queue", &queue]);
    let lines = run_ours(&["call", "--uri", &amqps, "--queue", &queue, "30"]);
    assert!(lines.iter().any(|l| l == " [.] Got 832040"), "{lines:#?}");
    server.expect_line(" [.] fib(30)");
    assert!(server.terminate().success());
    let (live, _) = proxy.stop();
    assert!(live.contains("Basic.Publish"), "{live}");
    assert_live_view_is_the_recording(&live, &record, &["--summary"]);
    let agreed = capture::decode_against_tshark_on(&record, 5671);
    assert_eq!(agreed.streams, 2);
    assert_eq!(agreed.correlation_ids.len(), 4);
    assert_tcp_is_clean(&record, 5671);
}

#[test]
fn pika_tutorial_programs_through_the_proxy() {
    broker::require();
    // The tutorial hard-codes rpc_queue: start from none, delete it after (also on failure).
    broker::reset_rpc_queue();
    let _reset = broker::RpcQueueReset;
    let record = scratch("pika.pcapng");
    let upstream = format!("{}:5672", broker::address());
    let proxy = ProxyProc::start(
        &[
            "--upstream",
            &upstream,
            "--quiet",
            "--record",
            record.to_str().unwrap(),
        ],
        false,
    );
    let pika = |script: &str, args: &[&str]| {
        let mut c = Command::new("python3");
        c.arg(repo().join("tests/pika").join(script))
            .args(args)
            .env("AMQP_HOST", "127.0.0.1")
            .env("AMQP_PORT", proxy.addr.port().to_string());
        c
    };
    let mut server = Proc::spawn("rpc_server.py", &mut pika("rpc_server.py", &[]));
    server.expect_line("Awaiting RPC requests");
    let (status, lines) = process::run("rpc_client.py", &mut pika("rpc_client.py", &[]));
    assert!(status.success(), "rpc_client.py: {lines:#?}");
    assert!(lines.iter().any(|l| l == " [.] Got 832040"), "{lines:#?}");
    // Ours asks pika's server, through the proxy too.
    let lines = run_ours(&["call", "--uri", &proxy.uri(), "12"]);
    assert!(lines.iter().any(|l| l == " [.] Got 144"), "{lines:#?}");
    drop(server);
    let (_, err) = proxy.stop();
    assert!(err.contains("recorded 3 connection(s)"), "{err}");
    let agreed = capture::decode_against_tshark(&record);
    assert_eq!(agreed.streams, 3);
    // Each id is sent and delivered back on the callers' connections; the request and reply legs
    // on the server's connection are there too unless another test's server on the shared
    // broker's rpc_queue took the request.
    assert!(agreed.correlation_ids.len() >= 6, "{agreed:?}");
    assert_tcp_is_clean(&record, 5672);
}

/// A scripted upstream: one TCP listener, each connection handed to `serve` on a thread.
fn upstream(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let serve = Arc::clone(&serve);
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

fn heartbeat() -> Vec<u8> {
    vec![8, 0, 0, 0, 0, 0, 0, 0xce]
}

fn bounded(stream: &TcpStream) {
    stream.set_read_timeout(Some(STEP)).unwrap();
    stream.set_write_timeout(Some(STEP)).unwrap();
}

#[test]
fn bytes_pass_as_they_are_and_a_half_close_stays_a_half_close() {
    // The client's bytes: a protocol header, a frame whose size is garbage, a heartbeat.
    let mut sent = b"AMQP\x00\x00\x09\x01".to_vec();
    sent.extend_from_slice(b"\x01\x00\x01\xff\xff\xff\xffnot a frame");
    sent.extend_from_slice(&heartbeat());
    let (tx, rx) = mpsc::channel();
    let addr = upstream(move |mut s| {
        bounded(&s);
        let mut got = Vec::new();
        s.read_to_end(&mut got)
            .expect("read until the client's FIN");
        // Written after the client's FIN: it reaches the client only if the proxy kept the
        // other direction open.
        s.write_all(&heartbeat())
            .expect("write after the half-close");
        let _ = tx.send(got);
    });
    let proxy = ProxyProc::start(&["--upstream", &addr.to_string(), "--json"], false);
    let mut client = TcpStream::connect(proxy.addr).unwrap();
    bounded(&client);
    client.write_all(&sent).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    client
        .read_to_end(&mut back)
        .expect("read until the upstream's FIN");
    assert_eq!(rx.recv_timeout(STEP).expect("the upstream got bytes"), sent);
    assert_eq!(back, heartbeat());
    let (live, _) = proxy.stop();
    let records = json_lines(&live);
    let kinds: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["direction"].as_str().unwrap(),
                r["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("client", "protocol-header"),
            ("client", "error"),
            ("client", "heartbeat"),
            ("broker", "heartbeat")
        ],
        "{live}"
    );
}

#[test]
fn a_stuck_connection_does_not_hold_up_another() {
    let addr = upstream(|mut s| {
        bounded(&s);
        let mut first = [0u8; 1];
        if s.read_exact(&mut first).is_err() {
            return;
        }
        if first[0] == b'S' {
            // The stuck client never reads: this writes until every buffer on the way is full
            // (the write times out or the proxy goes).
            let block = vec![0u8; 1 << 16];
            while s.write_all(&block).is_ok() {}
        } else {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n @ 1..) = s.read(&mut buf) {
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let proxy = ProxyProc::start(&["--upstream", &addr.to_string(), "--quiet"], false);
    let mut stuck = TcpStream::connect(proxy.addr).unwrap();
    stuck.write_all(b"S").unwrap();
    // Let the stuck connection fill its buffers.
    std::thread::sleep(Duration::from_millis(500));
    let mut echo = TcpStream::connect(proxy.addr).unwrap();
    bounded(&echo);
    echo.write_all(b"E").unwrap();
    let payload: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut w = echo.try_clone().unwrap();
        let payload = payload.clone();
        std::thread::spawn(move || w.write_all(&payload))
    };
    let mut back = vec![0u8; payload.len()];
    echo.read_exact(&mut back)
        .expect("the echo connection is served while the other is stuck");
    writer.join().unwrap().unwrap();
    assert!(back == payload, "the echo came back altered");
    drop(stuck);
    proxy.stop();
}

#[test]
fn a_printer_that_cannot_keep_up_never_slows_the_forwarding() {
    // 4,000 heartbeats (more lines than a pipe holds), then 32 MiB in content-body frames.
    const BODY: usize = 65_000;
    const FRAMES: usize = 512;
    let addr = upstream(|mut s| {
        bounded(&s);
        let mut out = heartbeat().repeat(4000);
        let mut frame = vec![3, 0, 1];
        frame.extend_from_slice(&(BODY as u32).to_be_bytes());
        frame.extend(std::iter::repeat_n(b'x', BODY));
        frame.push(0xce);
        for _ in 0..FRAMES {
            out.extend_from_slice(&frame);
        }
        let _ = s.write_all(&out);
    });
    // Nobody reads the view's stdout until the end: the printer is stuck.
    let proxy = ProxyProc::start(&["--upstream", &addr.to_string(), "--summary"], true);
    let mut client = TcpStream::connect(proxy.addr).unwrap();
    bounded(&client);
    let mut got = Vec::new();
    client
        .read_to_end(&mut got)
        .expect("every byte arrives although the view is stuck");
    assert_eq!(got.len(), 4000 * 8 + FRAMES * (BODY + 8));
    drop(client);
    let (live, err) = proxy.stop();
    assert!(
        err.contains("the live view fell behind and skipped"),
        "the proxy reports what the view skipped: {err}"
    );
    assert!(
        live.contains("the live view fell behind"),
        "the view shows where it skipped"
    );
}

#[test]
fn delays_hold_each_direction_back() {
    broker::require();
    let proxy = ProxyProc::start(
        &["--quiet", "--delay-up", "150ms", "--delay-down", "100ms"],
        false,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(support::within(
        "a round trip through the delayed proxy",
        STEP,
        async {
            let conn = amqp_client::Connection::connect(&proxy.uri())
                .await
                .expect("connect");
            let ch = conn.open_channel().await.expect("channel");
            let q = ch
                .queue_declare(
                    "",
                    amqp_client::QueueDeclareOptions {
                        exclusive: true,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let mut consumer = ch
                .basic_consume(
                    &q.queue,
                    amqp_client::BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            // The publish goes up (150 ms), the delivery comes down (100 ms).
            let t = Instant::now();
            ch.basic_publish(
                "",
                &q.queue,
                amqp_client::BasicPublishOptions::default(),
                &amqp_client::BasicProperties::default(),
                b"late",
            )
            .await
            .unwrap();
            consumer.recv().await.unwrap();
            let took = t.elapsed();
            assert!(
                took >= Duration::from_millis(250),
                "a delayed round trip took {took:?}"
            );
            conn.close().await.unwrap();
        },
    ));
    proxy.stop();
}

/// `connection.open-ok` is the 7th frame (protocol header, start, start-ok, tune, tune-ok,
/// open, open-ok); `channel.open-ok` the 9th.
const HANDSHAKE_FRAMES: &str = "7";

#[test]
fn cut_after_resets_both_sides_once_n_frames_passed() {
    broker::require();
    let record = scratch("cut.pcapng");
    let proxy = ProxyProc::start(
        &[
            "--quiet",
            "--cut-after",
            "9",
            "--record",
            record.to_str().unwrap(),
        ],
        false,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = rt.block_on(support::within("the cut", STEP, async {
        let conn = amqp_client::Connection::connect(&proxy.uri())
            .await
            .expect("connect");
        // Frames 8 and 9: channel.open and its -ok pass, then both sockets are reset.
        let _ = conn.open_channel().await;
        conn.closed().await
    }));
    assert!(
        matches!(
            error,
            amqp_client::Error::Io(_) | amqp_client::Error::ConnectionLost(_)
        ),
        "the connection was reset, not closed: {error:?}"
    );
    proxy.stop();
    let records = json_lines(&decode(&record, &["--json"]));
    assert_eq!(records.len(), 9, "exactly 9 frames passed: {records:#?}");
    assert_eq!(
        methods(&records).last().map(String::as_str),
        Some("channel.open-ok")
    );
    let warnings = tshark_warnings(&record, 5672);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].1.starts_with("Connection reset"),
        "{warnings:?}"
    );
}

#[test]
fn stall_after_stops_forwarding_and_keeps_the_sockets_open() {
    broker::require();
    let proxy = ProxyProc::start(&["--quiet", "--stall-after", HANDSHAKE_FRAMES], false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let uri = format!("{}?heartbeat=1", proxy.uri());
    let error = rt.block_on(support::within("the stall", STEP, async {
        let conn = amqp_client::Connection::connect(&uri)
            .await
            .expect("the handshake passes");
        // Nothing passes any more: channel.open gets no answer...
        let open = tokio::time::timeout(Duration::from_millis(1000), conn.open_channel()).await;
        assert!(
            open.is_err(),
            "channel.open was answered through a stalled proxy"
        );
        // ...and the broker falls silent without a reset: only the heartbeat rule ends it.
        conn.closed().await
    }));
    assert!(
        matches!(error, amqp_client::Error::HeartbeatTimeout(_)),
        "a silent peer, not a closed socket: {error:?}"
    );
    proxy.stop();
}

#[test]
fn record_on_call_serve_bench_and_demo() {
    broker::require();
    let queue = unique("proxy-record");
    let _cleanup = support::QueueGuard::new(support::BROKER_URI, &queue);
    let (served, called) = (scratch("serve.pcapng"), scratch("call.pcapng"));
    let mut server = serve(&["--queue", &queue, "--record", served.to_str().unwrap()]);
    let lines = run_ours(&[
        "call",
        "--queue",
        &queue,
        "--record",
        called.to_str().unwrap(),
        "15",
    ]);
    assert!(lines.iter().any(|l| l == " [.] Got 610"), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("recorded 1 connection(s)")),
        "{lines:#?}"
    );
    server.expect_line(" [.] fib(15)");
    assert!(server.terminate().success());

    let call = json_lines(&decode(&called, &["--json"]));
    let seen = methods(&call);
    assert_eq!(seen.first().map(String::as_str), Some("connection.start"));
    assert!(seen.contains(&"basic.publish".to_string()), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("connection.close-ok"));
    assert_eq!(body_texts(&call), ["15", "610"]);
    let serve = json_lines(&decode(&served, &["--json"]));
    assert_eq!(body_texts(&serve), ["15", "610"]);
    for capture in [&called, &served] {
        let agreed = capture::decode_against_tshark(capture);
        assert_eq!(agreed.streams, 1, "{}", capture.display());
        assert_eq!(agreed.correlation_ids.len(), 2);
        assert_tcp_is_clean(capture, 5672);
    }

    let benched = scratch("bench.pcapng");
    run_ours(&[
        "bench",
        "-n",
        "20",
        "--with-server",
        "--queue",
        &queue,
        "--record",
        benched.to_str().unwrap(),
    ]);
    let bench = json_lines(&decode(&benched, &["--json"]));
    let publishes = methods(&bench)
        .iter()
        .filter(|m| *m == "basic.publish")
        .count();
    assert_eq!(publishes, 40, "20 requests and 20 replies");

    let demo_queue = unique("proxy-demo");
    let _demo_cleanup = support::QueueGuard::new(support::BROKER_URI, &demo_queue);
    let demoed = scratch("demo.pcapng");
    run_ours(&[
        "demo",
        "--queue",
        &demo_queue,
        "--record",
        demoed.to_str().unwrap(),
    ]);
    let agreed = capture::decode_against_tshark(&demoed);
    assert!(
        agreed.streams >= 2,
        "the demo's server and client: {agreed:?}"
    );
    assert!(agreed.methods.get("Basic.Publish").copied().unwrap_or(0) >= 2 * 91);
}
