//! Cluster: a 3-node RabbitMQ cluster on this machine (`scripts/cluster.sh`: rabbit-a/b/c on
//! 127.0.0.1:5681-5683, joined with `rabbitmqctl join_cluster`), `rpc_queue` as a quorum queue,
//! two `amqp-rpc serve` workers and one caller given all three addresses. CLUSTER_CALLS (default
//! 10,000) calls run; one node — the first address, the one everybody is connected to — is
//! stopped while they do. Every call must get its correct answer (idempotent calls, retried); the
//! table of what happened is printed. The cluster is torn down afterwards, whatever happened; the
//! default broker on 5672 is never touched.
//!
//! Not part of `cargo test --workspace` (a cluster takes a minute to start): `scripts/resilience.sh`
//! runs it, e.g. `cargo test --test cluster -- --ignored --nocapture`.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqp_client::ConnectionConfig;
use rpc_client::{Backoff, ReconnectingRpcClient, RetryPolicy, RpcClient};

use support::serve::Serve;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh");
const URIS: [&str; 3] = [
    "amqp://guest:guest@127.0.0.1:5681/%2f?heartbeat=5",
    "amqp://guest:guest@127.0.0.1:5682/%2f?heartbeat=5",
    "amqp://guest:guest@127.0.0.1:5683/%2f?heartbeat=5",
];

