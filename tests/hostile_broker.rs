//! A broker that misbehaves after a correct handshake, scripted (no real RabbitMQ does these):
//! every wait of `call` and `serve` is bounded, and every string from the wire is defanged before
//! it reaches the terminal.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amqp_codec::{
    BasicConsumeOk, BasicQosOk, ChannelOpenOk, ConnectionClose, Frame, Method, QueueDeclareOk,
};
use support::fake_broker::{FakeBroker, Peer};

const BIN: &str = env!("CARGO_BIN_EXE_amqp-rpc");

/// Runs `amqp-rpc ARGS` to the end (killed after `limit`); returns (exit success, stderr,
/// elapsed).
fn run(args: &[&str], limit: Duration) -> (bool, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn amqp-rpc");
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            return (status.success(), err, started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("amqp-rpc {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Answers the client's set-up up to (not including) the step named `stop_at`, then says nothing.
fn silent_from(stop_at: &'static str) -> impl Fn(Peer) + Send + Sync + 'static {
    move |mut p: Peer| {
        if p.handshake(60).is_none() {
            return;
        }
        while let Some((ch, m)) = p.method() {
            let (name, reply): (&str, Method) = match m {
                Method::ChannelOpen(_) => ("channel.open", ChannelOpenOk::default().into()),
                Method::QueueDeclare(d) => (
                    "queue.declare",
                    QueueDeclareOk {
                        queue: if d.queue.is_empty() {
                            "amq.gen-fake".into()
                        } else {
                            d.queue
                        },
                        ..Default::default()
                    }
                    .into(),
                ),
                Method::BasicQos(_) => ("basic.qos", BasicQosOk {}.into()),
                Method::BasicConsume(_) => (
                    "basic.consume",
                    BasicConsumeOk {
                        consumer_tag: "ctag-fake".into(),
                    }
                    .into(),
                ),
                _ => continue,
            };
            if name == stop_at {
                p.silence();
                return;
            }
            p.send(Frame::Method(ch, reply));
        }
    }
}

/// `call --timeout` bounds the whole call: a broker that accepts the connection and then never
/// answers a set-up step cannot hold it past its timeout (it used to wait for the heartbeat
/// timeout, two minutes).
#[test]
fn call_timeout_covers_the_set_up() {
    for step in ["channel.open", "queue.declare", "basic.consume"] {
        let broker = FakeBroker::start(silent_from(step));
        let (ok, err, elapsed) = run(
            &["call", "30", "--uri", &broker.uri(), "--timeout", "1s"],
            Duration::from_secs(20),
        );
        assert!(!ok, "{step}: the call cannot succeed");
        assert!(
            elapsed < Duration::from_secs(5),
            "{step}: call --timeout 1s took {elapsed:?}"
        );
        assert!(err.contains("setting up the client"), "{step}: {err}");
        assert!(err.contains(&format!("{step}-ok")), "{step}: {err}");
    }
}

/// SIGTERM stops `serve` even when the broker stopped answering: the shutdown's waits (cancel-ok,
/// close-ok) are bounded and the socket is closed after them.
#[test]
fn serve_stops_on_sigterm_when_the_broker_is_silent() {
    // Answers everything up to consuming; then nothing, not even basic.cancel-ok or close-ok.
    let broker = FakeBroker::start(silent_from("basic.cancel"));
    let mut child = Command::new(BIN)
        .args(["serve", "--uri", &broker.uri(), "--queue", "q-hostile"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    // Wait until it consumes (it prints the tutorial's line).
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("Awaiting RPC requests") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "serve did not start"
        );
        if stdout.read(&mut byte).unwrap_or(0) == 0 {
            panic!("serve exited early: {}", String::from_utf8_lossy(&seen));
        }
        seen.push(byte[0]);
    }
    let term = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let elapsed = term.elapsed();
            assert!(
                elapsed < Duration::from_secs(15),
                "serve took {elapsed:?} to stop after SIGTERM"
            );
            // A clean stop, not a crash.
            assert!(status.code().is_some(), "{status:?}");
            break;
        }
        if term.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("serve still running 30 s after SIGTERM with a silent broker");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A hostile reply text (NUL, carriage return, line feed, an ANSI colour escape) reaches the
/// terminal escaped, on one line.
#[test]
fn hostile_texts_are_escaped() {
    let broker = FakeBroker::start(|mut p: Peer| {
        if p.handshake(60).is_none() {
            return;
        }
        let close = ConnectionClose {
            reply_code: 541,
            reply_text: "boom\0\r\n\x1b[31mred".into(),
            class_id: 0,
            method_id: 0,
        };
        p.send(Frame::Method(0, close.into()));
        p.silence();
    });
    let (ok, err, _) = run(
        &["call", "30", "--uri", &broker.uri(), "--timeout", "5s"],
        Duration::from_secs(20),
    );
    assert!(!ok);
    let line = err.trim_end_matches('\n');
    assert!(!line.contains('\n') && !line.contains('\r'), "{err:?}");
    assert!(!line.contains('\0') && !line.contains('\x1b'), "{err:?}");
    assert!(line.contains(r"boom\0\r\n\u{1b}[31mred"), "{err:?}");
}

/// EOF one byte into `connection.tune` is a cut frame, not a refused login.
#[test]
fn eof_inside_tune_is_not_an_authentication_failure() {
    let broker = FakeBroker::start(|mut p: Peer| {
        let mut header = [0u8; 8];
        if std::io::Read::read_exact(&mut p.stream, &mut header).is_err() {
            return;
        }
        p.send(Frame::Method(0, support::fake_broker::start().into()));
        p.method(); // start-ok
        p.send_raw(&[1]); // the first byte of a method frame, then EOF
    });
    let (ok, err, _) = run(
        &["call", "30", "--uri", &broker.uri(), "--timeout", "5s"],
        Duration::from_secs(20),
    );
    assert!(!ok);
    assert!(!err.contains("authentication failed"), "{err}");
    assert!(err.contains("middle of a frame"), "{err}");
}
