//! The default broker (127.0.0.1:5672) under test: stop its app, kill its VM, bring it back.
//!
//! Tests that do this hold [`exclusive`] for their whole run (tests of one binary run in
//! parallel threads) and a [`Restore`] guard, which brings the broker back even when the test
//! fails: other test binaries run after this one and need it.

use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Serialises the tests of one binary that disrupt the default broker (each test has a runtime
/// of its own; tokio's mutex works across them and is not poisoned by a failed test).
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    EXCLUSIVE.lock().await
}

/// `scripts/broker.sh`: starts the broker (or its app) if it does not answer AMQP; panics if it
/// cannot.
pub fn ensure() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run scripts/broker.sh");
    assert!(
        out.status.success(),
        "scripts/broker.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Brings the default broker back when dropped (test passed or not).
pub struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ensure();
    }
}

/// `rabbitmqctl ARGS` against the default node (the Debian wrapper picks its cookie).
pub fn rabbitmqctl(args: &[&str]) -> Output {
    Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("run rabbitmqctl")
}

fn ctl_ok(args: &[&str]) {
    let out = rabbitmqctl(args);
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True when something accepts TCP on 127.0.0.1:5672.
pub fn port_open() -> bool {
    TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(1)).is_ok()
}

fn wait_port(open: bool, limit: Duration) {
    let deadline = Instant::now() + limit;
    while port_open() != open {
        assert!(
            Instant::now() < deadline,
            "port 5672 not {} after {limit:?}",
            if open { "open" } else { "closed" }
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `rabbitmqctl stop_app`: the Erlang VM stays, the broker closes every connection (320
/// CONNECTION_FORCED) and its listener.
pub fn stop_app() {
    ctl_ok(&["-q", "stop_app"]);
    wait_port(false, Duration::from_secs(30));
}

/// `rabbitmqctl start_app`, then waits for the listener.
pub fn start_app() {
    ctl_ok(&["-q", "start_app"]);
    wait_port(true, Duration::from_secs(60));
}

/// The OS pid of the default node's VM (`beam.smp`).
pub fn vm_pid() -> u32 {
    let out = rabbitmqctl(&["-q", "eval", "os:getpid()."]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_matches('"')
        .parse()
        .unwrap_or_else(|_| panic!("rabbitmqctl eval os:getpid() said {text:?}"))
}

/// `kill -9` of the default node's VM: no close, no FIN from the broker application, every
/// socket reset by the kernel. Waits until the port is closed.
pub fn kill_vm() {
    let pid = vm_pid();
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid} failed");
    wait_port(false, Duration::from_secs(30));
}
