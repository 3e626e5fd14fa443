//! RabbitMQ tutorial six with lapin, written the way lapin's own examples write a consumer and a publisher.
//!
//!   lapin-rpc server [--prefetch P] [--uri U]
//!   lapin-rpc client [--calls N] [--inflight C] [--fib K] [--json] [--uri U]
//!   lapin-rpc raw    [--msgs N] [--json] [--uri U]
//!
//! The client declares one exclusive server-named callback queue, consumes it with auto-ack, and matches replies to
//! callers by a uuid correlation id in a map, like the tutorial's `FibonacciRpcClient` but with C calls in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bench_common::{die, fib, histogram, record, Args, Meter, RPC_QUEUE};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::oneshot;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

#[tokio::main]
async fn main() {
    let args = Args::from_env();
    let result = match args.command.as_str() {
        "server" => server(&args).await,
        "client" => client(&args).await,
        "raw" => raw(&args).await,
        other => die(&format!("unknown command {other:?} (expected server, client or raw)")),
    };
    if let Err(e) = result {
        die(&e.to_string());
    }
}

async fn connect(args: &Args) -> Result<(Connection, Channel)> {
    let conn = Connection::connect(&args.uri(), ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    Ok((conn, channel))
}

async fn server(args: &Args) -> Result<()> {
    let prefetch: u16 = args.get("prefetch", 1);
    let (_conn, channel) = connect(args).await?;
    channel
        .queue_declare(RPC_QUEUE.into(), QueueDeclareOptions::default(), FieldTable::default())
        .await?;
    channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            RPC_QUEUE.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    println!(" [x] Awaiting RPC requests");
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let n: u32 = std::str::from_utf8(&delivery.data)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        println!(" [.] fib({n})");
        let response = fib(n).to_string();
        if let (Some(reply_to), Some(correlation_id)) =
            (delivery.properties.reply_to(), delivery.properties.correlation_id())
        {
            channel
                .basic_publish(
                    "".into(),
                    reply_to.clone(),
                    BasicPublishOptions::default(),
                    response.as_bytes(),
                    BasicProperties::default().with_correlation_id(correlation_id.clone()),
                )
                .await?;
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}

async fn client(args: &Args) -> Result<()> {
    let calls: u64 = args.get("calls", 10_000);
    let inflight: usize = args.get("inflight", 1);
    let body = args.get::<u32>("fib", 1).to_string();
    let (_conn, channel) = connect(args).await?;

    let callback_queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?
        .name()
        .clone();
    let mut consumer = channel
        .basic_consume(
            callback_queue.clone(),
            "".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;

    let pending: Pending = Arc::default();
    let router = pending.clone();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let Some(id) = delivery.properties.correlation_id() else { continue };
            // An unknown correlation id is a late duplicate: the tutorial drops it.
            let waiter = router.lock().unwrap().remove(id.as_str());
            if let Some(tx) = waiter {
                let _ = tx.send(delivery.data);
            }
        }
    });

    let next = Arc::new(AtomicU64::new(0));
    let meter = Meter::start();
    let mut workers = Vec::with_capacity(inflight);
    for _ in 0..inflight {
        let (channel, pending, next) = (channel.clone(), pending.clone(), next.clone());
        let (callback_queue, body) = (callback_queue.clone(), body.clone());
        workers.push(tokio::spawn(async move {
            let mut h = histogram();
            while next.fetch_add(1, Ordering::Relaxed) < calls {
                let started = Instant::now();
                let id = uuid::Uuid::new_v4().to_string();
                let (tx, rx) = oneshot::channel();
                pending.lock().unwrap().insert(id.clone(), tx);
                channel
                    .basic_publish(
                        "".into(),
                        RPC_QUEUE.into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        BasicProperties::default()
                            .with_reply_to(callback_queue.clone())
                            .with_correlation_id(ShortString::from(id)),
                    )
                    .await?;
                let reply = rx.await.map_err(|_| "callback consumer ended")?;
                std::hint::black_box(reply);
                record(&mut h, started.elapsed());
            }
            Result::Ok(h)
        }));
    }
    let mut h = histogram();
    for w in workers {
        h.add(w.await.expect("worker panicked")?).expect("same bounds");
    }
    meter.report_calls("lapin", calls, inflight, &h, args.flag("json"));
    Ok(())
}

async fn raw(args: &Args) -> Result<()> {
    let msgs: u64 = args.get("msgs", 100_000);
    let (conn, consume_channel) = connect(args).await?;
    let publish_channel = conn.create_channel().await?;
    let queue = consume_channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?
        .name()
        .clone();
    let mut consumer = consume_channel
        .basic_consume(
            queue.clone(),
            "".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    let meter = Meter::start();
    let publisher = tokio::spawn(async move {
        let payload = [b'x'; 16];
        for _ in 0..msgs {
            publish_channel
                .basic_publish(
                    "".into(),
                    queue.clone(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default(),
                )
                .await?;
        }
        Result::Ok(())
    });
    let mut received = 0;
    while received < msgs {
        match consumer.next().await {
            Some(Ok(_)) => received += 1,
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    publisher.await.expect("publisher panicked")?;
    meter.report_raw("lapin", received, args.flag("json"));
    Ok(())
}
