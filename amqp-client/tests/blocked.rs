//! `connection.blocked` / `connection.unblocked` from the real broker, provoked by a memory
//! alarm (`rabbitmqctl set_vm_memory_high_watermark 0`). Broker-wide state: it lives in its own
//! test binary (cargo runs binaries one after another) and a guard restores the watermark even
//! if the test fails.

mod common;

use std::time::Duration;

use amqp_client::BasicProperties;
use common::{channel, connect, within};

/// The watermark in force before the test, as `rabbitmqctl set_vm_memory_high_watermark`
/// arguments (RabbitMQ's default, relative 0.4, if the status cannot be read).
fn current_watermark() -> Vec<String> {
    let status = common::rabbitmqctl(&["status"]);
    let setting = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("Memory high watermark setting: "))
        .unwrap_or("0.4 of available memory");
    let value = setting
        .split_whitespace()
        .next()
        .unwrap_or("0.4")
        .to_string();
    if setting.contains("of available memory") {
        vec![value]
    } else {
        vec!["absolute".into(), value]
    }
}

/// Puts the watermark back when dropped, so a failing test does not leave the broker blocked.
struct RestoreWatermark(Vec<String>);

impl Drop for RestoreWatermark {
    fn drop(&mut self) {
        let mut args = vec!["-q", "set_vm_memory_high_watermark"];
        args.extend(self.0.iter().map(String::as_str));
        common::rabbitmqctl(&args);
    }
}

#[tokio::test]
async fn memory_alarm_blocks_and_unblocks_publishers() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let (q, mut consumer) = common::exclusive_consumer(&ch).await;
    let mut blocked = conn.blocked();
    assert_eq!(*blocked.borrow(), None);

    let guard = RestoreWatermark(current_watermark());
    common::rabbitmqctl(&["-q", "set_vm_memory_high_watermark", "0"]);
    // RabbitMQ blocks a connection when it next publishes, and tells it so.
    ch.basic_publish(
        "",
        &q.queue,
        amqp_client::BasicPublishOptions::default(),
        &BasicProperties::default(),
        b"during alarm",
    )
    .await
    .unwrap();
    within("connection.blocked", blocked.wait_for(|b| b.is_some()))
        .await
        .unwrap();
    let reason = blocked.borrow().clone().unwrap();
    assert!(reason.contains("memory"), "{reason}");

    drop(guard);
    within("connection.unblocked", blocked.wait_for(|b| b.is_none()))
        .await
        .unwrap();
    // The publish held back during the alarm is delivered once unblocked.
    let d = within("delivery after unblock", consumer.recv())
        .await
        .unwrap();
    assert_eq!(&d.body[..], b"during alarm");
    tokio::time::sleep(Duration::from_millis(10)).await;
    conn.close().await.unwrap();
}
