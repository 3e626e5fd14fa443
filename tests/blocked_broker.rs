//! A broker under a memory alarm (`rabbitmqctl set_vm_memory_high_watermark 0`) blocks
//! publishers: calls wait for it and fail with a typed `Blocked` error at their deadline, never
//! hang; `serve` logs blocked and unblocked once each. Broker-wide state: its own test binary,
//! one test at a time, and a guard that restores the watermark even when a test fails.

mod support;

use std::time::{Duration, Instant};

use rpc_client::{CallOptions, RpcClient, RpcError};
use rpc_server::{FibService, RpcServer};
use support::{unique, QueueGuard, BROKER_URI};

/// The watermark in force, as `set_vm_memory_high_watermark` arguments.
fn current_watermark() -> Vec<String> {
    let out = support::broker::rabbitmqctl(&["status"]);
    let status = String::from_utf8_lossy(&out.stdout);
    let setting = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("Memory high watermark setting: "))
        .unwrap_or("0.4 of available memory")
        .to_owned();
    let value = setting
        .split_whitespace()
        .next()
        .unwrap_or("0.4")
        .to_owned();
    if setting.contains("of available memory") {
        vec![value]
    } else {
        vec!["absolute".into(), value]
    }
}

/// Sets the watermark to 0 (an alarm at once) and puts the old one back when dropped.
struct Alarm(Vec<String>);

impl Alarm {
    /// `old` is the watermark to restore, read beforehand: `rabbitmqctl` takes seconds on a busy
    /// machine, so each call is kept off the moments that matter.
    fn raise(old: Vec<String>) -> Alarm {
        let out = support::broker::rabbitmqctl(&["-q", "set_vm_memory_high_watermark", "0"]);
        assert!(out.status.success(), "cannot set the watermark");
        Alarm(old)
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        let mut args = vec!["-q", "set_vm_memory_high_watermark"];
        args.extend(self.0.iter().map(String::as_str));
        let _ = support::broker::rabbitmqctl(&args);
    }
}

#[tokio::test]
async fn calls_wait_out_a_blocked_broker_and_fail_at_their_deadline() {
    support::broker::ensure();
    let _one = support::broker::exclusive().await;
    let queue = unique("rpc-blocked");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    let server = RpcServer::builder()
        .uri(BROKER_URI)
        .queue(&queue)
        .start(FibService::new())
        .await
        .expect("server");
    let stop = server.shutdown_token();
    let task = tokio::spawn(server.run_until(std::future::pending()));
    let client = RpcClient::builder()
        .uri(BROKER_URI)
        .queue(&queue)
        .connect()
        .await
        .expect("client");
    assert_eq!(client.call("10").await.unwrap(), "55");

    let alarm = Alarm::raise(current_watermark());
    // The first publish after the alarm is what makes RabbitMQ block the connection (and say
    // so); it is held, so this call times out.
    let first = client
        .call_raw_with(
            &queue,
            "1",
            CallOptions::timeout(Duration::from_millis(500)),
        )
        .await;
    assert!(matches!(first, Err(RpcError::Timeout { .. })), "{first:?}");
    let mut blocked = client.connection().blocked();
    tokio::time::timeout(Duration::from_secs(10), blocked.wait_for(|b| b.is_some()))
        .await
        .expect("connection.blocked within 10 s")
        .unwrap();
    // Now calls do not send at all: they wait, then fail with Blocked at their deadline.
    let t = Instant::now();
    let err = client
        .call_raw_with(&queue, "2", CallOptions::timeout(Duration::from_secs(1)))
        .await
        .unwrap_err();
    let took = t.elapsed();
    assert!(
        matches!(&err, RpcError::Blocked { reason, .. } if reason.contains("memory")),
        "{err:?}"
    );
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(5)).contains(&took),
        "failed after {took:?}, the deadline was 1 s"
    );
    // Once the alarm clears, calls go through again (a call waiting at that moment too).
    let waiting = tokio::spawn({
        let client = client.clone();
        let queue = queue.clone();
        async move {
            client
                .call_raw_with(&queue, "20", CallOptions::timeout(Duration::from_secs(20)))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(alarm);
    let reply = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the waiting call ended")
        .unwrap()
        .expect("answered after the alarm");
    assert_eq!(reply.body, "6765");
    assert_eq!(client.call("10").await.unwrap(), "55");
    stop.cancel();
    let _ = task.await;
}

/// `serve` says when the broker blocks its replies, and when it lets them through, once each.
#[tokio::test]
async fn serve_logs_blocked_and_unblocked_once_each() {
    support::broker::ensure();
    let _one = support::broker::exclusive().await;
    let queue = unique("rpc-blocked-serve");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    let old = current_watermark();
    let serve = support::serve::Serve::start(&["--queue", &queue, "--delay-ms", "10000"]);
    serve
        .wait_for("Awaiting RPC requests", 1, Duration::from_secs(20))
        .await;
    let client = RpcClient::builder()
        .uri(BROKER_URI)
        .queue(&queue)
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("client");
    // The request reaches the server before the alarm; its reply is published during it (the
    // handler takes 10 s: rabbitmqctl itself may take seconds to raise the alarm).
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call("12").await }
    });
    serve
        .wait_for(" [.] fib(12)", 1, Duration::from_secs(10))
        .await;
    let alarm = Alarm::raise(old);
    serve
        .wait_for("blocks publishers", 1, Duration::from_secs(25))
        .await;
    drop(alarm);
    serve
        .wait_for("accepts publishes again", 1, Duration::from_secs(15))
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("answered")
        .unwrap()
        .unwrap();
    assert_eq!(answer, "144");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(serve.count("blocks publishers"), 1, "{}", serve.output());
    assert_eq!(
        serve.count("accepts publishes again"),
        1,
        "{}",
        serve.output()
    );
}
