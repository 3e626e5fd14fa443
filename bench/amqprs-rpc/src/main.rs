//! RabbitMQ tutorial six with amqprs, written with amqprs's documented API (`basic_consume_rx` for deliveries).
//!
//!   amqprs-rpc server [--prefetch P] [--uri U]
//!   amqprs-rpc client [--calls N] [--inflight C] [--fib K] [--json] [--uri U]
//!   amqprs-rpc raw    [--msgs N] [--json] [--uri U]
//!
//! The client declares one exclusive server-named callback queue, consumes it with auto-ack, and matches replies to
//! callers by a uuid correlation id in a map, like the tutorial's `FibonacciRpcClient` but with C calls in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel,
    QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::BasicProperties;
use bench_common::{die, fib, histogram, record, Args, Meter, RPC_QUEUE};
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
    let mut open = OpenConnectionArguments::try_from(args.uri().as_str())?;
    // amqprs takes the URI's vhost verbatim; the AMQP URI spec percent-decodes it ("%2f" is "/").
    let vhost = open.get_virtual_host().replace("%2f", "/").replace("%2F", "/");
    open.virtual_host(&vhost);
    let conn = Connection::open(&open).await?;
    let channel = conn.open_channel(None).await?;
    Ok((conn, channel))
}

async fn declare_exclusive(channel: &Channel) -> Result<String> {
    let (name, _, _) = channel
        .queue_declare(QueueDeclareArguments::exclusive_server_named())
        .await?
        .ok_or("queue.declare-ok missing")?;
    Ok(name)
}

async fn server(args: &Args) -> Result<()> {
    let prefetch: u16 = args.get("prefetch", 1);
    let (_conn, channel) = connect(args).await?;
    channel.queue_declare(QueueDeclareArguments::new(RPC_QUEUE)).await?;
    channel.basic_qos(BasicQosArguments::new(0, prefetch, false)).await?;
    let (_tag, mut deliveries) =
        channel.basic_consume_rx(BasicConsumeArguments::new(RPC_QUEUE, "")).await?;
    println!(" [x] Awaiting RPC requests");
    while let Some(msg) = deliveries.recv().await {
        let (Some(deliver), Some(props), Some(body)) = (msg.deliver, msg.basic_properties, msg.content)
        else {
            continue;
        };
        let n: u32 = std::str::from_utf8(&body).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        println!(" [.] fib({n})");
        let response = fib(n).to_string().into_bytes();
        if let (Some(reply_to), Some(correlation_id)) = (props.reply_to(), props.correlation_id()) {
            let reply_props = BasicProperties::default().with_correlation_id(correlation_id).finish();
            channel
                .basic_publish(reply_props, response, BasicPublishArguments::new("", reply_to))
                .await?;
        }
        channel.basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false)).await?;
    }
    Ok(())
}

async fn client(args: &Args) -> Result<()> {
    let calls: u64 = args.get("calls", 10_000);
    let inflight: usize = args.get("inflight", 1);
    let body = args.get::<u32>("fib", 1).to_string();
    let (_conn, channel) = connect(args).await?;
    let channel = Arc::new(channel);

    let callback_queue = declare_exclusive(&channel).await?;
    let (_tag, mut replies) = channel
        .basic_consume_rx(BasicConsumeArguments::new(&callback_queue, "").manual_ack(false).finish())
        .await?;

    let pending: Pending = Arc::default();
    let router = pending.clone();
    tokio::spawn(async move {
        while let Some(msg) = replies.recv().await {
            let (Some(props), Some(content)) = (msg.basic_properties, msg.content) else { continue };
            let Some(id) = props.correlation_id() else { continue };
            // An unknown correlation id is a late duplicate: the tutorial drops it.
            let waiter = router.lock().unwrap().remove(id.as_str());
            if let Some(tx) = waiter {
                let _ = tx.send(content);
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
                let props = BasicProperties::default()
                    .with_reply_to(&callback_queue)
                    .with_correlation_id(&id)
                    .finish();
                channel
                    .basic_publish(
                        props,
                        body.as_bytes().to_vec(),
                        BasicPublishArguments::new("", RPC_QUEUE),
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
    meter.report_calls("amqprs", calls, inflight, &h, args.flag("json"));
    Ok(())
}

async fn raw(args: &Args) -> Result<()> {
    let msgs: u64 = args.get("msgs", 100_000);
    let (conn, consume_channel) = connect(args).await?;
    let publish_channel = conn.open_channel(None).await?;
    let queue = declare_exclusive(&consume_channel).await?;
    let (_tag, mut deliveries) = consume_channel
        .basic_consume_rx(BasicConsumeArguments::new(&queue, "").manual_ack(false).finish())
        .await?;
    let meter = Meter::start();
    let publisher = tokio::spawn(async move {
        let payload = [b'x'; 16];
        for _ in 0..msgs {
            publish_channel
                .basic_publish(
                    BasicProperties::default(),
                    payload.to_vec(),
                    BasicPublishArguments::new("", &queue),
                )
                .await?;
        }
        Result::Ok(publish_channel)
    });
    let mut received = 0;
    while received < msgs {
        match deliveries.recv().await {
            Some(_) => received += 1,
            None => break,
        }
    }
    let _publish_channel = publisher.await.expect("publisher panicked")?;
    meter.report_raw("amqprs", received, args.flag("json"));
    Ok(())
}