fn cluster(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("run scripts/cluster.sh");
    assert!(
        out.status.success(),
        "scripts/cluster.sh {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops and removes the cluster when dropped, test passed or not.
struct Cluster;

impl Cluster {
    fn start() -> Cluster {
        // A cluster left over by a killed run would not be ours to trust.
        cluster(&["stop"]);
        let guard = Cluster;
        cluster(&["start"]);
        guard
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(SCRIPT).arg("stop").status();
    }
}

/// `rpc_queue`'s leader and members, as node `node` sees them.
fn queue_placement(node: &str) -> String {
    let listing = cluster(&[
        "ctl",
        node,
        "-q",
        "list_queues",
        "name",
        "type",
        "leader",
        "members",
    ]);
    listing
        .lines()
        .filter(|l| l.starts_with("rpc_queue\t"))
        .map(|l| l.replace('\t', " "))
        .collect()
}

#[test]
#[ignore = "starts a 3-node cluster: run by scripts/resilience.sh"]
fn every_call_answered_while_a_node_stops() {
    support::init_logging();
    let total = std::env::var("CLUSTER_CALLS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(10_000u64);
    // Paced so that the run lasts well past the node's stop (which takes seconds).
    let rate = std::env::var("CLUSTER_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400u64);
    let concurrency = 32u64;
    let default_broker_was_up = support::broker::port_open();

    let setup = Instant::now();
    let _cluster = Cluster::start();
    println!("cluster up in {:?}", setup.elapsed());

    let mut serve_args = vec!["--quorum", "--prefetch", "16"];
    for uri in URIS {
        serve_args.extend(["--uri", uri]);
    }
    serve_args.extend(["--reconnect-initial", "100ms", "--reconnect-max", "1s"]);
    let servers = [Serve::start(&serve_args), Serve::start(&serve_args)];

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async {
        for s in &servers {
            s.wait_for("consuming", 1, Duration::from_secs(30)).await;
        }
        let placement_before = queue_placement("b");
        let client = ReconnectingRpcClient::connect(
            ConnectionConfig::parse_many(&URIS).unwrap(),
            RpcClient::builder().timeout(Duration::from_secs(5)),
            RetryPolicy {
                retries: 10,
                backoff: Backoff {
                    initial: Duration::from_millis(100),
                    max: Duration::from_secs(2),
                    jitter: 0.5,
                },
            },
        )
        .await
        .expect("client connects");

        let answers: Arc<Vec<String>> =
            Arc::new((0..=90).map(rpc_server::fib::fib_decimal).collect());
        let next = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        // Completion times (since start) of every answered call, and the slowest call.
        let completions = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
        let slowest = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, next, done, answers, completions, slowest) = (
                    client.clone(),
                    Arc::clone(&next),
                    Arc::clone(&done),
                    Arc::clone(&answers),
                    Arc::clone(&completions),
                    Arc::clone(&slowest),
                );
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return;
                        }
                        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                        tokio::time::sleep_until(due.into()).await;
                        let n = i % 91;
                        let t0 = Instant::now();
                        let answer = client
                            .fib(n)
                            .await
                            .unwrap_or_else(|e| panic!("call {i} (fib({n})) failed: {e}"));
                        assert_eq!(answer.to_string(), answers[n as usize], "fib({n})");
                        let took = t0.elapsed().as_millis() as u64;
                        slowest.fetch_max(took, Ordering::Relaxed);
                        completions.lock().unwrap().push(started.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();

        // Stop node a (first address: every connection is on it, and so is the queue's leader
        // when it was declared there) once a fifth of the calls are answered.
        let stopper = {
            let done = Arc::clone(&done);
            tokio::task::spawn_blocking(move || {
                while done.load(Ordering::Relaxed) < total / 5 {
                    // The calls failed (the workers panic): stop anyway, the test is failing.
                    if started.elapsed() > Duration::from_secs(120) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let at = started.elapsed();
                cluster(&["stop-node", "a"]);
                (at, started.elapsed())
            })
        };
        for w in workers {
            w.await.expect("a call failed");
        }
        let elapsed = started.elapsed();
        let (stop_began, stop_ended) = stopper.await.unwrap();
        let placement_after = queue_placement("b");
        let stats = client.stats();
        let dropped = match client.current().await {
            Some(c) => c.dropped_replies(),
            None => 0,
        };
        let _ = client.close().await;

        let mut times = completions.lock().unwrap().clone();
        times.sort();
        let mut gap = Duration::ZERO;
        let mut gap_at = Duration::ZERO;
        for pair in times.windows(2) {
            if pair[1] - pair[0] > gap {
                gap = pair[1] - pair[0];
                gap_at = pair[0];
            }
        }
        let answered = done.load(Ordering::Relaxed);
        let reconnected_servers = servers
            .iter()
            .filter(|s| s.count("serving rpc_queue again") > 0)
            .count();
        format!(
            "| calls | {total} |\n\
             | answered correctly | {answered} |\n\
             | wall time | {elapsed:.1?} (paced at {rate}/s, {concurrency} in flight) |\n\
             | node a stop | began {stop_began:.1?}, node gone {stop_ended:.1?} into the run |\n\
             | calls retried | {} |\n\
             | retries (attempts after the first) | {} |\n\
             | attempts lost with the connection | {} |\n\
             | attempts timed out (5 s) | {} |\n\
             | client reconnects | {} |\n\
             | servers reconnected | {reconnected_servers} of 2 |\n\
             | duplicate/late replies dropped (last connection) | {dropped} |\n\
             | time without service (longest gap between answers) | {gap:.2?}, from {gap_at:.1?} |\n\
             | slowest call (incl. retries) | {} ms |\n\
             | rpc_queue before | {placement_before} |\n\
             | rpc_queue after | {placement_after} |",
            stats.retried_calls,
            stats.retries,
            stats.connection_losses,
            stats.timeouts,
            stats.reconnects,
            slowest.load(Ordering::Relaxed),
        )
    });
    println!("{report}");
    drop(servers);
    drop(_cluster);
    let leftover = Command::new("pgrep")
        .args(["-f", "--", "-home /tmp/amqp-rpc-cluster/home "])
        .output()
        .unwrap();
    assert!(
        leftover.stdout.is_empty(),
        "cluster VMs left: {}",
        String::from_utf8_lossy(&leftover.stdout)
    );
    assert_eq!(
        support::broker::port_open(),
        default_broker_was_up,
        "the default broker on 5672 changed state"
    );
    assert!(report.contains(&format!("| answered correctly | {total} |")));
}
