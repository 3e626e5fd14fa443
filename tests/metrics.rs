//! Prometheus metrics of the worker and the caller, read back with Prometheus' own parsers
//! (the Python `prometheus_client`'s OpenMetrics parser and its classic text parser): in process
//! through one registry, and from `amqp-rpc serve --metrics` over HTTP.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use amqp_client::{BasicProperties, BasicPublishOptions, Connection, FieldTable};
use prometheus_client::registry::Registry;
use rpc_client::{CallOptions, RpcClient, RpcError};
use rpc_server::{FibService, RpcServer};
use support::{unique, QueueGuard, BROKER_URI};

/// Every sample as `name{label="v",…}` → value, parsed by `prometheus_client`; both of its
/// parsers must accept the text.
fn parse(text: &str) -> HashMap<String, f64> {
    let script = r#"
import sys, json
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
from prometheus_client.parser import text_string_to_metric_families as classic
text = sys.stdin.read()
out = {}
for family in om(text):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
list(classic(text))
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition (run `bash scripts/broker.sh` to install it):\n{}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

fn sample(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:#?}"))
}

#[tokio::test]
async fn server_and_client_metrics_in_one_registry() {
    support::broker::ensure();
    let queue = unique("rpc-metrics");
    let idle = unique("rpc-metrics-idle");
    let _g1 = QueueGuard::new(BROKER_URI, &queue);
    let _g2 = QueueGuard::new(BROKER_URI, &idle);
    let mut registry = Registry::default();
    let server_metrics = rpc_server::metrics::ServerMetrics::register(&mut registry);
    let client_metrics = rpc_client::metrics::ClientMetrics::register(&mut registry);
    let server = RpcServer::builder()
        .uri(BROKER_URI)
        .queue(&queue)
        .metrics(server_metrics)
        .start(FibService::new())
        .await
        .expect("server");
    let stop = server.shutdown_token();
    let task = tokio::spawn(server.run_until(std::future::pending()));
    let client = RpcClient::builder()
        .uri(BROKER_URI)
        .queue(&queue)
        .metrics(client_metrics)
        .connect()
        .await
        .expect("client");
    for n in 0..5 {
        client.call(n.to_string()).await.expect("answer");
    }
    assert!(matches!(
        client.call("abc").await,
        Err(RpcError::Server { .. })
    ));
    // An idle queue: a timeout.
    let conn = Connection::connect(BROKER_URI).await.unwrap();
    let ch = conn.open_channel().await.unwrap();
    ch.queue_declare(&idle, Default::default()).await.unwrap();
    let timeout = client
        .call_raw_with(&idle, "1", CallOptions::timeout(Duration::from_millis(200)))
        .await;
    assert!(matches!(timeout, Err(RpcError::Timeout { .. })));
    // A request whose deadline passed: the server counts it as expired.
    let reply_queue = ch
        .queue_declare(
            "",
            amqp_client::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .queue;
    let past = rpc_wire::deadline::unix_millis(SystemTime::now()) - 1000;
    let props = BasicProperties::default()
        .with_reply_to(reply_queue.as_str())
        .with_correlation_id("old")
        .with_headers(FieldTable::new().with("x-deadline", past));
    ch.basic_publish("", &queue, BasicPublishOptions::default(), &props, b"1")
        .await
        .unwrap();
    let encoded = || amqp_rpc::metrics::encode(&registry);
    let t = Instant::now();
    let samples = loop {
        let samples = parse(&encoded());
        let key =
            format!("amqp_rpc_server_requests_total{{outcome=\"expired\",queue=\"{queue}\"}}");
        if samples.get(&key).copied().unwrap_or(0.0) >= 1.0 {
            break samples;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "expired request not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let q = &queue;
    assert_eq!(
        sample(
            &samples,
            &format!("amqp_rpc_server_requests_total{{outcome=\"ok\",queue=\"{q}\"}}")
        ),
        5.0
    );
    assert_eq!(
        sample(
            &samples,
            &format!("amqp_rpc_server_requests_total{{outcome=\"bad-request\",queue=\"{q}\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            &format!("amqp_rpc_server_request_duration_seconds_count{{queue=\"{q}\"}}")
        ),
        6.0
    );
    assert_eq!(
        sample(
            &samples,
            &format!("amqp_rpc_server_in_flight{{queue=\"{q}\"}}")
        ),
        0.0
    );
    assert_eq!(sample(&samples, "amqp_rpc_server_reconnects_total{}"), 0.0);
    assert_eq!(
        sample(
            &samples,
            &format!("amqp_rpc_client_calls_total{{outcome=\"ok\",queue=\"{q}\"}}")
        ),
        5.0
    );
    assert_eq!(
        sample(
            &samples,
            &format!("amqp_rpc_client_calls_total{{outcome=\"bad-request\",queue=\"{q}\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            &format!("amqp_rpc_client_calls_total{{outcome=\"timeout\",queue=\"{idle}\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            &format!("amqp_rpc_client_call_duration_seconds_count{{queue=\"{q}\"}}")
        ),
        5.0
    );
    assert_eq!(sample(&samples, "amqp_rpc_client_in_flight{}"), 0.0);
    stop.cancel();
    let _ = task.await;
    let _ = conn.close().await;
}

/// `serve --metrics ADDR` answers `GET /metrics` with what Prometheus parses, and 404 otherwise.
#[test]
fn serve_exposes_metrics_over_http() {
    support::broker::ensure();
    let queue = unique("rpc-metrics-cli");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let serve = support::serve::Serve::start(&["--queue", &queue, "--metrics", &addr]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        serve
            .wait_for("Awaiting RPC requests", 1, Duration::from_secs(20))
            .await;
        let client = RpcClient::builder()
            .uri(BROKER_URI)
            .queue(&queue)
            .connect()
            .await
            .unwrap();
        for _ in 0..2 {
            assert_eq!(client.call("10").await.unwrap(), "55");
        }
    });
    let get = |path: &str| {
        let mut s = TcpStream::connect(&addr).expect("metrics endpoint");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let response = get("/metrics");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    let samples = parse(body);
    assert_eq!(
        sample(
            &samples,
            &format!("amqp_rpc_server_requests_total{{outcome=\"ok\",queue=\"{queue}\"}}")
        ),
        2.0
    );
    assert!(get("/").starts_with("HTTP/1.1 404"));
}
