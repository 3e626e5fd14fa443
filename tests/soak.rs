//! Soak: SOAK_CALLS (default 200,000) calls of fib(n) through one client and two servers, all in
//! this process against the local broker, with SOAK_CONCURRENCY (default 64) calls in flight.
//! Every answer is checked. Memory must stay bounded (RSS flat after warm-up), and once client
//! and servers are closed no task and no file descriptor may be left over.
//!
//! Not part of `cargo test --workspace` (it takes minutes): `scripts/resilience.sh` runs it with
//! a time bound, e.g. `cargo test --test soak -- --ignored --nocapture`.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_client::QueueDeclareOptions;
use rpc_client::RpcClient;
use rpc_server::{FibService, RpcServer};

use support::figures::{open_fds, rss_kib, threads};
use support::{unique, QueueGuard, BROKER_URI};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    calls: u64,
    rss_kib: u64,
    fds: usize,
    tasks: usize,
}

impl Sample {
    fn take(rt: &tokio::runtime::Handle, started: Instant, calls: u64) -> Sample {
        Sample {
            at: started.elapsed(),
            calls,
            rss_kib: rss_kib(None),
            fds: open_fds(None),
            tasks: rt.metrics().num_alive_tasks(),
        }
    }
}

#[test]
#[ignore = "minutes long: run by scripts/resilience.sh (SOAK_CALLS sets the size)"]
fn soak_one_client_two_servers() {
    support::init_logging();
    let total = env_u64("SOAK_CALLS", 200_000);
    let concurrency = env_u64("SOAK_CONCURRENCY", 64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    // Baseline: the runtime alone.
    let base = Sample::take(&handle, Instant::now(), 0);
    let queue = unique("soak");
    let _guard = QueueGuard::new(BROKER_URI, &queue);
    let answers: Arc<Vec<String>> = Arc::new((0..=90).map(rpc_server::fib::fib_decimal).collect());

    let (samples, elapsed, end) = rt.block_on(async {
        let mut servers = Vec::new();
        for _ in 0..2 {
            let server = RpcServer::builder()
                .uri(BROKER_URI)
                .queue(&queue)
                .prefetch(32)
                // Gone with its last consumer, even if this test is killed.
                .queue_options(QueueDeclareOptions {
                    auto_delete: true,
                    ..Default::default()
                })
                .start(FibService::new())
                .await
                .expect("server starts");
            let token = server.shutdown_token();
            let task = tokio::spawn(server.run_until(std::future::pending()));
            servers.push((token, task));
        }
        let client = RpcClient::builder()
            .uri(BROKER_URI)
            .queue(&queue)
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .expect("client connects");

        let next = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, next, done, answers) = (
                    client.clone(),
                    Arc::clone(&next),
                    Arc::clone(&done),
                    Arc::clone(&answers),
                );
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return;
                        }
                        let n = i % 91;
                        let body = client
                            .call(n.to_string())
                            .await
                            .unwrap_or_else(|e| panic!("call {i} (fib({n})) failed: {e}"));
                        assert_eq!(body, answers[n as usize].as_str(), "fib({n})");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();

        let sampler = {
            let (done, handle) = (Arc::clone(&done), tokio::runtime::Handle::current());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let step = (total / 20).max(1);
                let mut mark = step;
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let calls = done.load(Ordering::Relaxed);
                    if calls >= mark || calls >= total {
                        samples.push(Sample::take(&handle, started, calls));
                        mark += step;
                    }
                    if calls >= total {
                        return samples;
                    }
                }
            })
        };
        for w in workers {
            w.await.expect("worker");
        }
        let elapsed = started.elapsed();
        let samples = sampler.await.unwrap();
        assert_eq!(done.load(Ordering::Relaxed), total);
        assert_eq!(client.answered_replies(), total);
        assert_eq!(client.in_flight(), 0);

        client.close().await.expect("client closes");
        drop(client);
        for (token, task) in servers {
            token.cancel();
            task.await.unwrap().expect("server stops cleanly");
        }
        // Give the aborted/closed tasks a moment to be reaped.
        let mut end = Sample::take(&tokio::runtime::Handle::current(), started, total);
        let deadline = Instant::now() + Duration::from_secs(5);
        while (end.tasks > base.tasks || end.fds > base.fds) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            end = Sample::take(&tokio::runtime::Handle::current(), started, total);
        }
        (samples, elapsed, end)
    });

    println!(
        "soak: {total} calls, {concurrency} in flight, 1 client, 2 servers, in {elapsed:.1?} \
         ({:.0} calls/s); threads {}",
        total as f64 / elapsed.as_secs_f64(),
        threads(None)
    );
    println!(
        "{:>9} {:>9} {:>10} {:>5} {:>6}",
        "t", "calls", "RSS KiB", "fds", "tasks"
    );
    println!(
        "{:>9} {:>9} {:>10} {:>5} {:>6}  (baseline: runtime only)",
        "-", 0, base.rss_kib, base.fds, base.tasks
    );
    for s in &samples {
        println!(
            "{:>9.1?} {:>9} {:>10} {:>5} {:>6}",
            s.at, s.calls, s.rss_kib, s.fds, s.tasks
        );
    }
    println!(
        "{:>9} {:>9} {:>10} {:>5} {:>6}  (after close)",
        "end", total, end.rss_kib, end.fds, end.tasks
    );

    // Warm-up: the first 10% of the calls (buffers, maps and the allocator reach their size).
    let warm = samples
        .iter()
        .find(|s| s.calls >= total / 10)
        .copied()
        .expect("a sample after warm-up");
    let after: Vec<&Sample> = samples.iter().filter(|s| s.calls > warm.calls).collect();
    let peak = after
        .iter()
        .map(|s| s.rss_kib)
        .max()
        .unwrap_or(warm.rss_kib);
    let last = samples.last().unwrap().rss_kib;
    println!(
        "RSS after warm-up {} KiB, peak after {} KiB, last {} KiB",
        warm.rss_kib, peak, last
    );
    // Flat: no sample after warm-up more than 25% (+4 MiB for allocator noise) above it.
    assert!(
        peak <= warm.rss_kib + warm.rss_kib / 4 + 4096,
        "RSS grew from {} KiB to {peak} KiB after warm-up",
        warm.rss_kib
    );
    // While running: the fixed tasks (workers, servers' and client's drivers) plus at most the
    // requests in flight; nothing that grows with the number of calls.
    let max_tasks = after.iter().map(|s| s.tasks).max().unwrap_or(0);
    assert!(
        max_tasks <= base.tasks + concurrency as usize + 64 + 20,
        "{max_tasks} tasks alive"
    );
    assert_eq!(end.tasks, base.tasks, "tasks left after closing everything");
    assert_eq!(
        end.fds, base.fds,
        "file descriptors left after closing everything"
    );
}
